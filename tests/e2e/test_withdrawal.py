"""Withdrawal against the running service: only the bidder's own, newer, signed statement
withdraws a bid, before the deadline; every other statement is refused with a stable code
and changes nothing; a withdrawn bid is listed WITHDRAWN and its key is never used.

Signing times are set explicitly (the service accepts them within its skew of the shared
clock), so the tests order a bidder's statements without moving the clock."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealed_bid.cli.common import load_signer
from sealed_bid.client.client import SubmitResult
from sealed_bid.crypto.seal import SealedBid
from sealed_bid.crypto.signed_data import sign_attached, sign_detached
from sealed_bid.domain.ids import BidId, TenderId
from sealed_bid.domain.withdrawal import WithdrawalStatement
from sealed_bid.service.receipts import verify_receipt
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import BidStatus
from sealed_bid.storage.repository import Repository
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service, new_tender, seal_for
from tests.e2e.support import assert_refused

pytestmark = [pytest.mark.server, pytest.mark.token]


def signed(service: Service, bidder: str, content: bytes, when: datetime) -> bytes:
    files = service.pki.bidders[bidder]
    return sign_attached(load_signer(files.key, files.cert), content, when)


def statement(service: Service, bidder: str, tender_id: str, bid_id: str, when: datetime) -> bytes:
    content = WithdrawalStatement(TenderId(tender_id), BidId(bid_id)).to_bytes()
    return signed(service, bidder, content, when)


def submit(service: Service, tender_id: str, sealed: SealedBid) -> SubmitResult:
    return service.bidder.submit_bid(tender_id, sealed.envelope_path, sealed.outer_signature_der)


def status_of(service: Service, bid_id: str) -> BidStatus:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        return Repository(session).get_bid(BidId(bid_id)).status


@pytest.fixture(scope="module")
def t0(service: Service) -> datetime:
    return service.clock.now()


@pytest.fixture(scope="module")
def tender(service: Service) -> pb.Tender:
    return new_tender(service)


@dataclass(frozen=True)
class Withdrawn:
    bid: SubmitResult
    envelope: SealedBid
    held_back: SealedBid
    """Sealed before the withdrawal, never sent before it."""
    statement: bytes
    receipt: pb.Receipt


@pytest.fixture(scope="module")
def alpha_withdrawn(
    service: Service, tender: pb.Tender, t0: datetime, tmp_path_factory: pytest.TempPathFactory
) -> Withdrawn:
    work = tmp_path_factory.mktemp("alpha")
    envelope = seal_for(service, tender, "alpha", work / "bid", signing_time=t0)
    bid = submit(service, tender.tender_id, envelope)
    held_back = seal_for(
        service, tender, "alpha", work / "held", signing_time=t0 + timedelta(seconds=1)
    )
    withdrawal = statement(
        service, "alpha", tender.tender_id, bid.receipt.content.bid_id, t0 + timedelta(seconds=2)
    )
    return Withdrawn(bid, envelope, held_back, withdrawal, service.bidder.withdraw_bid(withdrawal))


@pytest.fixture(scope="module")
def beta_bid(
    service: Service, tender: pb.Tender, t0: datetime, tmp_path_factory: pytest.TempPathFactory
) -> SubmitResult:
    sealed = seal_for(service, tender, "beta", tmp_path_factory.mktemp("beta"), signing_time=t0)
    return submit(service, tender.tender_id, sealed)


@pytest.fixture(scope="module")
def delta_bids(
    service: Service, tender: pb.Tender, t0: datetime, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SubmitResult, SubmitResult]:
    """(replaced, current): delta's first bid at t0, replaced by one at t0 + 10 s."""
    work = tmp_path_factory.mktemp("delta")
    first = submit(
        service, tender.tender_id, seal_for(service, tender, "delta", work / "1", signing_time=t0)
    )
    second = seal_for(service, tender, "delta", work / "2", signing_time=t0 + timedelta(seconds=10))
    return first, submit(service, tender.tender_id, second)


# --- The bidder withdraws --------------------------------------------------------------
def test_a_signed_statement_withdraws_the_bid_with_a_withdrawal_receipt(
    service: Service, tender: pb.Tender, alpha_withdrawn: Withdrawn
) -> None:
    receipt, bid = alpha_withdrawn.receipt, alpha_withdrawn.bid.receipt
    assert receipt.content.kind == "withdrawal"
    assert receipt.content.bid_id == bid.content.bid_id
    assert receipt.content.envelope_sha256 == alpha_withdrawn.envelope.sha256
    assert receipt.content.log_sequence > bid.content.log_sequence
    root = x509.load_pem_x509_certificate(service.pki.platform_root.cert.read_bytes())
    verified = verify_receipt(receipt.signed_receipt, root.public_bytes(serialization.Encoding.DER))
    assert verified.content.kind == "withdrawal"
    assert status_of(service, bid.content.bid_id) == BidStatus.WITHDRAWN
    # The bid's own receipt is unchanged: a withdrawal adds a receipt, it rewrites none.
    again = service.bidder.get_receipt(tender.tender_id, bid.content.bid_id)
    assert again.signed_receipt == bid.signed_receipt


