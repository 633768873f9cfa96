"""Session fixtures for the CMS tests: small self-made keys and certificates.

These certificates prove nothing about trust (ca_bridge's tests do that); they only give
the CMS code real keys to sign, seal and open with, and the openssl CLI files to read.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.software_signer import SoftwareKeyTransport, SoftwareSigner
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.ids import TenderId

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Party:
    """A key, its certificate, and both as PEM files for the openssl CLI."""

    name: str
    key: PrivateKey
    certificate_der: bytes
    key_pem: Path
    cert_pem: Path

    @property
    def signer(self) -> SoftwareSigner:
        return SoftwareSigner(self.key, self.certificate_der)

    @property
    def key_transport(self) -> SoftwareKeyTransport:
        assert isinstance(self.key, rsa.RSAPrivateKey)
        return SoftwareKeyTransport(self.key)


def make_party(directory: Path, name: str, key: PrivateKey) -> Party:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = directory / f"{name}.key.pem"
    cert_pem = directory / f"{name}.cert.pem"
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Party(
        name=name,
        key=key,
        certificate_der=certificate.public_bytes(serialization.Encoding.DER),
        key_pem=key_pem,
        cert_pem=cert_pem,
    )


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crypto-keys")


@pytest.fixture(scope="session")
def bidder(keys_dir: Path) -> Party:
    return make_party(keys_dir, "bidder-rsa", rsa.generate_private_key(65537, 2048))


@pytest.fixture(scope="session")
def ec_bidder(keys_dir: Path) -> Party:
    return make_party(keys_dir, "bidder-ec", ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="session")
def tender(keys_dir: Path) -> Party:
    return make_party(keys_dir, "tender-rsa3072", rsa.generate_private_key(65537, 3072))


@pytest.fixture(scope="session")
def other_tender(keys_dir: Path) -> Party:
    return make_party(keys_dir, "other-tender", rsa.generate_private_key(65537, 2048))


@pytest.fixture(scope="session")
def signing_time() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def form() -> BidForm:
    return BidForm(
        tender_id=TenderId("T-2026-001"),
        bidder_name="Acme Construction Ltd",
        price=Decimal("1234567.89"),
        currency="EUR",
        duration_days=180,
        fields={"lot": "2", "notes": "Prix ferme, TVA incluse.\nDélai: 6 mois"},
    )


@pytest.fixture(scope="session")
def documents(keys_dir: Path) -> dict[str, Path]:
    directory = keys_dir / "documents"
    directory.mkdir()
    (directory / "offer.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40)
    (directory / "prices.csv").write_text("item;price\nconcrete;100\n", encoding="utf-8")
    return {
        "offer.pdf": directory / "offer.pdf",
        "annexes/prices.csv": directory / "prices.csv",
    }


@pytest.fixture(scope="session")
def package_path(keys_dir: Path, form: BidForm, documents: dict[str, Path]) -> Path:
    path = keys_dir / "package.zip"
    with path.open("wb") as dst:
        build_package(form, documents, dst)
    return path


@pytest.fixture(scope="session")
def openssl() -> str:
    path = shutil.which("openssl")
    assert path is not None, "the openssl CLI is required for the interop tests"
    return path
