"""The trust store's tables, on the service's database but with their own metadata.

Owns the persisted shape of the trust store: CAs, their certificates (anchors and
intermediates, each with status, source, who added and who approved it), their CRLs
(every one received, newest used) and the trust-change log. ``ca_bridge`` never imports
``sealed_bid``, so it has its own ``DeclarativeBase`` and its own UTC timestamp type;
``create_trust_schema`` is called next to the service's ``create_schema``.

It must never hold a bidder's certificate or identity: only CA material.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Engine,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_ID = 64
_HEX = 64
_ACTOR = 128

# INTEGER (not BIGINT) on SQLite so that it aliases the rowid and autoincrements.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and returned timezone-aware (UTC) on every engine; the
    one timestamp type of both schemas that share the service's engine.

    PostgreSQL keeps it as ``timestamptz``; SQLite has no time zones, so the UTC wall
    time is stored and UTC is re-attached on read. Naive datetimes are refused on write
    because their meaning depends on the host's zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: pass a timezone-aware (UTC) datetime")
        utc = value.astimezone(UTC)
        if dialect.name == "postgresql":
            return utc
        return utc.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class CaStatus(enum.StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"


class CertRole(enum.StrEnum):
    ANCHOR = "anchor"
    INTERMEDIATE = "intermediate"


class CertStatus(enum.StrEnum):
    PENDING = "pending"
    """An anchor proposed by one operator, waiting for a second one to approve it."""
    ACTIVE = "active"
    REMOVED = "removed"


class Source(enum.StrEnum):
    """Who brought the material: an operator, the sync job, or the CA's own authority."""

    OPERATOR = "operator"
    SYNC = "sync"
    AUTHORITY_PUSH = "authority-push"


def _str_enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # VARCHAR + CHECK, as the service's tables: same DDL on both engines.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class TrustBase(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        bytes: LargeBinary(),
        int: BigInteger(),
    }


class TrustCa(TrustBase):
    """One certificate authority the platform may accept (a tender chooses among them).

    Its row is locked (FOR UPDATE) by every change to its material, so changes to one CA
    serialise and "newer than the one held" is decided on current data.
    """

    __tablename__ = "trust_cas"

    ca_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    display_name: Mapped[str] = mapped_column(Text)
    status: Mapped[CaStatus] = mapped_column(_str_enum(CaStatus, "trust_ca_status"))
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(String(_ACTOR))
    removed_at: Mapped[datetime | None]
    removed_by: Mapped[str | None] = mapped_column(String(_ACTOR))


class TrustCertificate(TrustBase):
    """A CA certificate of one CA: a trust anchor or an intermediate."""

    __tablename__ = "trust_certificates"
    __table_args__ = (
        Index("ix_trust_certificates_ca_status", "ca_id", "status"),
        Index("ix_trust_certificates_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    ca_id: Mapped[str] = mapped_column(ForeignKey("trust_cas.ca_id"))
    role: Mapped[CertRole] = mapped_column(_str_enum(CertRole, "trust_cert_role"))
    der: Mapped[bytes]
    sha256: Mapped[str] = mapped_column(String(_HEX))
    subject: Mapped[str] = mapped_column(Text)
    not_after: Mapped[datetime]
    status: Mapped[CertStatus] = mapped_column(_str_enum(CertStatus, "trust_cert_status"))
    source: Mapped[Source] = mapped_column(_str_enum(Source, "trust_source"))
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(String(_ACTOR))
    approved_by: Mapped[str | None] = mapped_column(String(_ACTOR))
    approved_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]
    removed_by: Mapped[str | None] = mapped_column(String(_ACTOR))


class TrustCrl(TrustBase):
    """A CRL received for one CA. Every accepted CRL is kept (evidence of what was known
    when); the snapshot uses the newest per issuer (the highest id: only newer ones are
    ever accepted)."""

    __tablename__ = "trust_crls"
    __table_args__ = (Index("ix_trust_crls_ca_issuer", "ca_id", "issuer_key"),)

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    ca_id: Mapped[str] = mapped_column(ForeignKey("trust_cas.ca_id"))
    der: Mapped[bytes]
    sha256: Mapped[str] = mapped_column(String(_HEX))
    issuer: Mapped[str] = mapped_column(Text)
    issuer_key: Mapped[str] = mapped_column(String(_HEX))
    """SHA-256 of the issuer name DER plus the authority key id: "the same issuer"."""
    this_update: Mapped[datetime]
    next_update: Mapped[datetime | None]
    crl_number: Mapped[str | None] = mapped_column(String(64))
    """Decimal text: a CRL number may have 20 octets, more than any SQL integer."""
    fetched_at: Mapped[datetime]
    source: Mapped[Source] = mapped_column(_str_enum(Source, "trust_source"))
    added_by: Mapped[str] = mapped_column(String(_ACTOR))


class TrustChange(TrustBase):
    """The trust-change log: one row per change, never updated except ``audited``.

    ``audited`` is set once the change was also appended to the service's audit log
    (through ``DbTrustStore``'s ``on_change``). Changes made without that callback (the
    operator CLI, which must not open the token that signs audit entries) wait with
    ``audited = false`` until the service forwards them (``DbTrustStore.forward_unaudited``).
    """

    __tablename__ = "trust_changes"
    __table_args__ = (Index("ix_trust_changes_audited", "audited"),)

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(_ACTOR))
    event: Mapped[str] = mapped_column(String(64))
    ca_id: Mapped[str | None] = mapped_column(String(_ID))
    fields_json: Mapped[str] = mapped_column(Text)
    audited: Mapped[bool] = mapped_column(Boolean)


def create_trust_schema(engine: Engine) -> None:
    """Create the trust-store tables that do not exist yet. Idempotent."""
    TrustBase.metadata.create_all(engine)
