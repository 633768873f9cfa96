"""CMS SignedData: what we make verifies, and every deviation is refused precisely."""

from __future__ import annotations

import hashlib
import io
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sealed_bid.crypto import der
from sealed_bid.crypto.signed_data import (
    sign_attached,
    sign_attached_stream,
    sign_detached,
    verify_attached,
    verify_attached_file,
    verify_detached,
)
from sealed_bid.errors import AlgorithmRefused, SignatureInvalid, SignatureMalformed

from .conftest import Party

CONTENT = b"the bid package bytes " * 1000


def openssl_sign(party: Party, content: Path, out: Path, *extra: str) -> bytes:
    subprocess.run(
        [
            "openssl",
            "cms",
            "-sign",
            "-binary",
            "-outform",
            "DER",
            "-in",
            str(content),
            "-signer",
            str(party.cert_pem),
            "-inkey",
            str(party.key_pem),
            "-out",
            str(out),
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


@pytest.fixture(scope="module")
def content_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("signed") / "content.bin"
    path.write_bytes(CONTENT)
    return path


@pytest.mark.parametrize("who", ["bidder", "ec_bidder"])
def test_attached_signature_verifies_and_returns_its_content(
    who: str, request: pytest.FixtureRequest, signing_time: datetime
) -> None:
    party: Party = request.getfixturevalue(who)
    facts, content = verify_attached(sign_attached(party.signer, CONTENT, signing_time))
    assert content == CONTENT
    assert facts.signer_certificate_der == party.certificate_der
    assert facts.certificates_der == (party.certificate_der,)
    assert facts.signing_time == signing_time
    assert facts.content_digest == hashlib.sha256(CONTENT).digest()
    assert facts.signature_algorithm == party.signer.signature_algorithm


def test_detached_signature_verifies_against_the_content_digest(
    ec_bidder: Party, signing_time: datetime
) -> None:
    digest = hashlib.sha256(CONTENT).digest()
    facts = verify_detached(sign_detached(ec_bidder.signer, digest, signing_time), digest)
    assert facts.signer_certificate_der == ec_bidder.certificate_der


def test_streamed_signature_is_byte_identical_to_the_in_memory_one(
    bidder: Party, signing_time: datetime
) -> None:
    # RSA PKCS#1 v1.5 is deterministic, so the two writers must agree byte for byte.
    out = io.BytesIO()
    sign_attached_stream(bidder.signer, io.BytesIO(CONTENT), out, signing_time)
    assert out.getvalue() == sign_attached(bidder.signer, CONTENT, signing_time)


def test_our_signatures_are_der_throughout(bidder: Party, signing_time: datetime) -> None:
    data = sign_attached(bidder.signer, CONTENT, signing_time)
    f = io.BytesIO(data)
    der.check_der_tree(f, der.read_root(f))


def test_attached_file_verification_locates_the_content(
    bidder: Party, signing_time: datetime, tmp_path: Path
) -> None:
    path = tmp_path / "inner.p7s"
    path.write_bytes(sign_attached(bidder.signer, CONTENT, signing_time))
    facts, offset, length = verify_attached_file(path)
    assert path.read_bytes()[offset : offset + length] == CONTENT
    assert facts.signing_time == signing_time


def test_signing_time_after_2049_is_generalized_time(bidder: Party) -> None:
    later = datetime(2051, 3, 4, 5, 6, 7, tzinfo=UTC)
    facts, _ = verify_attached(sign_attached(bidder.signer, CONTENT, later))
    assert facts.signing_time == later


def test_a_different_content_digest_is_SIGNATURE_INVALID(
    bidder: Party, signing_time: datetime
) -> None:
    signature = sign_detached(bidder.signer, hashlib.sha256(CONTENT).digest(), signing_time)
    with pytest.raises(SignatureInvalid, match="messageDigest"):
        verify_detached(signature, hashlib.sha256(CONTENT + b"!").digest())


def test_tampered_attached_content_is_SIGNATURE_INVALID(
    bidder: Party, signing_time: datetime
) -> None:
    data = bytearray(sign_attached(bidder.signer, CONTENT, signing_time))
    data[data.index(b"the bid package")] ^= 1
    with pytest.raises(SignatureInvalid, match="messageDigest"):
        verify_attached(bytes(data))


def test_tampered_signature_value_is_SIGNATURE_INVALID(
    bidder: Party, signing_time: datetime
) -> None:
    digest = hashlib.sha256(CONTENT).digest()
    data = bytearray(sign_detached(bidder.signer, digest, signing_time))
    data[-5] ^= 0x40  # inside the signature OCTET STRING, the last element
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_detached(bytes(data), digest)


def test_tampered_signed_attribute_is_SIGNATURE_INVALID(
    ec_bidder: Party, signing_time: datetime
) -> None:
    digest = hashlib.sha256(CONTENT).digest()
    data = sign_detached(ec_bidder.signer, digest, signing_time)
    stamp = signing_time.strftime("%y%m%d%H%M%SZ").encode()
    forged = signing_time.replace(year=signing_time.year - 1).strftime("%y%m%d%H%M%SZ").encode()
    with pytest.raises(SignatureInvalid):
        verify_detached(data.replace(stamp, forged), digest)


def test_detached_and_attached_are_not_interchangeable(
    bidder: Party, signing_time: datetime
) -> None:
    digest = hashlib.sha256(CONTENT).digest()
    with pytest.raises(SignatureMalformed, match="expected a detached"):
        verify_detached(sign_attached(bidder.signer, CONTENT, signing_time), digest)
    with pytest.raises(SignatureMalformed, match="expected an attached"):
        verify_attached(sign_detached(bidder.signer, digest, signing_time))


def test_garbage_is_SIGNATURE_MALFORMED() -> None:
    with pytest.raises(SignatureMalformed):
        verify_detached(b"\x30\x03\x02\x01\x01", b"\x00" * 32)
    with pytest.raises(SignatureMalformed, match="not DER"):
        verify_detached(b"not a signature", b"\x00" * 32)


@pytest.mark.openssl
class TestOpensslSignatures:
    def test_openssl_detached_signature_verifies(
        self, bidder: Party, content_file: Path, tmp_path: Path
    ) -> None:
        data = openssl_sign(bidder, content_file, tmp_path / "d.p7s", "-md", "sha256")
        facts = verify_detached(data, hashlib.sha256(CONTENT).digest())
        assert facts.signer_certificate_der == bidder.certificate_der
        assert facts.signature_algorithm == "sha256_rsa"

    def test_openssl_attached_signature_is_der_and_verifies(
        self, bidder: Party, content_file: Path, tmp_path: Path
    ) -> None:
        data = openssl_sign(bidder, content_file, tmp_path / "a.p7s", "-md", "sha256", "-nodetach")
        f = io.BytesIO(data)
        der.check_der_tree(f, der.read_root(f))
        assert verify_attached(data)[1] == CONTENT

    @pytest.mark.parametrize(
        ("extra", "algorithm"),
        [
            (("-keyid",), "sha256_rsa"),
            (("-keyopt", "rsa_padding_mode:pss"), "sha256_rsa_pss"),
        ],
    )
    def test_openssl_variants_verify(
        self,
        bidder: Party,
        content_file: Path,
        tmp_path: Path,
        extra: tuple[str, ...],
        algorithm: str,
    ) -> None:
        data = openssl_sign(bidder, content_file, tmp_path / "v.p7s", "-md", "sha256", *extra)
        facts = verify_detached(data, hashlib.sha256(CONTENT).digest())
        assert facts.signature_algorithm == algorithm
        assert facts.signer_certificate_der == bidder.certificate_der

    def test_openssl_ecdsa_signature_verifies(
        self, ec_bidder: Party, content_file: Path, tmp_path: Path
    ) -> None:
        data = openssl_sign(ec_bidder, content_file, tmp_path / "e.p7s", "-md", "sha256")
        facts = verify_detached(data, hashlib.sha256(CONTENT).digest())
        assert facts.signature_algorithm == "sha256_ecdsa"

    def test_sha1_signature_is_ALGORITHM_REFUSED(
        self, bidder: Party, content_file: Path, tmp_path: Path
    ) -> None:
        data = openssl_sign(bidder, content_file, tmp_path / "s1.p7s", "-md", "sha1")
        with pytest.raises(AlgorithmRefused, match="sha1"):
            verify_detached(data, hashlib.sha1(CONTENT).digest())  # noqa: S324

    def test_signature_without_signed_attributes_is_SIGNATURE_MALFORMED(
        self, bidder: Party, content_file: Path, tmp_path: Path
    ) -> None:
        data = openssl_sign(bidder, content_file, tmp_path / "n.p7s", "-md", "sha256", "-noattr")
        with pytest.raises(SignatureMalformed, match="signed attributes"):
            verify_detached(data, hashlib.sha256(CONTENT).digest())

    def test_two_signers_are_SIGNATURE_MALFORMED(
        self, bidder: Party, ec_bidder: Party, content_file: Path, tmp_path: Path
    ) -> None:
        data = openssl_sign(
            bidder,
            content_file,
            tmp_path / "two.p7s",
            "-md",
            "sha256",
            "-signer",
            str(ec_bidder.cert_pem),
            "-inkey",
            str(ec_bidder.key_pem),
        )
        with pytest.raises(SignatureMalformed, match="exactly one SignerInfo"):
            verify_detached(data, hashlib.sha256(CONTENT).digest())

    def test_missing_signer_certificate_is_SIGNATURE_MALFORMED(
        self, bidder: Party, content_file: Path, tmp_path: Path
    ) -> None:
        data = openssl_sign(bidder, content_file, tmp_path / "nc.p7s", "-md", "sha256", "-nocerts")
        with pytest.raises(SignatureMalformed, match="certificate is not included"):
            verify_detached(data, hashlib.sha256(CONTENT).digest())

    def test_streamed_ber_signature_is_SIGNATURE_MALFORMED(
        self, bidder: Party, content_file: Path, tmp_path: Path
    ) -> None:
        data = openssl_sign(
            bidder, content_file, tmp_path / "ber.p7s", "-md", "sha256", "-nodetach", "-stream"
        )
        with pytest.raises(SignatureMalformed, match="not DER"):
            verify_attached(data)

    def test_our_signatures_verify_with_openssl(
        self, ec_bidder: Party, content_file: Path, tmp_path: Path, signing_time: datetime
    ) -> None:
        attached = tmp_path / "ours.p7s"
        attached.write_bytes(sign_attached(ec_bidder.signer, CONTENT, signing_time))
        out = tmp_path / "out.bin"
        subprocess.run(
            [
                "openssl",
                "cms",
                "-verify",
                "-noverify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                str(attached),
                "-out",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        assert out.read_bytes() == CONTENT
        detached = tmp_path / "ours-detached.p7s"
        detached.write_bytes(
            sign_detached(ec_bidder.signer, hashlib.sha256(CONTENT).digest(), signing_time)
        )
        subprocess.run(
            [
                "openssl",
                "cms",
                "-verify",
                "-noverify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                str(detached),
                "-content",
                str(content_file),
                "-out",
                "/dev/null",
            ],
            check=True,
            capture_output=True,
        )
