"""CMS envelopes: sealing, inspecting by offset, opening, and every refusal."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from sealed_bid.crypto import der
from sealed_bid.crypto.envelope import (
    ContentAlgorithm,
    decrypt_envelope,
    inspect_envelope,
    seal_envelope,
)
from sealed_bid.crypto.signed_data import sign_attached
from sealed_bid.errors import (
    AlgorithmRefused,
    DecryptionFailed,
    EnvelopeNotCms,
    EnvelopeNotDer,
    EnvelopeWrongContentType,
    KeyTransportFailed,
)

from .conftest import Party

PLAINTEXT = bytes(range(256)) * 64  # 16 KiB: a whole number of AES blocks


def seal(
    path: Path,
    recipients: list[Party],
    oaep_hash: str = "sha1",
    algorithm: ContentAlgorithm = "aes256_gcm",
) -> Path:
    with path.open("wb") as dst:
        seal_envelope(
            io.BytesIO(PLAINTEXT),
            dst,
            [r.certificate_der for r in recipients],
            oaep_hash,
            algorithm,
        )
    return path


def open_with(path: Path, party: Party) -> bytes:
    info = inspect_envelope(path)
    (recipient,) = [r for r in info.recipients if r.matches(party.certificate_der)]
    out = io.BytesIO()
    length = decrypt_envelope(path, info, recipient, party.key_transport, out)
    assert length == len(out.getvalue())
    return out.getvalue()


def openssl_encrypt(party: Party, src: Path, out: Path, cipher: str, *keyopts: str) -> Path:
    """``openssl cms -encrypt``; key options must follow ``-recip``, and OAEP-SHA1 is the
    default unless ``keyopts`` pick another padding."""
    padding = (
        []
        if any("rsa_padding_mode" in k for k in keyopts)
        else ["rsa_padding_mode:oaep", "rsa_oaep_md:sha1"]
    )
    options = [arg for k in [*padding, *keyopts] for arg in ("-keyopt", k)]
    subprocess.run(
        [
            "openssl",
            "cms",
            "-encrypt",
            "-binary",
            "-outform",
            "DER",
            "-in",
            str(src),
            "-out",
            str(out),
            *cipher.split(),
            "-recip",
            str(party.cert_pem),
            *options,
        ],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def plaintext_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("envelope") / "plain.bin"
    path.write_bytes(PLAINTEXT)
    return path


@pytest.mark.parametrize(
    ("algorithm", "oaep_hash", "content_type"),
    [
        ("aes256_gcm", "sha1", "authEnvelopedData"),
        ("aes256_gcm", "sha256", "authEnvelopedData"),
        ("aes256_cbc", "sha1", "envelopedData"),
    ],
)
def test_sealed_envelope_inspects_and_opens(
    tender: Party,
    tmp_path: Path,
    algorithm: ContentAlgorithm,
    oaep_hash: str,
    content_type: str,
) -> None:
    path = seal(tmp_path / "e.p7m", [tender], oaep_hash, algorithm)
    info = inspect_envelope(path)
    assert info.content_type == content_type
    assert info.content_algorithm == algorithm
    assert info.size == path.stat().st_size
    assert info.recipients[0].key_encryption == "rsaes_oaep"
    assert info.recipients[0].oaep_hash == oaep_hash
    if algorithm == "aes256_gcm":
        assert info.ciphertext_length == len(PLAINTEXT)
        assert info.mac is not None and len(info.mac) == info.icv_length == 16
        assert len(info.iv) == 12
    else:
        assert info.ciphertext_length == len(PLAINTEXT) + 16
    assert open_with(path, tender) == PLAINTEXT


def test_ciphertext_offset_points_at_the_ciphertext(tender: Party, tmp_path: Path) -> None:
    path = seal(tmp_path / "e.p7m", [tender])
    info = inspect_envelope(path)
    data = path.read_bytes()
    # The mac OCTET STRING (2 + 16 bytes) follows the ciphertext and ends the file.
    assert info.ciphertext_offset + info.ciphertext_length + 18 == len(data)
    assert data[-16:] == info.mac


def test_sealed_envelope_is_der_throughout(tender: Party, tmp_path: Path) -> None:
    path = seal(tmp_path / "e.p7m", [tender])
    info = inspect_envelope(path)
    with path.open("rb") as f:
        root = der.read_root(f)
        skip = frozenset({info.ciphertext_offset - 4})  # not entered: it is primitive
        der.check_der_tree(f, root, skip)


def test_each_recipient_matches_only_its_own_certificate(
    tender: Party, other_tender: Party, tmp_path: Path
) -> None:
    path = seal(tmp_path / "two.p7m", [tender, other_tender])
    first, second = inspect_envelope(path).recipients
    assert first.matches(tender.certificate_der)
    assert not first.matches(other_tender.certificate_der)
    assert second.matches(other_tender.certificate_der)
    assert open_with(path, other_tender) == PLAINTEXT


def test_wrong_private_key_is_KEY_TRANSPORT_FAILED(
    tender: Party, other_tender: Party, tmp_path: Path
) -> None:
    path = seal(tmp_path / "e.p7m", [tender])
    info = inspect_envelope(path)
    with pytest.raises(KeyTransportFailed):
        decrypt_envelope(path, info, info.recipients[0], other_tender.key_transport, io.BytesIO())


@pytest.mark.parametrize("where", ["ciphertext", "tag"])
def test_tampered_gcm_envelope_is_DECRYPTION_FAILED(
    tender: Party, tmp_path: Path, where: str
) -> None:
    path = seal(tmp_path / "e.p7m", [tender])
    data = bytearray(path.read_bytes())
    data[inspect_envelope(path).ciphertext_offset + 100 if where == "ciphertext" else -1] ^= 1
    path.write_bytes(bytes(data))
    info = inspect_envelope(path)
    with pytest.raises(DecryptionFailed, match="GCM tag"):
        decrypt_envelope(path, info, info.recipients[0], tender.key_transport, io.BytesIO())


def test_cbc_envelope_with_broken_padding_is_DECRYPTION_FAILED(
    tender: Party, tmp_path: Path
) -> None:
    path = seal(tmp_path / "e.p7m", [tender], algorithm="aes256_cbc")
    info = inspect_envelope(path)
    data = bytearray(path.read_bytes())
    # The last block is all padding (0x10 * 16); flipping the previous block's last byte
    # turns the final plaintext byte into 0x11, which is not valid PKCS#7.
    data[info.ciphertext_offset + info.ciphertext_length - 17] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DecryptionFailed, match="padding"):
        decrypt_envelope(path, info, info.recipients[0], tender.key_transport, io.BytesIO())


def test_truncated_envelope_is_ENVELOPE_NOT_DER(tender: Party, tmp_path: Path) -> None:
    path = seal(tmp_path / "e.p7m", [tender])
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(EnvelopeNotDer, match="truncated"):
        inspect_envelope(path)


def test_trailing_garbage_is_ENVELOPE_NOT_DER(tender: Party, tmp_path: Path) -> None:
    path = seal(tmp_path / "e.p7m", [tender])
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(EnvelopeNotDer, match="trailing"):
        inspect_envelope(path)


def test_a_certificate_is_ENVELOPE_NOT_CMS(tender: Party, tmp_path: Path) -> None:
    path = tmp_path / "cert.der"
    path.write_bytes(tender.certificate_der)
    with pytest.raises(EnvelopeNotCms):
        inspect_envelope(path)


def test_signed_data_is_ENVELOPE_WRONG_CONTENT_TYPE(bidder: Party, tmp_path: Path) -> None:
    path = tmp_path / "signed.p7s"
    from datetime import UTC, datetime

    path.write_bytes(sign_attached(bidder.signer, b"x", datetime.now(UTC)))
    with pytest.raises(EnvelopeWrongContentType, match="signedData") as caught:
        inspect_envelope(path)
    assert caught.value.context["content_type"] == "signedData"


def test_seal_refuses_a_non_rsa_recipient(ec_bidder: Party) -> None:
    with pytest.raises(AlgorithmRefused, match="RSA"):
        seal_envelope(io.BytesIO(b"x"), io.BytesIO(), [ec_bidder.certificate_der])


@pytest.mark.openssl
class TestOpensslEnvelopes:
    @pytest.mark.parametrize(
        ("cipher", "algorithm"), [("-aes-256-gcm", "aes256_gcm"), ("-aes-256-cbc", "aes256_cbc")]
    )
    def test_openssl_envelopes_open(
        self, tender: Party, plaintext_file: Path, tmp_path: Path, cipher: str, algorithm: str
    ) -> None:
        path = openssl_encrypt(tender, plaintext_file, tmp_path / "o.p7m", cipher)
        assert inspect_envelope(path).content_algorithm == algorithm
        assert open_with(path, tender) == PLAINTEXT

    def test_our_envelopes_decrypt_with_openssl(self, tender: Party, tmp_path: Path) -> None:
        for algorithm in ("aes256_gcm", "aes256_cbc"):
            path = seal(tmp_path / f"{algorithm}.p7m", [tender], "sha256", algorithm)
            out = tmp_path / f"{algorithm}.out"
            result = subprocess.run(
                [
                    "openssl",
                    "cms",
                    "-decrypt",
                    "-binary",
                    "-inform",
                    "DER",
                    "-in",
                    str(path),
                    "-inkey",
                    str(tender.key_pem),
                    "-recip",
                    str(tender.cert_pem),
                    "-out",
                    str(out),
                ],
                capture_output=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert out.read_bytes() == PLAINTEXT

    def test_streamed_ber_envelope_is_ENVELOPE_NOT_DER(
        self, tender: Party, plaintext_file: Path, tmp_path: Path
    ) -> None:
        path = openssl_encrypt(tender, plaintext_file, tmp_path / "ber.p7m", "-aes-256-gcm -stream")
        with pytest.raises(EnvelopeNotDer, match="indefinite"):
            inspect_envelope(path)

    def test_pkcs1v15_recipient_is_reported_and_refused(
        self, tender: Party, plaintext_file: Path, tmp_path: Path
    ) -> None:
        path = openssl_encrypt(
            tender,
            plaintext_file,
            tmp_path / "v15.p7m",
            "-aes-256-gcm",
            "rsa_padding_mode:pkcs1",
        )
        info = inspect_envelope(path)
        assert info.recipients[0].key_encryption == "rsaes_pkcs1v15"
        with pytest.raises(AlgorithmRefused, match="only RSAES-OAEP"):
            decrypt_envelope(path, info, info.recipients[0], tender.key_transport, io.BytesIO())

    @pytest.mark.parametrize(
        ("cipher", "what"),
        [("-aes-128-gcm", "aes128_gcm"), ("-aes-192-cbc", "aes192_cbc"), ("-des3", "tripledes")],
    )
    def test_other_content_ciphers_are_ALGORITHM_REFUSED(
        self, tender: Party, plaintext_file: Path, tmp_path: Path, cipher: str, what: str
    ) -> None:
        path = openssl_encrypt(tender, plaintext_file, tmp_path / "c.p7m", cipher)
        with pytest.raises(AlgorithmRefused, match=what):
            inspect_envelope(path)

    @pytest.mark.parametrize(
        ("keyopt", "message"),
        [("rsa_oaep_label:0102", "label"), ("rsa_mgf1_md:sha256", "MGF1")],
    )
    def test_unusual_oaep_parameters_are_ALGORITHM_REFUSED(
        self, tender: Party, plaintext_file: Path, tmp_path: Path, keyopt: str, message: str
    ) -> None:
        path = openssl_encrypt(
            tender,
            plaintext_file,
            tmp_path / "l.p7m",
            "-aes-256-gcm",
            "rsa_padding_mode:oaep",
            "rsa_oaep_md:sha1",
            keyopt,
        )
        with pytest.raises(AlgorithmRefused, match=message):
            inspect_envelope(path)
