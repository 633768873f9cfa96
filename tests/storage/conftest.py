"""Fixtures for the storage tests: a fresh database per test on SQLite (a file) and on
PostgreSQL (one uniquely named schema per test session, emptied before each test)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from sealed_bid.storage.db import create_schema, make_engine
from sealed_bid.storage.models import Base, Tender, TenderState

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"

T0 = datetime(2030, 5, 1, 9, 0, 0, 123456, tzinfo=UTC)
"""A fixed instant the tests build schedules around (the clock is never read)."""


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    """A URL whose connections use a schema private to this test session."""
    schema = f"sb_storage_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _empty_postgres(engine: Engine) -> None:
    create_schema(engine)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    create_schema(engine)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty, freshly created schema."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'sealed-bid.db'}")
        create_schema(eng)
    else:
        eng = make_engine(request.getfixturevalue("pg_schema_url"))
        _empty_postgres(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def pg_engine(pg_schema_url: str) -> Iterator[Engine]:
    """A PostgreSQL engine only, for tests of row-lock behaviour SQLite does not have."""
    eng = make_engine(pg_schema_url)
    _empty_postgres(eng)
    try:
        yield eng
    finally:
        eng.dispose()


TenderFactory = Callable[..., Tender]


@pytest.fixture
def new_tender() -> TenderFactory:
    """Builds (does not store) a valid tender; keyword arguments override fields."""

    def build(tender_id: str = "T-2030-001", **overrides: object) -> Tender:
        values: dict[str, object] = {
            "id": tender_id,
            "title": "Road maintenance, lot 1",
            "created_at": T0,
            "deadline": T0 + timedelta(days=14),
            "opening_time": T0 + timedelta(days=14, hours=1),
            "max_envelope_bytes": 64 * 1024 * 1024,
            "accepted_ca_ids": ["ca-1", "ca-2"],
            "oaep_hashes": ["sha256"],
            "content_algorithms": ["aes256-gcm"],
            "tender_cert_der": b"\x30\x82\x01\x00",
            "count_visible": False,
            "state": TenderState.ACCEPTING,
            "opened_at": None,
        }
        values.update(overrides)
        return Tender(**values)

    return build
