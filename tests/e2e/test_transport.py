"""The two listeners and the operator RPCs against the running service: who may call what,
on which port, and the stable codes of tender creation, counting, receipts and records.
A refused creation leaves no tender, no key on the token and no audit entry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import AuditEntry
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.server, pytest.mark.token]

CA = ["dev-bidder-ca"]


def audit_head(service: Service) -> int:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        return session.scalar(select(func.max(AuditEntry.seq))) or 0


def refused(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value.code, caught.value.status


def create(
    client: SealedBidClient, tender_id: str, deadline: datetime, opening: datetime
) -> pb.Tender:
    return client.create_tender(tender_id, "Bridge repair", deadline, opening, CA)


def assert_not_created(service: Service, tender_id: str, head: int) -> None:
    assert refused(lambda: service.bidder.get_tender(tender_id)) == (
        "TENDER_NOT_FOUND",
        "NOT_FOUND",
    )
    assert not service.app.context.token.tender_key_exists(tender_id)
    assert audit_head(service) == head


@pytest.fixture(scope="module")
def tender(service: Service) -> pb.Tender:
    return new_tender(service)


@pytest.fixture(scope="module")
def public_operator(service: Service) -> Iterator[SealedBidClient]:
    """A client that calls operator RPCs on the public port (which does not serve them)."""
    root = service.pki.platform_root.cert.read_bytes()
    pki = service.pki
    client = SealedBidClient(
        f"127.0.0.1:{service.server.public_port}",
        root,
        pki.operator.key.read_bytes(),
        pki.operator.cert.read_bytes(),
    )
    yield client
    client.close()


# --- Who may call the operator RPCs ------------------------------------------------------
def test_an_observer_certificate_cannot_create_a_tender_OPERATOR_REQUIRED(
    service: Service,
) -> None:
    now, head = service.clock.now(), audit_head(service)
    call = partial(
        create, service.observer, "X-OBSERVED", now + timedelta(hours=1), now + timedelta(hours=2)
    )
    assert refused(call) == ("OPERATOR_REQUIRED", "PERMISSION_DENIED")
    assert_not_created(service, "X-OBSERVED", head)


def test_an_observer_certificate_cannot_open_or_count_OPERATOR_REQUIRED(
    service: Service, tender: pb.Tender
) -> None:
    start = service.clock.now()
    service.clock.advance(timedelta(hours=2))  # past the opening time: only the role is wrong
    try:
        opening = refused(lambda: service.observer.open_tender(tender.tender_id))
    finally:
        service.clock.set(start)
    assert opening == ("OPERATOR_REQUIRED", "PERMISSION_DENIED")
    assert service.app.context.token.private_key_uses.get(tender.tender_id, 0) == 0
    assert refused(lambda: service.observer.bid_count(tender.tender_id)) == (
        "OPERATOR_REQUIRED",
        "PERMISSION_DENIED",
    )
    assert refused(lambda: service.bidder.get_record(tender.tender_id)) == (
        "RECORD_NOT_FOUND",
        "NOT_FOUND",
    )


def test_operator_rpcs_on_the_public_port_are_UNIMPLEMENTED(
    service: Service, tender: pb.Tender, public_operator: SealedBidClient
) -> None:
    now, head = service.clock.now(), audit_head(service)
    unimplemented = ("GRPC_UNIMPLEMENTED", "UNIMPLEMENTED")
    assert (
        refused(
            lambda: create(
                public_operator, "X-PUBLIC", now + timedelta(hours=1), now + timedelta(hours=2)
            )
        )
        == unimplemented
    )
    assert refused(lambda: public_operator.open_tender(tender.tender_id)) == unimplemented
    assert refused(lambda: public_operator.bid_count(tender.tender_id)) == unimplemented
    assert_not_created(service, "X-PUBLIC", head)


def test_the_operator_port_refuses_a_client_without_certificate(
    service: Service, tender: pb.Tender
) -> None:
    # Mutual TLS: the handshake fails before any RPC, so grpc reports UNAVAILABLE.
    root = service.pki.platform_root.cert.read_bytes()
    with SealedBidClient(f"127.0.0.1:{service.server.operator_port}", root) as anonymous:
        code, status = refused(lambda: anonymous.bid_count(tender.tender_id))
    assert (code, status) == ("GRPC_UNAVAILABLE", "UNAVAILABLE")


# --- Counting bids -------------------------------------------------------------------------
def test_the_bid_count_is_COUNT_HIDDEN_unless_the_tender_allows_it(
    service: Service, tender: pb.Tender, tmp_path: Path
) -> None:
    assert not tender.bid_count_visible
    assert refused(lambda: service.operator.bid_count(tender.tender_id)) == (
        "COUNT_HIDDEN",
        "PERMISSION_DENIED",
    )
    visible = new_tender(service, count_visible=True)
    assert visible.bid_count_visible
    assert service.operator.bid_count(visible.tender_id) == 0
    sealed = seal_for(service, visible, "alpha", tmp_path)
    service.bidder.submit_bid(visible.tender_id, sealed.envelope_path, sealed.outer_signature_der)
    assert service.operator.bid_count(visible.tender_id) == 1


def test_the_bid_count_of_an_unknown_tender_is_TENDER_NOT_FOUND(service: Service) -> None:
    assert refused(lambda: service.operator.bid_count("T-NO-SUCH")) == (
        "TENDER_NOT_FOUND",
        "NOT_FOUND",
    )


# --- Creating tenders ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("deadline_in", "opening_in"),
    [
        (timedelta(hours=2), timedelta(hours=1)),  # opening before the deadline
        (timedelta(hours=2), timedelta(hours=2) - timedelta(seconds=1)),  # a second before
        (timedelta(hours=-1), timedelta(hours=1)),  # deadline in the past
        (timedelta(0), timedelta(hours=1)),  # deadline now: not in the future
    ],
    ids=["opening-before-deadline", "opening-1s-before", "deadline-past", "deadline-now"],
)
def test_an_impossible_schedule_is_INVALID_SCHEDULE(
    service: Service, deadline_in: timedelta, opening_in: timedelta
) -> None:
    now, head = service.clock.now(), audit_head(service)
    call = partial(create, service.operator, "X-SCHEDULE", now + deadline_in, now + opening_in)
    assert refused(call) == ("INVALID_SCHEDULE", "INVALID_ARGUMENT")
    assert_not_created(service, "X-SCHEDULE", head)


def test_an_opening_exactly_at_the_deadline_is_a_valid_schedule(service: Service) -> None:
    edge = new_tender(service, opening_after_deadline=timedelta(0))
    assert edge.opening_time == edge.deadline


GOOD_TITLE, GOOD_SIZE = "Bridge repair", 0


@pytest.mark.parametrize(
    ("tender_id", "title", "cas", "max_envelope_bytes"),
    [
        ("../etc", GOOD_TITLE, CA, GOOD_SIZE),
        ("-starts-with-dash", GOOD_TITLE, CA, GOOD_SIZE),
        ("X" * 65, GOOD_TITLE, CA, GOOD_SIZE),
        ("", GOOD_TITLE, CA, GOOD_SIZE),
        ("X-BAD-TITLE", "   ", CA, GOOD_SIZE),
        ("X-BAD-CA", GOOD_TITLE, ["no-such-ca"], GOOD_SIZE),
        ("X-NO-CA", GOOD_TITLE, [], GOOD_SIZE),
        ("X-TOO-LARGE", GOOD_TITLE, CA, 2 * 1024**3 + 1),
    ],
    ids=["dots", "dash", "65-chars", "empty", "blank-title", "unknown-ca", "no-ca", "too-large"],
)
def test_an_invalid_tender_is_INVALID_TENDER(
    service: Service, tender_id: str, title: str, cas: list[str], max_envelope_bytes: int
) -> None:
    now, head = service.clock.now(), audit_head(service)
    tenders = len(service.bidder.list_tenders())
    deadline, opening = now + timedelta(hours=1), now + timedelta(hours=2)
    assert refused(
        lambda: service.operator.create_tender(
            tender_id, title, deadline, opening, cas, max_envelope_bytes
        )
    ) == ("INVALID_TENDER", "INVALID_ARGUMENT")
    assert len(service.bidder.list_tenders()) == tenders
    assert audit_head(service) == head


def test_a_tender_id_in_use_is_TENDER_EXISTS(service: Service, tender: pb.Tender) -> None:
    now, head = service.clock.now(), audit_head(service)
    call = partial(
        create,
        service.operator,
        tender.tender_id,
        now + timedelta(hours=3),
        now + timedelta(hours=4),
    )
    assert refused(call) == ("TENDER_EXISTS", "ALREADY_EXISTS")
    assert audit_head(service) == head
    unchanged = service.bidder.get_tender(tender.tender_id)
    assert unchanged.deadline == tender.deadline
    assert unchanged.tender_certificate == tender.tender_certificate


# --- Receipts, records, tenders ------------------------------------------------------------
def test_get_receipt_returns_the_same_receipt_bytes_and_RECEIPT_NOT_FOUND_otherwise(
    service: Service, tender: pb.Tender, tmp_path: Path
) -> None:
    sealed = seal_for(service, tender, "beta", tmp_path)
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    bid_id = result.receipt.content.bid_id
    again = service.bidder.get_receipt(tender.tender_id, bid_id)
    assert again.signed_receipt == result.receipt.signed_receipt
    assert again.content == result.receipt.content
    not_found = ("RECEIPT_NOT_FOUND", "NOT_FOUND")
    assert refused(lambda: service.bidder.get_receipt(tender.tender_id, "bid-nope")) == not_found
    # The right bid id under another tender's id is not found either.
    assert refused(lambda: service.bidder.get_receipt("T-NO-SUCH", bid_id)) == not_found


def test_the_record_before_the_opening_is_RECORD_NOT_FOUND(
    service: Service, tender: pb.Tender
) -> None:
    assert refused(lambda: service.bidder.get_record(tender.tender_id)) == (
        "RECORD_NOT_FOUND",
        "NOT_FOUND",
    )
    assert refused(lambda: service.operator.get_record(tender.tender_id)) == (
        "RECORD_NOT_FOUND",
        "NOT_FOUND",
    )


def test_an_unknown_tender_is_TENDER_NOT_FOUND(service: Service) -> None:
    assert refused(lambda: service.bidder.get_tender("T-NO-SUCH")) == (
        "TENDER_NOT_FOUND",
        "NOT_FOUND",
    )
    assert refused(lambda: service.bidder.get_tender("../etc")) == (
        "TENDER_NOT_FOUND",
        "NOT_FOUND",
    )


def test_after_every_refusal_a_normal_bid_is_still_accepted(
    service: Service, tender: pb.Tender, tmp_path: Path
) -> None:
    sealed = seal_for(service, tender, "gamma", tmp_path)
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    assert result.receipt.content.envelope_sha256 == sealed.sha256
    assert not result.duplicate
