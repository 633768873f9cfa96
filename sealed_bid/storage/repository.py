"""Typed queries and writes over one session: the only place the service touches tables.

Owns how rows are found, locked and added. Methods return the ORM model objects of
``sealed_bid.storage.models`` (attached to the caller's session; mutate them inside the
unit of work to update rows). It never commits or rolls back (the unit of work does),
never decides a business rule (lateness, replay, ownership: the service does), and never
stores anything that identifies a bidder before the opening.

Locks (``lock_*``) are ``SELECT ... FOR UPDATE`` on PostgreSQL and are held until the unit
of work ends; on SQLite every writing unit of work already holds the database write lock
(``BEGIN IMMEDIATE``). Take locks in the order tender, slot, audit head.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sealed_bid.errors import (
    AlreadyOpened,
    BidNotFound,
    RecordNotFound,
    StorageError,
    TenderExists,
    TenderNotFound,
)
from sealed_bid.storage.models import (
    Bid,
    BidderSlot,
    BidStatus,
    KeyUse,
    OpeningRecord,
    Tender,
    TenderState,
    Withdrawal,
)


class Repository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- tenders ----------------------------------------------------------------------
    def add_tender(self, tender: Tender) -> Tender:
        """Insert a tender; raises ``TenderExists`` if its id is taken."""
        try:
            with self.session.begin_nested():
                self.session.add(tender)
        except IntegrityError:
            raise TenderExists(
                f"tender {tender.id!r} already exists", tender_id=tender.id
            ) from None
        return tender

    def get_tender(self, tender_id: str) -> Tender:
        """The tender; raises ``TenderNotFound``."""
        tender = self.session.get(Tender, tender_id)
        if tender is None:
            raise TenderNotFound(f"no tender {tender_id!r}", tender_id=tender_id)
        return tender

    def list_tenders(self) -> Sequence[Tender]:
        """All tenders, newest first."""
        return self.session.scalars(
            select(Tender).order_by(Tender.created_at.desc(), Tender.id)
        ).all()

    def lock_tender(self, tender_id: str) -> Tender:
        """The tender, locked for update and re-read from the database (so a value
        loaded earlier in this session is not trusted); raises ``TenderNotFound``."""
        tender = self.session.scalars(
            select(Tender)
            .where(Tender.id == tender_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()
        if tender is None:
            raise TenderNotFound(f"no tender {tender_id!r}", tender_id=tender_id)
        return tender

    def mark_opened(self, tender_id: str, at: datetime) -> Tender:
        """Lock the tender and move it to ``opened``; raises ``AlreadyOpened``."""
        tender = self.lock_tender(tender_id)
        if tender.state is TenderState.OPENED:
            raise AlreadyOpened(f"tender {tender_id!r} is already opened", tender_id=tender_id)
        tender.state = TenderState.OPENED
        tender.opened_at = at
        self.session.flush()
        return tender

    # --- bidder slots -----------------------------------------------------------------
    def get_slot(self, tender_id: str, bidder_tag: str) -> BidderSlot | None:
        """The bidder's slot as it is now, without a lock (early checks only)."""
        return self.session.get(BidderSlot, (tender_id, bidder_tag))

    def lock_slot(self, tender_id: str, bidder_tag: str) -> BidderSlot | None:
        """The bidder's slot locked for update (fresh from the database), or None."""
        return self.session.scalars(
            select(BidderSlot)
            .where(BidderSlot.tender_id == tender_id, BidderSlot.bidder_tag == bidder_tag)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()

    def lock_or_create_slot(self, tender_id: str, bidder_tag: str) -> BidderSlot:
        """The bidder's slot, locked; created empty (no bid, no high-water mark) if absent.

        Race-free: when two submissions by one bidder create the slot at once, one insert
        wins, the other waits for it (PostgreSQL) and both then lock the same row in turn.
        Prefer this to ``lock_slot`` + ``add_slot``.
        """
        dialect = self.session.get_bind().dialect.name
        values = {"tender_id": tender_id, "bidder_tag": bidder_tag}
        if dialect == "postgresql":
            self.session.execute(
                postgresql.insert(BidderSlot).values(**values).on_conflict_do_nothing()
            )
        elif dialect == "sqlite":
            self.session.execute(
                sqlite.insert(BidderSlot).values(**values).on_conflict_do_nothing()
            )
        else:  # pragma: no cover - make_engine refuses other databases
            raise StorageError(f"unsupported database {dialect!r}")
        slot = self.lock_slot(tender_id, bidder_tag)
        if slot is None:  # pragma: no cover - the row was inserted or already existed
            raise StorageError("bidder slot vanished while being created; retry")
        return slot

    def add_slot(self, slot: BidderSlot) -> BidderSlot:
        """Insert a new slot. If a concurrent unit of work inserted the same slot first,
        raises ``StorageError`` (retryable) and this session stays usable."""
        try:
            with self.session.begin_nested():
                self.session.add(slot)
        except IntegrityError:
            raise StorageError(
                "another submission by this bidder is in progress; retry",
                tender_id=slot.tender_id,
            ) from None
        return slot

    # --- bids ---------------------------------------------------------------------------
    def add_bid(self, bid: Bid) -> Bid:
        """Insert a bid (flushed, so constraint violations surface here)."""
        self.session.add(bid)
        self.session.flush()
        return bid

    def get_bid(self, bid_id: str) -> Bid:
        """The bid; raises ``BidNotFound``."""
        bid = self.session.get(Bid, bid_id)
        if bid is None:
            raise BidNotFound(f"no bid {bid_id!r}", bid_id=bid_id)
        return bid

    def find_bid(self, tender_id: str, bidder_tag: str, envelope_sha256: str) -> Bid | None:
        """The bid this bidder made with exactly this envelope (any status), or None:
        how a resent envelope gets its original receipt back."""
        return self.session.scalars(
            select(Bid).where(
                Bid.tender_id == tender_id,
                Bid.bidder_tag == bidder_tag,
                Bid.envelope_sha256 == envelope_sha256,
            )
        ).one_or_none()

    def current_bids(self, tender_id: str) -> Sequence[Bid]:
        """The tender's current bids (neither replaced nor withdrawn) in log order."""
        return self.session.scalars(
            select(Bid)
            .where(Bid.tender_id == tender_id, Bid.status == BidStatus.CURRENT)
            .order_by(Bid.log_sequence)
        ).all()

    def all_bids(self, tender_id: str) -> Sequence[Bid]:
        """Every bid of the tender whatever its status, in log order."""
        return self.session.scalars(
            select(Bid).where(Bid.tender_id == tender_id).order_by(Bid.log_sequence)
        ).all()

    def store_opened_signer(
        self, bid_id: str, outer_signature_blob: str, validation_json: str | None
    ) -> Bid:
        """Keep the clear signer material of a bid the opening unsealed (ADR 0016). Call
        after ``mark_opened`` in the same unit of work: refuses (``StorageError``) while
        the bid's tender is not opened, so nothing stores it in clear before."""
        bid = self.get_bid(bid_id)
        if self.get_tender(bid.tender_id).state is not TenderState.OPENED:
            raise StorageError(
                f"bid {bid_id!r}: its tender is not opened; its signer stays sealed",
                bid_id=bid_id,
            )
        bid.outer_signature_blob = outer_signature_blob
        bid.validation_json = validation_json
        self.session.flush()
        return bid

    def count_current_bids(self, tender_id: str) -> int:
        count = self.session.scalar(
            select(func.count())
            .select_from(Bid)
            .where(Bid.tender_id == tender_id, Bid.status == BidStatus.CURRENT)
        )
        return int(count or 0)

    # --- withdrawals --------------------------------------------------------------------
    def add_withdrawal(self, withdrawal: Withdrawal) -> Withdrawal:
        self.session.add(withdrawal)
        self.session.flush()
        return withdrawal

    def withdrawals(self, tender_id: str) -> Sequence[Withdrawal]:
        return self.session.scalars(
            select(Withdrawal)
            .where(Withdrawal.tender_id == tender_id)
            .order_by(Withdrawal.log_sequence)
        ).all()

    # --- key uses -----------------------------------------------------------------------
    def add_key_use(self, key_use: KeyUse) -> KeyUse:
        """Record a use of a tender key. Flushed at once; the caller must commit the unit
        of work before it calls the token, so the record survives a crash during use."""
        self.session.add(key_use)
        self.session.flush()
        return key_use

    def key_uses(self, tender_id: str) -> Sequence[KeyUse]:
        return self.session.scalars(
            select(KeyUse).where(KeyUse.tender_id == tender_id).order_by(KeyUse.id)
        ).all()

    # --- opening records ----------------------------------------------------------------
    def save_record(self, record: OpeningRecord) -> OpeningRecord:
        """Insert the tender's opening record; raises ``AlreadyOpened`` if one exists.
        Call after ``mark_opened`` (which locks the tender) so two openings serialise."""
        if self.session.get(OpeningRecord, record.tender_id) is not None:
            raise AlreadyOpened(
                f"tender {record.tender_id!r} already has an opening record",
                tender_id=record.tender_id,
            )
        self.session.add(record)
        self.session.flush()
        return record

    def get_record(self, tender_id: str) -> OpeningRecord:
        """The opening record; raises ``RecordNotFound``."""
        record = self.session.get(OpeningRecord, tender_id)
        if record is None:
            raise RecordNotFound(f"tender {tender_id!r} has no opening record", tender_id=tender_id)
        return record
