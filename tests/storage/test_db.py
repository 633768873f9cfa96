"""Engines and the unit of work."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from sealed_bid.errors import StorageError
from sealed_bid.storage.db import create_schema, make_engine, unit_of_work
from sealed_bid.storage.models import AuditHead, Tender
from sealed_bid.storage.repository import Repository

TenderFactory = Callable[..., Tender]


def test_sqlite_engine_uses_wal_foreign_keys_and_full_sync(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_make_engine_refuses_an_unsupported_database() -> None:
    with pytest.raises(StorageError, match="unsupported database"):
        make_engine("mysql://user@localhost/db")


def test_unit_of_work_commits_when_the_block_succeeds(
    engine: Engine, new_tender: TenderFactory
) -> None:
    with unit_of_work(engine) as session:
        Repository(session).add_tender(new_tender("T-1"))
    with unit_of_work(engine) as session:
        assert Repository(session).get_tender("T-1").title == "Road maintenance, lot 1"


def test_unit_of_work_rolls_back_everything_when_the_block_raises(
    engine: Engine, new_tender: TenderFactory
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), unit_of_work(engine) as session:
        Repository(session).add_tender(new_tender("T-1"))
        session.flush()
        raise Boom
    with unit_of_work(engine) as session:
        assert session.scalar(select(func.count()).select_from(Tender)) == 0


def test_objects_stay_readable_after_the_unit_of_work(
    engine: Engine, new_tender: TenderFactory
) -> None:
    with unit_of_work(engine) as session:
        tender = Repository(session).add_tender(new_tender("T-1"))
    assert tender.accepted_ca_ids == ["ca-1", "ca-2"]


def test_sqlite_unit_of_work_takes_the_write_lock_at_begin(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    create_schema(engine)
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        with unit_of_work(engine) as session:
            # Only a read so far: without BEGIN IMMEDIATE no write lock would be held yet.
            session.scalar(select(AuditHead.last_seq))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_sqlite_read_only_unit_of_work_does_not_wait_for_a_writer(
    tmp_path: Path, new_tender: TenderFactory
) -> None:
    db = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    create_schema(engine)
    with unit_of_work(engine) as session:
        Repository(session).add_tender(new_tender("T-1"))
    blocker = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with unit_of_work(engine, read_only=True) as session:
            assert [t.id for t in Repository(session).list_tenders()] == ["T-1"]
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_read_only_unit_of_work_refuses_writes(
    pg_engine: Engine, new_tender: TenderFactory
) -> None:
    with (
        pytest.raises(Exception, match="read-only transaction"),
        unit_of_work(pg_engine, read_only=True) as session,
    ):
        Repository(session).add_tender(new_tender("T-1"))
        session.flush()
    with unit_of_work(pg_engine) as session:
        assert session.scalar(text("SHOW transaction_read_only")) == "off"


def test_create_schema_is_idempotent_and_seeds_one_audit_head(engine: Engine) -> None:
    create_schema(engine)
    create_schema(engine)
    with unit_of_work(engine) as session:
        heads = session.execute(select(AuditHead.last_seq)).all()
    assert [h.last_seq for h in heads] == [0]


@pytest.mark.postgres
def test_an_operational_failure_is_raised_as_a_retryable_STORAGE_ERROR(
    pg_engine: Engine, new_tender: TenderFactory
) -> None:
    with unit_of_work(pg_engine) as session:
        Repository(session).add_tender(new_tender("T-1"))
    with unit_of_work(pg_engine) as holder:
        Repository(holder).lock_tender("T-1")
        with (
            pytest.raises(StorageError, match="retry") as raised,
            unit_of_work(pg_engine) as session,
        ):
            # NOWAIT turns "blocked by the other transaction" into an immediate error.
            session.execute(text("SELECT id FROM tenders FOR UPDATE NOWAIT"))
    assert raised.value.code == "STORAGE_ERROR"
