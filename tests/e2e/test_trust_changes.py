"""A CRL added to the trust store after a revocation applies to the next submission,
without a restart, and the change is in the signed audit log."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca_bridge.db_trust_store import DbTrustStore
from sealed_bid.client import ServiceError
from sealed_bid.crypto.certs import issue_certificate, signing_profile
from sealed_bid.crypto.signed_data import sign_detached
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.devpki import BIDDER_CA_ID
from sealed_bid.storage.db import unit_of_work
from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.server, pytest.mark.token]


def _issuing(service: Service) -> tuple[x509.Certificate, object]:
    files = service.pki.bidder_issuing
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    return cert, key


def test_a_crl_added_after_a_revocation_refuses_the_next_submission_without_restart(
    service: Service, tmp_path: Path
) -> None:
    now = service.clock.now()
    issuing_cert, issuing_key = _issuing(service)
    issuing_der = issuing_cert.public_bytes(serialization.Encoding.DER)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Epsilon Bridges Co., Ltd."),
            x509.NameAttribute(NameOID.COMMON_NAME, "Epsilon Bridges Co., Ltd."),
        ]
    )
    cert_der = issue_certificate(
        SoftwareSigner(issuing_key, issuing_der),  # type: ignore[arg-type]
        subject,
        signer_key.public_key(),
        now - timedelta(days=1),
        now + timedelta(days=365),
        None,
        signing_profile(),
    )
    epsilon = SoftwareSigner(signer_key, cert_der)
    tender = new_tender(service)
    tid = tender.tender_id

    def submit(workdir: Path) -> None:
        sealed = seal_for(service, tender, "alpha", workdir)  # alpha's package; epsilon signs
        envelope = sealed.envelope_path.read_bytes()
        signature = sign_detached(epsilon, hashlib.sha256(envelope).digest(), service.clock.now())
        service.bidder.submit_bid(tid, sealed.envelope_path, signature)

    submit(tmp_path / "first")  # accepted: not revoked yet

    held = x509.load_der_x509_crl(service.pki.bidder_issuing_crl.read_bytes())
    number = held.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuing_cert.subject)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + timedelta(days=7))
        .add_extension(x509.CRLNumber(number + 1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuing_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    for entry in held:
        builder = builder.add_revoked_certificate(entry)
    builder = builder.add_revoked_certificate(
        x509.RevokedCertificateBuilder()
        .serial_number(x509.load_der_x509_certificate(cert_der).serial_number)
        .revocation_date(now - timedelta(seconds=30))
        .build()
    )
    crl = builder.sign(issuing_key, hashes.SHA256())  # type: ignore[arg-type]
    store = DbTrustStore(service.app.context.engine)  # as `sealed-bid ca add-crl` does
    applied = store.add_crl(
        BIDDER_CA_ID, crl.public_bytes(serialization.Encoding.DER), "Operator One", "operator"
    )
    assert applied.changed

    service.clock.advance(timedelta(seconds=10))
    try:
        with pytest.raises(ServiceError) as refused:
            submit(tmp_path / "second")
    finally:
        service.clock.advance(-timedelta(seconds=10))
    assert (refused.value.code, refused.value.status) == ("SIGNER_REVOKED", "PERMISSION_DENIED")
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        events = [e.event for e in service.app.context.audit.entries(session, limit=100_000)]
    assert any(e.startswith("trust.") and "crl" in e for e in events), events[-5:]