def test_withdrawing_twice_is_BID_WITHDRAWN(
    service: Service, tender: pb.Tender, t0: datetime, alpha_withdrawn: Withdrawn
) -> None:
    bid_id = alpha_withdrawn.bid.receipt.content.bid_id
    newer = statement(service, "alpha", tender.tender_id, bid_id, t0 + timedelta(seconds=30))
    for again in (alpha_withdrawn.statement, newer):
        assert_refused(
            service,
            tender.tender_id,
            partial(service.bidder.withdraw_bid, again),
            "BID_WITHDRAWN",
            "FAILED_PRECONDITION",
        )


def test_the_withdrawn_envelope_sent_again_is_BID_REPLAYED(
    service: Service, tender: pb.Tender, alpha_withdrawn: Withdrawn
) -> None:
    envelope = alpha_withdrawn.envelope
    assert_refused(
        service,
        tender.tender_id,
        lambda: submit(service, tender.tender_id, envelope),
        "BID_REPLAYED",
        "FAILED_PRECONDITION",
    )


def test_an_envelope_signed_before_the_withdrawal_and_sent_after_it_is_BID_REPLAYED(
    service: Service, tender: pb.Tender, alpha_withdrawn: Withdrawn
) -> None:
    held_back = alpha_withdrawn.held_back
    assert_refused(
        service,
        tender.tender_id,
        lambda: submit(service, tender.tender_id, held_back),
        "BID_REPLAYED",
        "FAILED_PRECONDITION",
    )


# --- Statements that withdraw nothing --------------------------------------------------
def test_a_statement_signed_by_another_bidder_is_NOT_BID_OWNER(
    service: Service, tender: pb.Tender, t0: datetime, beta_bid: SubmitResult
) -> None:
    bid_id = beta_bid.receipt.content.bid_id
    forged = statement(service, "gamma", tender.tender_id, bid_id, t0 + timedelta(seconds=5))
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.withdraw_bid(forged),
        "NOT_BID_OWNER",
        "PERMISSION_DENIED",
    )
    assert status_of(service, bid_id) == BidStatus.CURRENT


def test_a_statement_for_a_replaced_bid_is_BID_REPLAYED(
    service: Service, tender: pb.Tender, t0: datetime, delta_bids: tuple[SubmitResult, SubmitResult]
) -> None:
    replaced, current = (r.receipt.content.bid_id for r in delta_bids)
    late_news = statement(service, "delta", tender.tender_id, replaced, t0 + timedelta(seconds=20))
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.withdraw_bid(late_news),
        "BID_REPLAYED",
        "FAILED_PRECONDITION",
    )
    assert status_of(service, current) == BidStatus.CURRENT


def test_a_statement_signed_before_the_current_bid_is_BID_REPLAYED(
    service: Service, tender: pb.Tender, t0: datetime, delta_bids: tuple[SubmitResult, SubmitResult]
) -> None:
    # Signed between delta's two bids (e.g. captured and replayed): older than the bid
    # it names, so it cannot withdraw it.
    current = delta_bids[1].receipt.content.bid_id
    old = statement(service, "delta", tender.tender_id, current, t0 + timedelta(seconds=5))
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.withdraw_bid(old),
        "BID_REPLAYED",
        "FAILED_PRECONDITION",
    )
    assert status_of(service, current) == BidStatus.CURRENT


def test_a_withdrawal_after_the_deadline_is_BID_LATE(
    service: Service, tender: pb.Tender, beta_bid: SubmitResult
) -> None:
    start = service.clock.now()
    service.clock.set(tender.deadline.ToDatetime(tzinfo=UTC))
    service.clock.advance(timedelta(seconds=1))
    try:
        bid_id = beta_bid.receipt.content.bid_id
        late = statement(service, "beta", tender.tender_id, bid_id, service.clock.now())
        assert_refused(
            service,
            tender.tender_id,
            lambda: service.bidder.withdraw_bid(late),
            "BID_LATE",
            "FAILED_PRECONDITION",
        )
    finally:
        service.clock.set(start)
    assert status_of(service, bid_id) == BidStatus.CURRENT


def test_a_statement_naming_another_tender_is_BID_NOT_FOUND(
    service: Service, tender: pb.Tender, t0: datetime, beta_bid: SubmitResult
) -> None:
    other = new_tender(service)
    bid_id = beta_bid.receipt.content.bid_id
    misdirected = statement(service, "beta", other.tender_id, bid_id, t0 + timedelta(seconds=5))
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.withdraw_bid(misdirected),
        "BID_NOT_FOUND",
        "NOT_FOUND",
    )
    assert status_of(service, bid_id) == BidStatus.CURRENT


