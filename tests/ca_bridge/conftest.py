"""Session fixtures for the CA bridge: one development PKI and its trust store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca_bridge.trust_store import TrustStore
from sealed_bid.devpki import DevPki, make_dev_pki

SignerCerts = tuple[bytes, list[bytes]]


def pem_file_ders(path: Path) -> list[bytes]:
    return [
        cert.public_bytes(serialization.Encoding.DER)
        for cert in x509.load_pem_x509_certificates(path.read_bytes())
    ]


@pytest.fixture(scope="session")
def pki_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory: pytest.TempPathFactory, pki_now: datetime) -> DevPki:
    return make_dev_pki(tmp_path_factory.mktemp("ca-bridge-devpki"), pki_now)


@pytest.fixture(scope="session")
def trust_store(dev_pki: DevPki) -> TrustStore:
    return TrustStore.from_directory(dev_pki.trust_dir)


@pytest.fixture(scope="session")
def signer_certs(dev_pki: DevPki) -> Callable[[str], SignerCerts]:
    """A bidder's certificate and the CA certificates it would put in its CMS."""

    def load(name: str) -> SignerCerts:
        files = dev_pki.bidders[name]
        return pem_file_ders(files.cert)[0], pem_file_ders(files.chain)

    return load


@pytest.fixture(scope="session")
def ca_ders(dev_pki: DevPki) -> dict[str, bytes]:
    """DER of the dev PKI's CA certificates and CRLs, by role."""
    return {
        "root": pem_file_ders(dev_pki.bidder_root.cert)[0],
        "issuing": pem_file_ders(dev_pki.bidder_issuing.cert)[0],
        "rogue": pem_file_ders(dev_pki.rogue_ca.cert)[0],
        "root_crl": dev_pki.bidder_root_crl.read_bytes(),
        "issuing_crl": dev_pki.bidder_issuing_crl.read_bytes(),
    }
