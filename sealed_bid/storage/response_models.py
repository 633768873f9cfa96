"""The table of bidders' responses to opening records: each confirmation or objection a
bidder signed, kept with the signed statement itself.

Rows exist only after the opening (a response needs a record), so naming the responding
bidder here does not break the rule of ``models``. Rows are never changed or deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sealed_bid.storage.models import Base

_ID = 64
_HEX = 64


class RecordResponse(Base):
    """One bidder's confirmation of, or objection to, a tender's opening record."""

    __tablename__ = "record_responses"
    __table_args__ = (
        # The same signed statement sent twice is one response.
        UniqueConstraint("tender_id", "statement_sha256", name="uq_record_responses_statement"),
    )

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"), index=True)
    bid_id: Mapped[str] = mapped_column(ForeignKey("bids.id"))
    """The responding bidder's bid in the record."""
    verdict: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    bidder: Mapped[str] = mapped_column(Text)
    """Organisation (or common name) of the signer's certificate."""
    signed_statement: Mapped[bytes]
    """The CMS SignedData the bidder sent (its ``ResponseStatement`` attached)."""
    statement_sha256: Mapped[str] = mapped_column(String(_HEX))
    received_at: Mapped[datetime]
    log_sequence: Mapped[int] = mapped_column(unique=True)
    """The ``record.response`` audit entry; orders responses by arrival."""
