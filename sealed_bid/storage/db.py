"""Engines, the schema, and the unit of work: one database transaction per call.

Owns how connections are made (SQLite: WAL, foreign keys, busy timeout, ``BEGIN IMMEDIATE``;
PostgreSQL: a pre-pinged pool) and where a transaction begins and ends. It must never hold
a transaction open across a call to the token or the network that it does not need, and it
never commits half a unit of work: the block either commits as a whole or rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from sealed_bid.errors import StorageError
from sealed_bid.storage import custody_models, response_models  # noqa: F401  (their tables)
from sealed_bid.storage.models import GENESIS_HASH, AuditHead, Base

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
"""How long a SQLite writer waits for another writer's transaction before giving up."""

_READ_ONLY = "sealed_bid_read_only"
"""Execution option marking a read-only unit of work (SQLite: deferred BEGIN)."""


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite and PostgreSQL (psycopg2) are supported.

    On PostgreSQL a schema may be chosen in the URL itself, e.g.
    ``postgresql+psycopg2://u@h/db?options=-csearch_path%3Dmyschema``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            pool_size=5,
            max_overflow=10,
            # A connection dropped by the server (restart, idle timeout) is replaced
            # instead of failing the next submission.
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    raise StorageError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql",
        url_backend=parsed.get_backend_name(),
    )


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling does not BEGIN before SELECTs and cannot
        # BEGIN IMMEDIATE; take it over (the documented SQLAlchemy recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # A receipt promises the bid is stored: NORMAL could lose the last commits
            # on power failure in WAL mode, FULL cannot.
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so two writers serialise at the start
        # instead of one failing with SQLITE_BUSY when it upgrades a read lock mid-way.
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_schema(engine: Engine) -> None:
    """Create every table that does not exist yet and seed the audit log head. Idempotent."""
    Base.metadata.create_all(engine)
    with unit_of_work(engine) as session:
        exists = session.scalar(select(AuditHead.id).where(AuditHead.id == AuditHead.SINGLETON))
        if exists is None:
            session.execute(
                insert(AuditHead).values(id=AuditHead.SINGLETON, last_seq=0, last_hash=GENESIS_HASH)
            )


def read_only_engine(engine: Engine) -> Engine:
    """The same engine, for reads that must not wait behind writers: a deferred
    transaction on SQLite, a READ ONLY one on PostgreSQL."""
    options: dict[str, Any] = {_READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    return engine.execution_options(**options)


@contextmanager
def unit_of_work(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """``with unit_of_work(engine) as session:`` runs the block in one transaction.

    Commits when the block ends normally and rolls back when it raises. Objects stay
    usable after the block (``expire_on_commit=False``) but are detached: read them, do
    not expect later changes to be saved.

    ``read_only=True`` is for reads that must not wait behind writers (listing, chain
    verification): on SQLite it begins a deferred transaction (a write inside it may fail
    with ``StorageError``), on PostgreSQL the transaction is READ ONLY.

    Operational failures (database locked or unreachable, deadlock, serialisation
    failure) are raised as ``StorageError``: the whole unit of work may be retried.
    """
    bind = read_only_engine(engine) if read_only else engine
    session = Session(bind=bind, expire_on_commit=False)
    try:
        with session.begin():
            yield session
    except OperationalError as exc:
        raise StorageError(
            "the database could not complete the transaction; retry", reason=str(exc.orig)
        ) from exc
    finally:
        session.close()
