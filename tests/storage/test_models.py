"""What the tables hold: UTC timestamps, and nothing that identifies a bidder."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import StatementError

from sealed_bid.storage.db import create_schema, make_engine, unit_of_work
from sealed_bid.storage.models import Base, Tender
from sealed_bid.storage.repository import Repository

TenderFactory = Callable[..., Tender]
CEST = timezone(timedelta(hours=2))


def test_datetimes_round_trip_as_timezone_aware_utc(
    engine: Engine, new_tender: TenderFactory
) -> None:
    deadline = datetime(2030, 6, 1, 12, 0, 0, 654321, tzinfo=CEST)
    with unit_of_work(engine) as session:
        Repository(session).add_tender(new_tender("T-1", deadline=deadline))
    with unit_of_work(engine) as session:
        stored = Repository(session).get_tender("T-1").deadline
    assert stored == deadline
    assert stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)
    assert (stored.hour, stored.microsecond) == (10, 654321)


def test_a_naive_datetime_is_refused_on_write(engine: Engine, new_tender: TenderFactory) -> None:
    with (
        pytest.raises(StatementError, match="naive datetime refused"),
        unit_of_work(engine) as session,
    ):
        Repository(session).add_tender(new_tender("T-1", deadline=datetime(2030, 6, 1, 12)))
        session.flush()


def test_sqlite_stores_the_utc_wall_time(tmp_path: Path, new_tender: TenderFactory) -> None:
    db = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    create_schema(engine)
    with unit_of_work(engine) as session:
        Repository(session).add_tender(
            new_tender("T-1", deadline=datetime(2030, 6, 1, 12, 0, tzinfo=CEST))
        )
    engine.dispose()
    with sqlite3.connect(db) as raw:
        (value,) = raw.execute("SELECT deadline FROM tenders").fetchone()
    assert value.startswith("2030-06-01 10:00:00")


@pytest.mark.postgres
def test_postgresql_stores_timestamptz(pg_engine: Engine, new_tender: TenderFactory) -> None:
    with unit_of_work(pg_engine) as session:
        Repository(session).add_tender(
            new_tender("T-1", deadline=datetime(2030, 6, 1, 12, 0, tzinfo=CEST))
        )
    with unit_of_work(pg_engine) as session:
        utc_text = session.scalar(
            text("SELECT to_char(deadline AT TIME ZONE 'UTC', 'HH24:MI') FROM tenders")
        )
    assert utc_text == "10:00"


def test_no_table_has_a_column_for_bidder_identity_or_plaintext() -> None:
    # A review gate: adding such a column must fail here and be argued in an ADR.
    forbidden = ("name", "subject", "cert", "price", "plain", "email", "identity", "serial")
    allowed = {
        ("tenders", "tender_cert_der"),
        # The digest of ciphertext sealed to the tender certificate (ADR 0016).
        ("bids", "sealed_identity_blob"),
        # Opening officers are named officials, public in the tender (opening-ceremony.md);
        # their certificates receive the encrypted PIN shares. Not bidders.
        ("tender_officers", "subject"),
        ("tender_officers", "certificate_der"),
        ("tender_officers", "certificate_sha256"),
    }
    offending = [
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if any(word in column.name for word in forbidden)
        and (table.name, column.name) not in allowed
    ]
    assert offending == []


def test_timestamps_from_a_utc_clock_are_returned_unchanged(
    engine: Engine, new_tender: TenderFactory
) -> None:
    now = datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    with unit_of_work(engine) as session:
        Repository(session).add_tender(new_tender("T-1", created_at=now))
    with unit_of_work(engine) as session:
        assert Repository(session).get_tender("T-1").created_at == now
