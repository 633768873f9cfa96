"""The tables of Sealed Bid as SQLAlchemy 2.0 typed declarative models.

Owns the shape of what is persisted and the rule that every timestamp is stored as UTC and
read back timezone-aware on every engine. It must never gain a column that holds a bidder's
identity, name, certificate, price or any plaintext before the opening: bids are keyed by
``bidder_tag`` (a keyed hash computed on the token), and the signer material (outer
signature, validation record, revocation evidence, withdrawal statement) is sealed to the
tender certificate and referenced by the digest of the sealed blob (ADR 0016). Only the
opening fills the clear copies (``Bid.outer_signature_blob``, ``Bid.validation_json``) of
the bids it opens. Audit entries have no foreign keys so the log stands on its own.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ca_bridge.store_models import UTCDateTime

GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of audit entry 1."""

_ID = 64
_HEX = 64
_TAG = 128


def _str_enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # VARCHAR + CHECK rather than a native PostgreSQL ENUM: the same DDL on both engines
    # and no CREATE TYPE to migrate when a value is added.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class TenderState(enum.StrEnum):
    ACCEPTING = "accepting"
    OPENED = "opened"


class BidStatus(enum.StrEnum):
    CURRENT = "current"
    REPLACED = "replaced"
    WITHDRAWN = "withdrawn"


class KeyOperation(enum.StrEnum):
    DECRYPT_KEY = "decrypt_key"
    """Recovering a bid envelope's content key."""
    UNSEAL = "unseal"
    """Recovering the key of a sealed signer identity (ADR 0016)."""


class CertificateExpiry(enum.StrEnum):
    """Whether a certificate of a bid's outer signature expires before the tender's
    opening, decided at submission: the one bit the expiry warning needs, instead of the
    certificate's notAfter (a fingerprint of the certificate, ADR 0016)."""

    NONE = "none"
    SIGNER = "signer"
    """The signer's own certificate expires first, before the opening."""
    CA = "ca"
    """A CA certificate carried in the signature expires first, before the opening."""


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        bytes: LargeBinary(),
        int: BigInteger(),
    }


class Tender(Base):
    __tablename__ = "tenders"

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    deadline: Mapped[datetime]
    opening_time: Mapped[datetime]
    max_envelope_bytes: Mapped[int]
    accepted_ca_ids: Mapped[list[str]] = mapped_column(JSON)
    oaep_hashes: Mapped[list[str]] = mapped_column(JSON)
    content_algorithms: Mapped[list[str]] = mapped_column(JSON)
    tender_cert_der: Mapped[bytes]
    count_visible: Mapped[bool] = mapped_column(Boolean)
    revocation_policy: Mapped[str] = mapped_column(String(16), default="require")
    policy_oids: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Certificate policies (any one) a bidder's chain must be valid for; empty: any."""
    eku_oids: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Extended key usages (any one) the signer's certificate must carry; empty: any."""
    state: Mapped[TenderState] = mapped_column(_str_enum(TenderState, "tender_state"))
    opened_at: Mapped[datetime | None]


class Bid(Base):
    """One accepted envelope. The envelope is a blob; the signer material is one sealed
    blob until the opening, which stores the clear copies of the bids it opens."""

    __tablename__ = "bids"
    __table_args__ = (
        # The same envelope resent by the same bidder finds its first receipt again.
        UniqueConstraint(
            "tender_id", "bidder_tag", "envelope_sha256", name="uq_bids_tender_tag_envelope"
        ),
        Index("ix_bids_tender_status_seq", "tender_id", "status", "log_sequence"),
    )

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"))
    bidder_tag: Mapped[str] = mapped_column(String(_TAG))
    envelope_sha256: Mapped[str] = mapped_column(String(_HEX))
    size: Mapped[int]
    received_at: Mapped[datetime]
    signing_time: Mapped[datetime]
    log_sequence: Mapped[int] = mapped_column(unique=True)
    status: Mapped[BidStatus] = mapped_column(_str_enum(BidStatus, "bid_status"))
    sealed_identity_blob: Mapped[str] = mapped_column(String(_HEX))
    """Digest of the sealed blob holding the outer signature, the validation record and
    its evidence (``service.sealing``): ciphertext to the tender certificate."""
    expires_before_opening: Mapped[CertificateExpiry] = mapped_column(
        _str_enum(CertificateExpiry, "certificate_expiry")
    )
    outer_signature_blob: Mapped[str | None] = mapped_column(String(_HEX))
    """The clear outer signature, stored by the opening; None before it, and for bids it
    did not open (replaced, withdrawn)."""
    validation_json: Mapped[str | None] = mapped_column(Text)
    """The clear validation record, stored by the opening (as ``outer_signature_blob``)."""
    receipt_der: Mapped[bytes]


class BidderSlot(Base):
    """Per tender and bidder: the current bid and the replay high-water mark.

    ``last_signing_time`` is None only for a slot just created by
    ``Repository.lock_or_create_slot`` that has not accepted anything yet.
    """

    __tablename__ = "bidder_slots"

    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"), primary_key=True)
    bidder_tag: Mapped[str] = mapped_column(String(_TAG), primary_key=True)
    current_bid_id: Mapped[str | None] = mapped_column(ForeignKey("bids.id"))
    last_signing_time: Mapped[datetime | None]


class Withdrawal(Base):
    __tablename__ = "withdrawals"

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"), index=True)
    bid_id: Mapped[str] = mapped_column(ForeignKey("bids.id"))
    bidder_tag: Mapped[str] = mapped_column(String(_TAG))
    sealed_statement_blob: Mapped[str] = mapped_column(String(_HEX))
    """Digest of the sealed blob holding the signed statement (``service.sealing``)."""
    signing_time: Mapped[datetime]
    received_at: Mapped[datetime]
    log_sequence: Mapped[int] = mapped_column(unique=True)
    receipt_der: Mapped[bytes]


class KeyUse(Base):
    """One use of a tender private key, written before the key is used."""

    __tablename__ = "key_uses"

    # INTEGER (not BIGINT) on SQLite so that it aliases the rowid and autoincrements.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"), index=True)
    bid_id: Mapped[str | None] = mapped_column(ForeignKey("bids.id"))
    operation: Mapped[KeyOperation] = mapped_column(_str_enum(KeyOperation, "key_operation"))
    at: Mapped[datetime]


class OpeningRecord(Base):
    __tablename__ = "opening_records"

    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"), primary_key=True)
    created_at: Mapped[datetime]
    record_json: Mapped[str] = mapped_column(Text)
    record_sha256: Mapped[str] = mapped_column(String(_HEX))
    record_pdf: Mapped[bytes | None]
    """The record as a PAdES-signed PDF (the JSON embedded); None for older records."""


class AuditEntry(Base):
    """One entry of the global hash-chained audit log (see ``audit_log``)."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(64))
    tender_id: Mapped[str | None] = mapped_column(String(_ID), index=True)
    bid_id: Mapped[str | None] = mapped_column(String(_ID))
    fields_json: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(_HEX))
    entry_hash: Mapped[str] = mapped_column(String(_HEX), unique=True)
    signature: Mapped[bytes | None]


class AuditHead(Base):
    """The one-row head of the audit log: the last seq and hash.

    Locked (FOR UPDATE) by every append so sequence numbers are gap-free and the chain
    is linear; also lets verification notice entries deleted from the tail.
    """

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="ck_audit_head_singleton"),)

    SINGLETON: ClassVar[int] = 1

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int]
    last_hash: Mapped[str] = mapped_column(String(_HEX))
