"""Destroying a tender key (``DestroyTenderKey``, operators): only after the opening and
once the bidders' response window has closed; then the key is gone from its token, the
record shows when, and the audit log says who. A quorum tender's key needs K officers'
shares again. Idempotent; every refusal changes nothing."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from sealed_bid.cli.main import main
from sealed_bid.client import SealedBidClient
from sealed_bid.devpki import OFFICERS
from sealed_bid.domain.shares import ShareRecord, combine_pin
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import AuditEntry
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service, cert_der, officer_share, seal_for
from tests.e2e.support import assert_refused

pytestmark = [pytest.mark.usefixtures("clock_restored"), pytest.mark.token, pytest.mark.server]

_ids = itertools.count(1)
WINDOW = timedelta(minutes=5)


def _create(service: Service, *, quorum: bool = False) -> pb.Tender:
    now = service.clock.now()
    officers = tuple(cert_der(service.pki.officers[n].cert) for n in OFFICERS) if quorum else ()
    return service.operator.create_tender(
        f"K-{next(_ids):04d}",
        "Water mains renewal",
        now + timedelta(minutes=5),
        now + timedelta(minutes=10),
        ["dev-bidder-ca"],
        response_window_seconds=int(WINDOW.total_seconds()),
        quorum_threshold=2 if quorum else 0,
        officer_certificates=officers,
    )


def _submit(service: Service, tender: pb.Tender, workdir: Path) -> str:
    sealed = seal_for(service, tender, "alpha", workdir)
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    return result.receipt.content.bid_id


def _past_opening(service: Service, tender: pb.Tender) -> None:
    service.clock.set(tender.opening_time.ToDatetime(tzinfo=UTC) + timedelta(seconds=1))


def _past_window(service: Service, tender_id: str) -> None:
    closes = service.bidder.get_record(tender_id).responses_close_at.ToDatetime(tzinfo=UTC)
    service.clock.set(closes)


def _destroyed_entries(service: Service, tender_id: str) -> list[dict[str, object]]:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        rows = session.scalars(
            select(AuditEntry.fields_json).where(
                AuditEntry.tender_id == tender_id, AuditEntry.event == "key.destroyed"
            )
        ).all()
    return [json.loads(r) for r in rows]


# --- Scheduled tenders --------------------------------------------------------------------
def test_the_key_is_kept_until_the_window_closes_then_destroyed_once(
    service: Service, tmp_path: Path
) -> None:
    tender = _create(service)
    tid = tender.tender_id
    token = service.app.context.token
    _submit(service, tender, tmp_path)
    _past_opening(service, tender)
    opened = service.operator.open_tender(tid)
    assert opened.responses_close_at.ToDatetime(tzinfo=UTC) > service.clock.now()
    assert not opened.HasField("key_destroyed_at")

    service.clock.advance(WINDOW - timedelta(seconds=2))
    assert_refused(
        service,
        tid,
        lambda: service.operator.destroy_tender_key(tid),
        "RESPONSE_WINDOW_OPEN",
        "FAILED_PRECONDITION",
    )
    assert token.tender_key_exists(tid)

    _past_window(service, tid)
    record = service.operator.destroy_tender_key(tid)
    assert not token.tender_key_exists(tid)
    assert (record.record_json, record.record_sha256) == (opened.record_json, opened.record_sha256)
    destroyed_at = record.key_destroyed_at.ToDatetime(tzinfo=UTC)
    assert destroyed_at == service.clock.now()
    assert service.bidder.get_record(tid).key_destroyed_at == record.key_destroyed_at
    (entry,) = _destroyed_entries(service, tid)
    assert entry["policy"] == "scheduled" and entry["key_found"] is True
    assert "OU=operator" in str(entry["operator"])

    # Idempotent: the same record and time, no second destruction or audit entry.
    service.clock.advance(timedelta(minutes=1))
    again = service.operator.destroy_tender_key(tid)
    assert again.key_destroyed_at == record.key_destroyed_at
    assert len(_destroyed_entries(service, tid)) == 1


def test_before_the_opening_it_is_RECORD_NOT_FOUND(service: Service, tmp_path: Path) -> None:
    tender = _create(service)
    _submit(service, tender, tmp_path)
    _past_opening(service, tender)  # due, but not opened
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.operator.destroy_tender_key(tender.tender_id),
        "RECORD_NOT_FOUND",
        "NOT_FOUND",
    )
    assert service.app.context.token.tender_key_exists(tender.tender_id)


def test_only_operators_destroy_keys(service: Service, tmp_path: Path) -> None:
    tender = _create(service)
    tid = tender.tender_id
    _submit(service, tender, tmp_path)
    _past_opening(service, tender)
    service.operator.open_tender(tid)
    _past_window(service, tid)
    assert_refused(
        service,
        tid,
        lambda: service.observer.destroy_tender_key(tid),
        "OPERATOR_REQUIRED",
        "PERMISSION_DENIED",
    )
    assert_refused(  # not served on the public port at all
        service,
        tid,
        lambda: service.bidder.destroy_tender_key(tid),
        "GRPC_UNIMPLEMENTED",
        "UNIMPLEMENTED",
    )
    assert_refused(
        service,
        tid,
        lambda: service.operator.destroy_tender_key("T-no-such"),
        "TENDER_NOT_FOUND",
        "NOT_FOUND",
    )
    assert service.app.context.token.tender_key_exists(tid)


def test_the_cli_destroys_the_key(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tender = _create(service)
    tid = tender.tender_id
    _submit(service, tender, tmp_path)
    _past_opening(service, tender)
    service.operator.open_tender(tid)
    _past_window(service, tid)
    pki = service.pki
    connection = [
        *("--address", f"127.0.0.1:{service.server.operator_port}"),
        *("--ca-file", str(pki.platform_root.cert)),
        *("--cert", str(pki.operator.cert), "--key", str(pki.operator.key)),
    ]
    assert main(["tender", "destroy-key", tid, *connection]) == 0
    assert f"tender key of {tid} destroyed at" in capsys.readouterr().out
    assert not service.app.context.token.tender_key_exists(tid)


# --- Quorum tenders -----------------------------------------------------------------------
def test_a_quorum_tenders_key_needs_k_shares_again_and_is_then_gone(
    service: Service, officers: dict[str, SealedBidClient], tmp_path: Path
) -> None:
    tender = _create(service, quorum=True)
    tid = tender.tender_id
    _submit(service, tender, tmp_path)
    shares = {n: officer_share(service, officers[n], n, tid) for n in ("officer-1", "officer-3")}
    _past_opening(service, tender)
    for name, share in shares.items():
        officers[name].present_share(tid, share)
    service.operator.open_tender(tid)
    assert_refused(  # still within the response window
        service,
        tid,
        lambda: service.operator.destroy_tender_key(tid),
        "RESPONSE_WINDOW_OPEN",
        "FAILED_PRECONDITION",
    )
    _past_window(service, tid)
    # The opening forgot its shares; one officer alone is not enough.
    assert_refused(
        service,
        tid,
        lambda: service.operator.destroy_tender_key(tid),
        "QUORUM_NOT_MET",
        "FAILED_PRECONDITION",
    )
    officers["officer-1"].present_share(tid, shares["officer-1"])
    assert_refused(
        service,
        tid,
        lambda: service.operator.destroy_tender_key(tid),
        "QUORUM_NOT_MET",
        "FAILED_PRECONDITION",
    )
    officers["officer-3"].present_share(tid, shares["officer-3"])
    record = service.operator.destroy_tender_key(tid)
    assert record.HasField("key_destroyed_at")
    assert service.app.context.shares.presented(tid) == []
    (entry,) = _destroyed_entries(service, tid)
    assert (entry["policy"], entry["key_found"]) == ("quorum", True)
    assert entry["officers"] == (
        "CN=Officer One,OU=opening-officer,O=Sealed Bid Dev,"
        "CN=Officer Three,OU=opening-officer,O=Sealed Bid Dev"
    )
    # The token is still there (its PIN still opens it), the key is not.
    quorum_tokens = service.app.context.quorum_tokens
    assert quorum_tokens is not None
    pin = combine_pin([ShareRecord.from_bytes(s) for s in shares.values()]).decode("ascii")
    with quorum_tokens.open(tid, pin) as session:
        assert session.key_destroyed()
    # Idempotent without any share.
    assert service.operator.destroy_tender_key(tid).key_destroyed_at == record.key_destroyed_at