@pytest.mark.parametrize(
    ("names", "code"),
    [("unknown tender", "TENDER_NOT_FOUND"), ("unknown bid", "BID_NOT_FOUND")],
)
def test_a_statement_naming_nothing_known_is_NOT_FOUND(
    service: Service,
    tender: pb.Tender,
    t0: datetime,
    beta_bid: SubmitResult,
    names: str,
    code: str,
) -> None:
    tender_id, bid_id = tender.tender_id, beta_bid.receipt.content.bid_id
    if names == "unknown tender":
        tender_id = "T-NO-SUCH"
    else:
        bid_id = "bid-000000000000000000000000"
    wrong = statement(service, "beta", tender_id, bid_id, t0 + timedelta(seconds=5))
    assert_refused(
        service, tender.tender_id, lambda: service.bidder.withdraw_bid(wrong), code, "NOT_FOUND"
    )


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"format": "sealed-bid/withdrawal/v1", "tender_id": "T-1"}',
        b'{"format": "sealed-bid/withdrawal/v9", "tender_id": "T-1", "bid_id": "b"}',
        b'{"format": "sealed-bid/withdrawal/v1", "tender_id": "../x", "bid_id": "b"}',
        b"\xff\xfe",
    ],
    ids=["not-json", "missing-key", "unknown-format", "bad-tender-id", "not-utf8"],
)
def test_a_malformed_statement_is_STATEMENT_INVALID(
    service: Service, tender: pb.Tender, t0: datetime, content: bytes
) -> None:
    malformed = signed(service, "beta", content, t0 + timedelta(seconds=5))
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.withdraw_bid(malformed),
        "STATEMENT_INVALID",
        "INVALID_ARGUMENT",
    )


def test_an_empty_withdrawal_request_is_STATEMENT_INVALID(
    service: Service, tender: pb.Tender
) -> None:
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.withdraw_bid(b""),
        "STATEMENT_INVALID",
        "INVALID_ARGUMENT",
    )


def test_a_statement_that_is_not_an_attached_signature_is_SIGNATURE_MALFORMED(
    service: Service, tender: pb.Tender, t0: datetime, beta_bid: SubmitResult
) -> None:
    files = service.pki.bidders["beta"]
    content = WithdrawalStatement(
        TenderId(tender.tender_id), BidId(beta_bid.receipt.content.bid_id)
    ).to_bytes()
    detached = sign_detached(
        load_signer(files.key, files.cert), hashlib.sha256(content).digest(), t0
    )
    for not_attached in (content, detached):
        assert_refused(
            service,
            tender.tender_id,
            partial(service.bidder.withdraw_bid, not_attached),
            "SIGNATURE_MALFORMED",
            "INVALID_ARGUMENT",
        )


def test_a_statement_by_a_revoked_signer_is_SIGNER_REVOKED(
    service: Service, tender: pb.Tender, t0: datetime, beta_bid: SubmitResult
) -> None:
    bid_id = beta_bid.receipt.content.bid_id
    revoked = statement(service, "revoked", tender.tender_id, bid_id, t0 + timedelta(seconds=5))
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.bidder.withdraw_bid(revoked),
        "SIGNER_REVOKED",
        "PERMISSION_DENIED",
    )


# --- The opening ---------------------------------------------------------------------
def test_withdrawn_bids_are_listed_WITHDRAWN_and_never_decrypted(
    service: Service,
    tender: pb.Tender,
    t0: datetime,
    alpha_withdrawn: Withdrawn,
    beta_bid: SubmitResult,
    delta_bids: tuple[SubmitResult, SubmitResult],
    tmp_path: Path,
) -> None:
    # The server is still up after every refusal above: a normal bid is accepted.
    gamma = submit(service, tender.tender_id, seal_for(service, tender, "gamma", tmp_path))
    current = {
        beta_bid.receipt.content.bid_id,
        delta_bids[1].receipt.content.bid_id,
        gamma.receipt.content.bid_id,
    }
    start = service.clock.now()
    service.clock.advance(timedelta(hours=2))
    try:
        record = json.loads(service.operator.open_tender(tender.tender_id).record_json)
    finally:
        service.clock.set(start)
    assert {b["bid_id"] for b in record["bids"]} == current
    assert all(b["status"] == "OPENED" for b in record["bids"])
    not_opened = {b["bid_id"]: b["status"] for b in record["not_opened"]}
    assert not_opened == {
        alpha_withdrawn.bid.receipt.content.bid_id: "WITHDRAWN",
        delta_bids[0].receipt.content.bid_id: "REPLACED",
    }
    # Per current bid: its sealed signer identity and its envelope; nothing else.
    assert service.app.context.token.private_key_uses[tender.tender_id] == 2 * len(current)
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        uses = Repository(session).key_uses(tender.tender_id)
    assert {k.bid_id for k in uses} == current
    assert sorted((k.bid_id, k.operation.value) for k in uses) == sorted(
        (bid_id, operation) for bid_id in current for operation in ("unseal", "decrypt_key")
    )
