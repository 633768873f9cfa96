"""A CRL added to the trust store after a revocation applies to the next submission,
without a restart, and the change is in the signed audit log."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ca_bridge.db_trust_store import DbTrustStore
from sealed_bid.client import ServiceError
from sealed_bid.crypto.signed_data import sign_detached
from sealed_bid.devpki import BIDDER_CA_ID
from sealed_bid.storage.db import unit_of_work
from tests.e2e.conftest import Service, new_tender, seal_for
from tests.e2e.support import dev_issuing_ca, new_dev_bidder

pytestmark = [pytest.mark.server, pytest.mark.token]


def test_a_crl_added_after_a_revocation_refuses_the_next_submission_without_restart(
    service: Service, tmp_path: Path
) -> None:
    now = service.clock.now()
    issuing_cert, issuing_key = dev_issuing_ca(service)
    epsilon = new_dev_bidder(service, "Epsilon Bridges Co., Ltd.")
    cert_der = epsilon.certificate_der
    tender = new_tender(service)
    tid = tender.tender_id

    def submit(workdir: Path) -> None:
        sealed = seal_for(service, tender, "alpha", workdir)  # alpha's package; epsilon signs
        envelope = sealed.envelope_path.read_bytes()
        signature = sign_detached(epsilon, hashlib.sha256(envelope).digest(), service.clock.now())
        service.bidder.submit_bid(tid, sealed.envelope_path, signature)

    submit(tmp_path / "first")  # accepted: not revoked yet

    store = DbTrustStore(service.app.context.engine)  # as `sealed-bid ca add-crl` does
    [held] = [  # the CRL the service holds now (other tests may have added newer ones)
        crl
        for crl in map(x509.load_der_x509_crl, store.snapshot().material(BIDDER_CA_ID).crls)
        if crl.issuer == issuing_cert.subject
    ]
    number = held.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuing_cert.subject)
        .last_update(max(now - timedelta(minutes=1), held.last_update_utc))
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
