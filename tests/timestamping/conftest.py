"""Shared real components for the trusted-time tests: dev TSAs made once per session
(a trusted one, an untrusted one, RSA and EC), TSA certificates with bad extended key
usages issued by the trusted root, and a running dev TSA server on 127.0.0.1."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealed_bid.crypto.certs import CertProfile, KeyUsageName, issue_certificate
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.timestamping.dev_tsa import (
    DevTsaFiles,
    DevTsaServer,
    load_dev_tsa_signer,
    make_dev_tsa,
)

DIGEST = hashlib.sha256(b"the opening request of tender T-1").digest()


@dataclass(frozen=True)
class BadTsa:
    """A TSA signer whose certificate the trusted dev root issued with a wrong profile."""

    signer: SoftwareSigner
    cert_der: bytes


@pytest.fixture(scope="session")
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="session")
def tsa(tmp_path_factory: pytest.TempPathFactory, now: datetime) -> DevTsaFiles:
    """The trusted dev TSA (EC keys)."""
    return make_dev_tsa(tmp_path_factory.mktemp("tsa"), now)


@pytest.fixture(scope="session")
def rsa_tsa(tmp_path_factory: pytest.TempPathFactory, now: datetime) -> DevTsaFiles:
    """A second dev TSA with RSA keys; its root is trusted only where a test says so."""
    return make_dev_tsa(tmp_path_factory.mktemp("rsa-tsa"), now, key_kind="rsa")


@pytest.fixture(scope="session")
def roots(tsa: DevTsaFiles) -> list[bytes]:
    """The trust list of most tests: only the EC dev TSA's root."""
    return [tsa.root_der()]


def _issue_bad(tsa: DevTsaFiles, now: datetime, profile: CertProfile) -> BadTsa:
    root_key = serialization.load_pem_private_key(tsa.root_key.read_bytes(), password=None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Badly Profiled TSA")])
    cert = issue_certificate(
        SoftwareSigner(root_key, tsa.root_der()),
        subject,
        key.public_key(),
        now - timedelta(days=1),
        now + timedelta(days=30),
        None,
        profile,
    )
    return BadTsa(SoftwareSigner(key, cert), cert)


SIGNING: frozenset[KeyUsageName] = frozenset({"digital_signature", "non_repudiation"})


@pytest.fixture(scope="session")
def bad_tsas(tsa: DevTsaFiles, now: datetime) -> dict[str, BadTsa]:
    """Certificates chaining to the trusted root but not fit for time-stamping."""
    ts, client = ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CLIENT_AUTH
    profiles = {
        "no-eku": CertProfile(key_usage=SIGNING),
        "eku-not-critical": CertProfile(key_usage=SIGNING, extended_key_usage=(ts,)),
        "eku-extra": CertProfile(
            key_usage=SIGNING, extended_key_usage=(ts, client), extended_key_usage_critical=True
        ),
        "eku-other": CertProfile(
            key_usage=SIGNING, extended_key_usage=(client,), extended_key_usage_critical=True
        ),
        "key-encipherment": CertProfile(
            key_usage=frozenset({"key_encipherment"}),
            extended_key_usage=(ts,),
            extended_key_usage_critical=True,
        ),
    }
    return {name: _issue_bad(tsa, now, profile) for name, profile in profiles.items()}


@pytest.fixture(scope="session")
def tsa_server(tsa: DevTsaFiles) -> Iterator[DevTsaServer]:
    """The trusted dev TSA on 127.0.0.1 with the real clock."""
    with DevTsaServer(load_dev_tsa_signer(tsa)) as server:
        yield server
