"""Quorum tenders: the tender key lives on a token of its own whose PIN only K of the N
named officers' shares rebuild. Nobody alone — not the operator, not one officer, not the
platform token — can open it, before or after the opening time; any K officers can."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from sealed_bid.client import SealedBidClient
from sealed_bid.devpki import OFFICERS
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.repository import Repository
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service, cert_der, officer_share, seal_for
from tests.e2e.support import assert_refused

pytestmark = [pytest.mark.usefixtures("clock_restored"), pytest.mark.token, pytest.mark.server]


_count = iter(range(1, 1000))


def _quorum_tender(service: Service, threshold: int = 2) -> pb.Tender:
    now = service.clock.now()
    return service.operator.create_tender(
        f"Q-{next(_count):04d}",
        "Bridge maintenance, quorum opening",
        now + timedelta(hours=1),
        now + timedelta(hours=1, minutes=30),
        ["dev-bidder-ca"],
        quorum_threshold=threshold,
        officer_certificates=tuple(cert_der(service.pki.officers[n].cert) for n in OFFICERS),
    )


def _submit(service: Service, tender: pb.Tender, bidder: str, workdir: Path) -> str:
    sealed = seal_for(service, tender, bidder, workdir)
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    return result.receipt.content.bid_id


def _past_opening(service: Service, tender: pb.Tender) -> None:
    opening = tender.opening_time.ToDatetime().replace(tzinfo=service.clock.now().tzinfo)
    if service.clock.now() <= opening:
        service.clock.set(opening + timedelta(seconds=1))


def _key_uses(service: Service, tender_id: str) -> int:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        return len(Repository(session).key_uses(tender_id))


def test_bidders_see_the_quorum_policy_and_the_key_is_not_on_the_platform_token(
    service: Service,
) -> None:
    tender = _quorum_tender(service)
    shown = service.bidder.get_tender(tender.tender_id).unlock_policy
    assert (shown.kind, shown.threshold) == ("quorum", 2)
    assert [o.subject for o in shown.officers] == [
        f"CN=Officer {n},OU=opening-officer,O=Sealed Bid Dev" for n in ("One", "Two", "Three")
    ]
    assert not service.app.context.token.tender_key_exists(tender.tender_id)


def test_nobody_alone_opens_a_quorum_tender(
    service: Service, officers: dict[str, SealedBidClient], tmp_path: Path
) -> None:
    tender = _quorum_tender(service)
    tid = tender.tender_id
    bid = _submit(service, tender, "alpha", tmp_path / "alpha")
    one = officer_share(service, officers["officer-1"], "officer-1", tid)
    three = officer_share(service, officers["officer-3"], "officer-3", tid)

    # Before the opening time: no share is taken, nothing opens.
    assert_refused(
        service,
        tid,
        lambda: officers["officer-1"].present_share(tid, one),
        "NOT_YET_OPEN",
        "FAILED_PRECONDITION",
    )
    assert_refused(
        service,
        tid,
        lambda: service.operator.open_tender(tid),
        "NOT_YET_OPEN",
        "FAILED_PRECONDITION",
    )
    _past_opening(service, tender)
    # After it: the operator alone, and one officer alone, cannot.
    assert_refused(
        service,
        tid,
        lambda: service.operator.open_tender(tid),
        "QUORUM_NOT_MET",
        "FAILED_PRECONDITION",
    )
    assert officers["officer-1"].present_share(tid, one).presented == 1
    assert_refused(
        service,
        tid,
        lambda: officers["officer-1"].present_share(tid, one),
        "SHARE_ALREADY_PRESENTED",
        "ALREADY_EXISTS",
    )
    # One officer holding a colleague's share still counts once, and the share is not theirs.
    assert_refused(
        service,
        tid,
        lambda: officers["officer-1"].present_share(tid, three),
        "SHARE_INVALID",
        "INVALID_ARGUMENT",
    )
    assert_refused(
        service,
        tid,
        lambda: service.operator.present_share(tid, three),
        "OFFICER_NOT_NAMED",
        "PERMISSION_DENIED",
    )
    assert_refused(
        service,
        tid,
        lambda: officers["officer-2"].present_share(tid, b"{}"),
        "SHARE_INVALID",
        "INVALID_ARGUMENT",
    )
    assert_refused(
        service,
        tid,
        lambda: service.operator.open_tender(tid),
        "QUORUM_NOT_MET",
        "FAILED_PRECONDITION",
    )
    assert _key_uses(service, tid) == 0
    assert_refused(
        service, tid, lambda: service.bidder.get_record(tid), "RECORD_NOT_FOUND", "NOT_FOUND"
    )
    # A second officer completes the quorum.
    assert officers["officer-3"].present_share(tid, three).presented == 2
    record = json.loads(service.operator.open_tender(tid).record_json)
    assert [(r["bid_id"], r["status"]) for r in record["bids"]] == [(bid, "OPENED")]
    custody = record["custody"]
    assert custody["policy"] == "quorum"
    assert custody["threshold"] == 2
    assert sorted(custody["officers_present"]) == [
        "CN=Officer One,OU=opening-officer,O=Sealed Bid Dev",
        "CN=Officer Three,OU=opening-officer,O=Sealed Bid Dev",
    ]


@pytest.mark.parametrize("pair", [("officer-1", "officer-2"), ("officer-2", "officer-3")])
def test_any_k_of_n_officers_open_it(
    service: Service,
    officers: dict[str, SealedBidClient],
    tmp_path: Path,
    pair: tuple[str, str],
) -> None:
    tender = _quorum_tender(service)
    tid = tender.tender_id
    bids = {
        _submit(service, tender, "alpha", tmp_path / "a"),
        _submit(service, tender, "beta", tmp_path / "b"),
    }
    shares = {name: officer_share(service, officers[name], name, tid) for name in pair}
    _past_opening(service, tender)
    for name in pair:
        officers[name].present_share(tid, shares[name])
    record = json.loads(service.operator.open_tender(tid).record_json)
    assert {(r["bid_id"], r["status"]) for r in record["bids"]} == {(b, "OPENED") for b in bids}
    assert record["time_proof"]["tsa_time"] >= record["opening_time"]


def test_an_officer_is_refused_the_share_of_a_tender_it_does_not_serve(
    service: Service, officers: dict[str, SealedBidClient]
) -> None:
    now = service.clock.now()
    tender = service.operator.create_tender(
        f"Q-{next(_count):04d}",
        "Two officers only",
        now + timedelta(hours=1),
        now + timedelta(hours=2),
        ["dev-bidder-ca"],
        quorum_threshold=2,
        officer_certificates=tuple(
            cert_der(service.pki.officers[n].cert) for n in ("officer-1", "officer-2")
        ),
    )
    assert_refused(
        service,
        tender.tender_id,
        lambda: officers["officer-3"].get_officer_share(tender.tender_id),
        "OFFICER_NOT_NAMED",
        "PERMISSION_DENIED",
    )


def test_one_person_cannot_be_two_officers(service: Service) -> None:
    now = service.clock.now()
    cert = cert_der(service.pki.officers["officer-1"].cert)
    with pytest.raises(Exception) as refused:
        service.operator.create_tender(
            f"Q-{next(_count):04d}",
            "Same officer twice",
            now + timedelta(hours=1),
            now + timedelta(hours=2),
            ["dev-bidder-ca"],
            quorum_threshold=2,
            officer_certificates=(cert, cert),
        )
    assert getattr(refused.value, "code", None) == "INVALID_TENDER"


def test_an_oversized_share_is_refused_before_it_is_parsed(
    service: Service, officers: dict[str, SealedBidClient]
) -> None:
    tender = _quorum_tender(service)
    assert_refused(
        service,
        tender.tender_id,
        lambda: officers["officer-1"].present_share(tender.tender_id, b"{" * 5000),
        "MALFORMED_REQUEST",
        "INVALID_ARGUMENT",
    )
    assert service.app.context.shares.presented(tender.tender_id) == []
