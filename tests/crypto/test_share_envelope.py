"""Shares sealed to officer certificates: round trip, the openssl CLI both ways, the wrong
officer, and the certificates that cannot receive a share."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sealed_bid.crypto.envelope import inspect_envelope
from sealed_bid.crypto.share_envelope import open_share, seal_share
from sealed_bid.domain.shares import ShareRecord, new_pin, split_pin
from sealed_bid.errors import InvalidTender, ShareInvalid

from .conftest import Party, make_party


def usage(*, key_encipherment: bool = True, digital_signature: bool = True) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def certificate(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    name: str,
    key_usage: x509.KeyUsage | None,
) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def officer(directory: Path, name: str) -> Party:
    """A throwaway RSA officer with a self-signed keyEncipherment certificate, as PEM files."""
    key = rsa.generate_private_key(65537, 2048)
    der = certificate(key, name, usage())
    party = make_party(directory, name, key)  # writes the key PEM (and a cert PEM we replace)
    party.cert_pem.write_bytes(
        x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    )
    return Party(name, key, der, party.key_pem, party.cert_pem)


@pytest.fixture(scope="module")
def officers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Party, Party]:
    directory = tmp_path_factory.mktemp("officers")
    return officer(directory, "officer-a"), officer(directory, "officer-b")


def rsa_key(party: Party) -> rsa.RSAPrivateKey:
    assert isinstance(party.key, rsa.RSAPrivateKey)
    return party.key


@pytest.fixture(scope="module")
def payload() -> bytes:
    return split_pin("KF-2026-001", new_pin().encode(), 2, 3)[0].to_bytes()


def test_round_trip(officers: tuple[Party, Party], payload: bytes) -> None:
    a, _ = officers
    sealed = seal_share(payload, a.certificate_der)
    assert payload not in sealed
    assert open_share(sealed, rsa_key(a)) == payload
    assert ShareRecord.from_bytes(open_share(sealed, rsa_key(a))).index == 1


def test_sealed_share_is_enveloped_data_aes256_cbc_oaep_sha256(
    officers: tuple[Party, Party], payload: bytes, tmp_path: Path
) -> None:
    a, _ = officers
    path = tmp_path / "share.der"
    path.write_bytes(seal_share(payload, a.certificate_der))
    info = inspect_envelope(path)
    assert info.content_type == "envelopedData"
    assert info.content_algorithm == "aes256_cbc"
    (recipient,) = info.recipients
    assert recipient.key_encryption == "rsaes_oaep"
    assert recipient.oaep_hash == "sha256"
    assert recipient.matches(a.certificate_der)


@pytest.mark.openssl
def test_openssl_cms_decrypt_opens_a_sealed_share(
    officers: tuple[Party, Party], payload: bytes, tmp_path: Path, openssl: str
) -> None:
    a, _ = officers
    sealed = tmp_path / "share.der"
    sealed.write_bytes(seal_share(payload, a.certificate_der))
    out = tmp_path / "share.json"
    subprocess.run(
        [
            openssl,
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            str(sealed),
            "-inkey",
            str(a.key_pem),
            "-recip",
            str(a.cert_pem),
            "-out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == payload


@pytest.mark.openssl
def test_openssl_cms_decrypt_with_the_other_officers_key_fails(
    officers: tuple[Party, Party], payload: bytes, tmp_path: Path, openssl: str
) -> None:
    a, b = officers
    sealed = tmp_path / "share.der"
    sealed.write_bytes(seal_share(payload, a.certificate_der))
    result = subprocess.run(
        [
            openssl,
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            str(sealed),
            "-inkey",
            str(b.key_pem),
            "-recip",
            str(b.cert_pem),
            "-out",
            str(tmp_path / "out.json"),
        ],
        check=False,
        capture_output=True,
    )
    assert result.returncode != 0


@pytest.mark.openssl
def test_open_share_reads_what_openssl_cms_encrypt_writes(
    officers: tuple[Party, Party], payload: bytes, tmp_path: Path, openssl: str
) -> None:
    a, _ = officers
    plain = tmp_path / "share.json"
    plain.write_bytes(payload)
    sealed = tmp_path / "share.der"
    subprocess.run(
        [
            openssl,
            "cms",
            "-encrypt",
            "-binary",
            "-outform",
            "DER",
            "-aes-256-cbc",
            "-in",
            str(plain),
            "-out",
            str(sealed),
            "-recip",
            str(a.cert_pem),
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-keyopt",
            "rsa_mgf1_md:sha256",
        ],
        check=True,
        capture_output=True,
    )
    assert open_share(sealed.read_bytes(), rsa_key(a)) == payload


def test_a_share_sealed_to_a_cannot_be_opened_by_b(
    officers: tuple[Party, Party], payload: bytes
) -> None:
    a, b = officers
    with pytest.raises(ShareInvalid) as caught:
        open_share(seal_share(payload, a.certificate_der), rsa_key(b))
    assert caught.value.code == "SHARE_INVALID"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: b"",
        lambda d: b"not cms at all",
        lambda d: d[:-1],
        lambda d: d + b"\x00",
        lambda d: d[:-16] + bytes(16),  # the last CBC block: padding breaks (or the JSON does)
        lambda d: b"\x00" * (70 * 1024),
    ],
)
def test_damaged_sealed_share_is_SHARE_INVALID(
    officers: tuple[Party, Party], payload: bytes, mangle: Callable[[bytes], bytes]
) -> None:
    a, _ = officers
    sealed = seal_share(payload, a.certificate_der)
    damaged = mangle(sealed)
    try:
        opened = open_share(damaged, rsa_key(a))
    except ShareInvalid as exc:
        assert payload.decode() not in str(exc)
        return
    # CBC has no integrity: a changed last block may still unpad; the record parser (and
    # the stored commitment) then refuse what came out.
    assert opened != payload
    with pytest.raises(ShareInvalid):
        ShareRecord.from_bytes(opened)


def test_certificate_without_key_encipherment_is_refused() -> None:
    key = rsa.generate_private_key(65537, 2048)
    der = certificate(key, "signing-only", usage(key_encipherment=False))
    with pytest.raises(InvalidTender, match="keyEncipherment"):
        seal_share(b"share", der)


def test_certificate_without_key_usage_is_refused() -> None:
    key = rsa.generate_private_key(65537, 2048)
    with pytest.raises(InvalidTender, match="keyEncipherment"):
        seal_share(b"share", certificate(key, "no-usage", None))


def test_ec_officer_certificate_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = certificate(key, "ec-officer", usage(key_encipherment=False))
    with pytest.raises(InvalidTender, match="RSA key"):
        seal_share(b"share", der)


def test_small_rsa_officer_key_is_refused() -> None:
    key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the point of the test
    with pytest.raises(InvalidTender, match="2048"):
        seal_share(b"share", certificate(key, "small", usage()))


def test_garbage_certificate_is_refused() -> None:
    with pytest.raises(InvalidTender):
        seal_share(b"share", b"\x30\x03\x02\x01\x00")
