"""Moving a tender's schedule is an operator action with a reason, recorded in the audit
log; it never reopens closed submissions and never puts the opening before the deadline
or before now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import AuditEntry
from tests.e2e.conftest import Service, new_tender
from tests.e2e.support import assert_refused

pytestmark = [pytest.mark.usefixtures("clock_restored")]


def _audit_events(service: Service, tender_id: str) -> list[str]:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        rows = session.scalars(
            select(AuditEntry.event).where(AuditEntry.tender_id == tender_id)
        ).all()
    return list(rows)


def test_postponing_is_recorded_and_shown_to_bidders(service: Service) -> None:
    tender = new_tender(service)
    deadline = tender.deadline.ToDatetime().replace(tzinfo=service.clock.now().tzinfo)
    opening = tender.opening_time.ToDatetime().replace(tzinfo=deadline.tzinfo)
    moved = service.operator.reschedule_tender(
        tender.tender_id,
        deadline + timedelta(days=2),
        opening + timedelta(days=2),
        "clarification issued to all bidders",
    )
    assert moved.deadline.ToDatetime() == (deadline + timedelta(days=2)).replace(tzinfo=None)
    shown = service.bidder.get_tender(tender.tender_id)
    assert shown.opening_time == moved.opening_time
    assert "tender.rescheduled" in _audit_events(service, tender.tender_id)


@pytest.mark.parametrize(
    ("deadline_shift", "opening_shift", "reason"),
    [
        (timedelta(0), -timedelta(minutes=31), "opening before the deadline"),
        (-timedelta(hours=2), -timedelta(hours=2), "deadline in the past"),
        (timedelta(days=400), timedelta(days=400), "beyond the tender certificate"),
    ],
)
def test_impossible_schedules_are_refused(
    service: Service, deadline_shift: timedelta, opening_shift: timedelta, reason: str
) -> None:
    tender = new_tender(service)
    deadline = tender.deadline.ToDatetime().replace(tzinfo=service.clock.now().tzinfo)
    opening = tender.opening_time.ToDatetime().replace(tzinfo=deadline.tzinfo)
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.operator.reschedule_tender(
            tender.tender_id, deadline + deadline_shift, opening + opening_shift, reason
        ),
        "INVALID_SCHEDULE",
        "INVALID_ARGUMENT",
    )
    unchanged = service.bidder.get_tender(tender.tender_id)
    assert unchanged.opening_time == tender.opening_time
    assert "tender.rescheduled" not in _audit_events(service, tender.tender_id)


def test_a_reason_is_required_and_only_operators_may_reschedule(service: Service) -> None:
    tender = new_tender(service)
    deadline = tender.deadline.ToDatetime().replace(tzinfo=service.clock.now().tzinfo)
    opening = tender.opening_time.ToDatetime().replace(tzinfo=deadline.tzinfo)
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.operator.reschedule_tender(tender.tender_id, deadline, opening, " "),
        "INVALID_TENDER",
        "INVALID_ARGUMENT",
    )
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.observer.reschedule_tender(tender.tender_id, deadline, opening, "x"),
        "OPERATOR_REQUIRED",
        "PERMISSION_DENIED",
    )


def test_after_the_deadline_only_the_opening_may_move(service: Service) -> None:
    tender = new_tender(service, deadline_in=timedelta(minutes=10))
    deadline = tender.deadline.ToDatetime().replace(tzinfo=service.clock.now().tzinfo)
    opening = tender.opening_time.ToDatetime().replace(tzinfo=deadline.tzinfo)
    service.clock.advance(timedelta(minutes=11))
    assert_refused(
        service,
        tender.tender_id,
        lambda: service.operator.reschedule_tender(
            tender.tender_id, deadline + timedelta(hours=1), opening + timedelta(hours=1), "x"
        ),
        "INVALID_SCHEDULE",
        "INVALID_ARGUMENT",
    )
    moved = service.operator.reschedule_tender(
        tender.tender_id, deadline, opening + timedelta(hours=1), "opening room unavailable"
    )
    assert moved.deadline == tender.deadline
