"""Replays against the running service: the same bid sent again gets its original receipt
back (a retry after a lost response), an older bid sent after a newer one is refused with
BID_REPLAYED and stores nothing, and the newer bid stays the one that is opened."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import Service, new_tender, seal_for
from tests.e2e.support import assert_refused, sign_as, stored, whole

pytestmark = [pytest.mark.server, pytest.mark.token]


def test_the_same_envelope_and_signature_twice_returns_the_same_receipt_as_duplicate(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)
    sealed = seal_for(service, tender, "alpha", tmp_path)
    first = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    before = stored(service, tender.tender_id)
    again = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    assert not first.duplicate
    assert again.duplicate
    assert again.receipt.signed_receipt == first.receipt.signed_receipt
    assert again.receipt.content == first.receipt.content
    assert stored(service, tender.tender_id) == before
    # The same envelope under a fresh signature is still the same bid: same receipt.
    data = sealed.envelope_path.read_bytes()
    start = service.clock.now()
    service.clock.advance(timedelta(seconds=3))
    try:
        resigned = service.bidder.submit_stream(
            iter(whole(tender.tender_id, data, sign_as(service, "alpha", data)))
        )
    finally:
        service.clock.set(start)
    assert resigned.duplicate
    assert resigned.receipt.signed_receipt == first.receipt.signed_receipt
    assert stored(service, tender.tender_id) == before


def test_an_older_envelope_after_a_newer_one_is_BID_REPLAYED_and_the_newer_stays_current(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)
    tid = tender.tender_id
    start = service.clock.now()
    try:
        older = seal_for(service, tender, "gamma", tmp_path / "older", price="500.00")
        older_result = service.bidder.submit_bid(
            tid, older.envelope_path, older.outer_signature_der
        )
        service.clock.advance(timedelta(seconds=1))
        # Sealed now but held back: signed before the newer bid, never sent until later.
        held_back = seal_for(service, tender, "gamma", tmp_path / "held", price="600.00")
        service.clock.advance(timedelta(seconds=1))
        newer = seal_for(service, tender, "gamma", tmp_path / "newer", price="450.00")
        newer_result = service.bidder.submit_bid(
            tid, newer.envelope_path, newer.outer_signature_der
        )

        # The replaced envelope, exactly as first sent:
        older_data = older.envelope_path.read_bytes()
        assert_refused(
            service,
            tid,
            lambda: service.bidder.submit_stream(
                iter(whole(tid, older_data, older.outer_signature_der))
            ),
            "BID_REPLAYED",
            "FAILED_PRECONDITION",
        )
        # An envelope never sent, but signed before the current one (the blob store
        # must not keep it either: stored() compares every blob and the tmp dir):
        held_data = held_back.envelope_path.read_bytes()
        assert_refused(
            service,
            tid,
            lambda: service.bidder.submit_stream(
                iter(whole(tid, held_data, held_back.outer_signature_der))
            ),
            "BID_REPLAYED",
            "FAILED_PRECONDITION",
        )

        # The server still takes a normal bid from someone else.
        other = seal_for(service, tender, "beta", tmp_path / "beta")
        other_result = service.bidder.submit_bid(
            tid, other.envelope_path, other.outer_signature_der
        )

        # The newer bid is current, and the opening shows its price.
        service.clock.advance(timedelta(hours=2))
        record = json.loads(service.operator.open_tender(tid).record_json)
    finally:
        service.clock.set(start)
    opened = {b["bid_id"]: b for b in record["bids"]}
    assert set(opened) == {newer_result.receipt.content.bid_id, other_result.receipt.content.bid_id}
    assert all(b["status"] == "OPENED" for b in opened.values())
    assert opened[newer_result.receipt.content.bid_id]["form"]["price"] == "450.00"
    assert [(b["bid_id"], b["status"]) for b in record["not_opened"]] == [
        (older_result.receipt.content.bid_id, "REPLACED")
    ]
    # Two current bids, two key uses each: the sealed signer identity, the envelope.
    assert service.app.context.token.private_key_uses[tid] == 4
