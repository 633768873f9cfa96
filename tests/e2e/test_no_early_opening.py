"""No code path uses a tender key before the opening time: the gRPC service (see
test_bid_lifecycle), the opening service called directly, and the key-access layer itself.
The token counts every call of its only tender-key operation; these tests prove it stays 0."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sealed_bid.domain.ids import TenderId
from sealed_bid.errors import NotYetOpen, OpeningTimeNotProven
from sealed_bid.service.tender_keys import PlatformTenderKey, TenderKeyAccess
from sealed_bid.service.time_proof import TimeProof
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.repository import Repository
from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.token]


def _key_uses(service: Service, tender_id: str) -> int:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        return len(Repository(session).key_uses(tender_id))


@pytest.fixture(scope="module")
def sealed_tender(service: Service, tmp_path_factory: pytest.TempPathFactory) -> str:
    tender = new_tender(service)
    sealed = seal_for(service, tender, "gamma", tmp_path_factory.mktemp("guard"))
    service.bidder.submit_bid(tender.tender_id, sealed.envelope_path, sealed.outer_signature_der)
    return tender.tender_id


@pytest.mark.parametrize("before", [timedelta(minutes=90), timedelta(seconds=1)])
def test_the_opening_service_called_directly_refuses_before_the_opening_time(
    service: Service, sealed_tender: str, before: timedelta
) -> None:
    tender = service.app.services.tenders.get(sealed_tender)
    saved = service.clock.now()
    service.clock.set(tender.opening_time - before)
    try:
        with pytest.raises(NotYetOpen):
            service.app.services.opening.open(sealed_tender, "CN=test")
    finally:
        service.clock.set(saved)
    assert service.app.context.token.private_key_uses.get(sealed_tender, 0) == 0
    assert _key_uses(service, sealed_tender) == 0


def _proof(tender_id: str, gen_time: datetime) -> TimeProof:
    """A proof as if a TSA had said ``gen_time`` (the guard must not trust it blindly)."""
    return TimeProof(
        proof_id=0,
        tender_id=TenderId(tender_id),
        gen_time=gen_time,
        request_json="{}",
        request_sha256="0" * 64,
        token_der=b"",
    )


def test_key_access_cannot_be_created_before_the_opening_time(
    service: Service, sealed_tender: str
) -> None:
    tender = service.app.services.tenders.get(sealed_tender)
    tid = TenderId(sealed_tender)
    key = PlatformTenderKey(service.app.context.token, tid)
    saved = service.clock.now()
    try:
        # The clock says before: refused, whatever a proof claims.
        service.clock.set(tender.opening_time - timedelta(microseconds=1))
        with pytest.raises(NotYetOpen):
            TenderKeyAccess(
                key,
                tid,
                tender.opening_time,
                service.clock,
                _proof(sealed_tender, tender.opening_time + timedelta(hours=1)),
            )
        # The clock says after, the TSA's time is before: refused.
        service.clock.set(tender.opening_time + timedelta(hours=1))
        with pytest.raises(OpeningTimeNotProven):
            TenderKeyAccess(
                key,
                tid,
                tender.opening_time,
                service.clock,
                _proof(sealed_tender, tender.opening_time - timedelta(microseconds=1)),
            )
        # A proof for another tender proves nothing for this one.
        with pytest.raises(OpeningTimeNotProven):
            TenderKeyAccess(
                key,
                tid,
                tender.opening_time,
                service.clock,
                _proof("another-tender", tender.opening_time + timedelta(hours=1)),
            )
    finally:
        service.clock.set(saved)
    assert service.app.context.token.private_key_uses.get(sealed_tender, 0) == 0


def test_at_the_opening_time_exactly_the_tender_opens_and_each_use_is_journalled_first(
    service: Service, sealed_tender: str, tmp_path: Path
) -> None:
    tender = service.app.services.tenders.get(sealed_tender)
    saved = service.clock.now()
    service.clock.set(tender.opening_time)
    try:
        record = service.app.services.opening.open(sealed_tender, "CN=test")
    finally:
        service.clock.set(saved)
    assert '"status":"OPENED"' in record.record_json
    # One bid, two key uses (its sealed signer identity, its envelope), each journalled.
    assert service.app.context.token.private_key_uses[sealed_tender] == 2
    assert _key_uses(service, sealed_tender) == 2
