"""The walking skeleton end to end over real gRPC/TLS: create, seal, submit, receipt,
replace, withdraw, refuse early opening, open, record."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from sealed_bid.client import ServiceError
from sealed_bid.service.receipts import verify_receipt
from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.server, pytest.mark.token]


def _root_der(service: Service) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(service.pki.platform_root.cert.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_sealed_bid_is_accepted_with_a_receipt_that_verifies_offline(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)
    sealed = seal_for(service, tender, "alpha", tmp_path)
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    assert not result.duplicate
    verified = verify_receipt(result.receipt.signed_receipt, _root_der(service))
    assert verified.content.tender_id == tender.tender_id
    assert verified.content.envelope_sha256 == sealed.sha256
    assert verified.content.size == sealed.size
    assert verified.content.bid_id == result.receipt.content.bid_id


def test_opening_before_the_opening_time_is_refused_and_touches_no_key(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)
    sealed = seal_for(service, tender, "beta", tmp_path)
    service.bidder.submit_bid(tender.tender_id, sealed.envelope_path, sealed.outer_signature_der)
    service.clock.advance(timedelta(hours=1, minutes=29))  # past the deadline, not yet open
    try:
        with pytest.raises(ServiceError) as refused:
            service.operator.open_tender(tender.tender_id)
        assert refused.value.code == "NOT_YET_OPEN"
        assert refused.value.status == "FAILED_PRECONDITION"
        assert service.app.context.token.private_key_uses.get(tender.tender_id, 0) == 0
    finally:
        service.clock.advance(-timedelta(hours=1, minutes=29))


def test_full_lifecycle_opens_current_bids_only(service: Service, tmp_path: Path) -> None:
    tender = new_tender(service)
    tid = tender.tender_id
    first = seal_for(service, tender, "alpha", tmp_path / "a1", price="900000.00")
    service.bidder.submit_bid(tid, first.envelope_path, first.outer_signature_der)
    service.clock.advance(timedelta(seconds=5))
    second = seal_for(service, tender, "alpha", tmp_path / "a2", price="850000.00")
    service.bidder.submit_bid(tid, second.envelope_path, second.outer_signature_der)
    beta = seal_for(service, tender, "beta", tmp_path / "b", price="870000.50")
    beta_result = service.bidder.submit_bid(tid, beta.envelope_path, beta.outer_signature_der)
    service.clock.advance(timedelta(hours=2))
    try:
        record = service.operator.open_tender(tid)
        data = json.loads(record.record_json)
        opened = {b["bidder"]["organisation"]: b for b in data["bids"]}
        alpha_company = service.pki.bidders["alpha"].company
        beta_company = service.pki.bidders["beta"].company
        assert set(opened) == {alpha_company, beta_company}
        assert all(b["status"] == "OPENED" for b in data["bids"])
        assert opened[alpha_company]["form"]["price"] == "850000.00"
        assert opened[beta_company]["envelope_sha256"] == beta.sha256
        assert [b["status"] for b in data["not_opened"]] == ["REPLACED"]
        # Two current bids, two key uses each: the sealed signer identity, the envelope.
        assert service.app.context.token.private_key_uses[tid] == 4
        again = service.bidder.get_record(tid)
        assert again.record_sha256 == record.record_sha256
        assert beta_result.receipt.content.bid_id in record.record_json
    finally:
        service.clock.advance(-timedelta(hours=2, seconds=5))


def test_the_audit_log_verifies_with_the_audit_certificate_and_names_no_bidder(
    service: Service, tmp_path: Path
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from sealed_bid.storage.db import unit_of_work

    tender = new_tender(service)
    sealed = seal_for(service, tender, "gamma", tmp_path)
    service.bidder.submit_bid(tender.tender_id, sealed.envelope_path, sealed.outer_signature_der)
    cert = x509.load_pem_x509_certificate(service.pki.platform_cert("platform-audit").read_bytes())
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)

    def verify(message: bytes, signature: bytes) -> None:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())

    with unit_of_work(service.app.context.engine, read_only=True) as session:
        checked = service.app.context.audit.verify_chain(session, verify_signature=verify)
        entries = service.app.context.audit.entries(session, tender_id=tender.tender_id)
        text = " ".join(e.fields_json for e in entries)
    assert checked >= 2
    assert [e.event for e in entries] == [
        "tender.created",
        "bid.accepted",
        "receipt.time_stamped",
    ]
    gamma = service.pki.bidders["gamma"]
    assert gamma.company not in text and gamma.credit_code not in text
