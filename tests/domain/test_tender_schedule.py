"""Tender creation rules: each refusal has its stable code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sealed_bid.config import Limits
from sealed_bid.domain.tender import validate_tender_spec
from sealed_bid.errors import InvalidSchedule, InvalidTender

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def spec(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "tender_id": "KF-2026-001",
        "title": "Road resurfacing",
        "deadline": NOW + timedelta(days=10),
        "opening_time": NOW + timedelta(days=10),
        "max_envelope_bytes": 0,
        "accepted_ca_ids": ("ca-a",),
        "bid_count_visible": False,
        "known_ca_ids": frozenset({"ca-a", "ca-b"}),
        "now": NOW,
        "limits": Limits(),
    }
    values.update(overrides)
    return values


def test_opening_at_the_deadline_is_accepted_and_the_default_size_applies() -> None:
    result = validate_tender_spec(**spec())  # type: ignore[arg-type]
    assert result.opening_time == result.deadline
    assert result.max_envelope_bytes == Limits().default_max_envelope_bytes


def test_opening_before_the_deadline_is_refused_with_INVALID_SCHEDULE() -> None:
    with pytest.raises(InvalidSchedule) as exc:
        validate_tender_spec(  # type: ignore[arg-type]
            **spec(opening_time=NOW + timedelta(days=10) - timedelta(seconds=1))
        )
    assert exc.value.code == "INVALID_SCHEDULE"


@pytest.mark.parametrize("deadline", [NOW, NOW - timedelta(seconds=1)])
def test_a_deadline_not_in_the_future_is_refused(deadline: datetime) -> None:
    with pytest.raises(InvalidSchedule):
        validate_tender_spec(**spec(deadline=deadline, opening_time=NOW + timedelta(days=1)))  # type: ignore[arg-type]


def test_naive_times_are_refused() -> None:
    with pytest.raises(InvalidSchedule):
        validate_tender_spec(  # type: ignore[arg-type]
            **spec(deadline=datetime(2026, 12, 5), opening_time=datetime(2026, 12, 6))
        )


@pytest.mark.parametrize(
    ("size", "ok"),
    [
        (1, True),
        (Limits().hard_max_envelope_bytes, True),
        (Limits().hard_max_envelope_bytes + 1, False),
        (-1, False),
    ],
)
def test_envelope_size_limit_edges(size: int, ok: bool) -> None:
    if ok:
        assert validate_tender_spec(**spec(max_envelope_bytes=size)).max_envelope_bytes == size  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidTender):
            validate_tender_spec(**spec(max_envelope_bytes=size))  # type: ignore[arg-type]


def test_an_empty_ca_list_is_refused_not_treated_as_allow_all() -> None:
    with pytest.raises(InvalidTender) as exc:
        validate_tender_spec(**spec(accepted_ca_ids=()))  # type: ignore[arg-type]
    assert exc.value.context["field"] == "accepted_ca_ids"


def test_an_unknown_ca_is_refused() -> None:
    with pytest.raises(InvalidTender, match="ca-z"):
        validate_tender_spec(**spec(accepted_ca_ids=("ca-a", "ca-z")))  # type: ignore[arg-type]


@pytest.mark.parametrize("tender_id", ["", "-x", "a" * 65, "a/b", "KF 1", "x\n"])
def test_bad_tender_ids_are_refused(tender_id: str) -> None:
    with pytest.raises(InvalidTender):
        validate_tender_spec(**spec(tender_id=tender_id))  # type: ignore[arg-type]


def test_blank_title_is_refused() -> None:
    with pytest.raises(InvalidTender):
        validate_tender_spec(**spec(title="   "))  # type: ignore[arg-type]
