"""The opening time is proven by the time-stamping authority, not assumed from the local
clock: a service whose clock runs ahead cannot open early, and the record carries the TSA
token that proves when the first key use became allowed. Receipts carry a TSA token too."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.repository import Repository
from sealed_bid.timestamping.cades import signature_digest, signature_timestamp_of
from sealed_bid.timestamping.rfc3161 import verify_token
from tests.e2e.conftest import Service, new_tender, seal_for
from tests.e2e.support import assert_refused

pytestmark = [pytest.mark.usefixtures("clock_restored"), pytest.mark.token, pytest.mark.server]


def _key_uses(service: Service, tender_id: str) -> int:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        return len(Repository(session).key_uses(tender_id))


def _tsa_root(service: Service) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = (service.settings.pki_path / "tsa" / "tsa-root.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_a_clock_set_ahead_cannot_open_early(service: Service, tmp_path: Path) -> None:
    tender = new_tender(service)
    tid = tender.tender_id
    sealed = seal_for(service, tender, "gamma", tmp_path)
    service.bidder.submit_bid(tid, sealed.envelope_path, sealed.outer_signature_der)
    opening = tender.opening_time.ToDatetime().replace(tzinfo=service.clock.now().tzinfo)
    # The host's clock says 5 minutes past the opening; the true time (the TSA's) is
    # 2 hours earlier, i.e. before the opening.
    service.clock.set(opening + timedelta(minutes=5))
    service.tsa_skew = -timedelta(hours=2)
    try:
        refused = assert_refused(
            service,
            tid,
            lambda: service.operator.open_tender(tid),
            "OPENING_TIME_NOT_PROVEN",
            "FAILED_PRECONDITION",
        )
    finally:
        service.tsa_skew = timedelta(0)
    assert "time-stamping authority" in refused.message
    assert _key_uses(service, tid) == 0
    assert service.app.context.token.private_key_uses.get(tid, 0) == 0
    # With the true time past the opening, the same request opens, and the record holds
    # the TSA token over the opening request.
    record = json.loads(service.operator.open_tender(tid).record_json)
    proof = record["time_proof"]
    token = verify_token(
        base64.b64decode(proof["tsa_token"]),
        hashlib.sha256(proof["request_json"].encode("utf-8")).digest(),
        [_tsa_root(service)],
    )
    assert token.gen_time.isoformat().replace("+00:00", "Z")[:19] == proof["tsa_time"][:19]
    assert proof["tsa_time"] >= record["opening_time"]
    assert json.loads(proof["request_json"])["tender_id"] == tid


def test_receipts_carry_a_tsa_token_over_the_receipt_signature(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)
    sealed = seal_for(service, tender, "alpha", tmp_path)
    receipt = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    ).receipt
    token_der = signature_timestamp_of(receipt.signed_receipt)
    assert token_der is not None
    token = verify_token(token_der, signature_digest(receipt.signed_receipt), [_tsa_root(service)])
    received = receipt.content.received_at.ToDatetime().replace(tzinfo=token.gen_time.tzinfo)
    assert abs(token.gen_time - received) < timedelta(seconds=5)


def test_receipt_verification_checks_the_time_stamp_against_the_tsa_root(
    service: Service, tmp_path: Path
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from sealed_bid.errors import ReceiptInvalid
    from sealed_bid.service.receipts import verify_receipt

    tender = new_tender(service)
    sealed = seal_for(service, tender, "beta", tmp_path)
    receipt = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    ).receipt.signed_receipt
    platform_root = x509.load_pem_x509_certificate(
        service.pki.platform_root.cert.read_bytes()
    ).public_bytes(serialization.Encoding.DER)
    verified = verify_receipt(receipt, platform_root, [_tsa_root(service)])
    assert verified.timestamped_at is not None
    # Another TSA root (here: the platform root) does not vouch for the time stamp.
    with pytest.raises(ReceiptInvalid, match="time stamp"):
        verify_receipt(receipt, platform_root, [platform_root])


def test_a_tsa_outage_never_refuses_a_bid_its_receipt_is_stamped_later(
    service: Service, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from sealed_bid.storage.models import AuditEntry

    tender = new_tender(service)
    sealed = seal_for(service, tender, "gamma", tmp_path)
    service.tsa_down[0] = True
    try:
        first = service.bidder.submit_bid(
            tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
        ).receipt
        again = service.bidder.submit_bid(  # a retry while the TSA is still down
            tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
        )
        # Openings are refused while the time cannot be proven.
        opening = tender.opening_time.ToDatetime().replace(tzinfo=service.clock.now().tzinfo)
        saved = service.clock.now()
        service.clock.set(opening)
        try:
            refused = assert_refused(
                service,
                tender.tender_id,
                lambda: service.operator.open_tender(tender.tender_id),
                "TIMESTAMP_UNAVAILABLE",
                "UNAVAILABLE",
            )
        finally:
            service.clock.set(saved)
        assert "time-stamping" in refused.message.lower() or "tsa" in refused.message.lower()
    finally:
        service.tsa_down[0] = False
    bid_id = first.content.bid_id
    # Accepted and stored, with a valid (unstamped) receipt.
    assert signature_timestamp_of(first.signed_receipt) is None
    assert again.duplicate and again.receipt.signed_receipt == first.signed_receipt
    # With the TSA back, fetching the receipt stamps it (once), and the stamp verifies.
    fetched = service.bidder.get_receipt(tender.tender_id, bid_id).signed_receipt
    token_der = signature_timestamp_of(fetched)
    assert token_der is not None
    verify_token(token_der, signature_digest(fetched), [_tsa_root(service)])
    assert service.bidder.get_receipt(tender.tender_id, bid_id).signed_receipt == fetched
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        stamps = session.scalars(
            select(AuditEntry).where(
                AuditEntry.bid_id == bid_id, AuditEntry.event == "receipt.time_stamped"
            )
        ).all()
    assert len(stamps) == 1
