"""Tables of the opening ceremony: a tender's key custody, its opening officers (with their
encrypted shares and the commitments that check them), the time proofs of opening
attempts, and the rows an opening has finished so far (so a killed opening resumes).

Never holds a PIN, a share in clear or anything a share could be recovered from: the
stored share is CMS-encrypted to its officer, and the commitment is a hash over a 32-byte
random share value, which does not reveal it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sealed_bid.domain.custody import DEFAULT_RESPONSE_WINDOW_SECONDS
from sealed_bid.storage.models import Base

_ID = 64
_HEX = 64


class TenderCustody(Base):
    """How the tender key may be used: ``scheduled`` (the platform token) or ``quorum``
    (a token of its own whose PIN only the officers' shares rebuild)."""

    __tablename__ = "tender_custody"

    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"), primary_key=True)
    policy: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[int]
    token_label: Mapped[str | None] = mapped_column(String(32))
    response_window_seconds: Mapped[int] = mapped_column(default=DEFAULT_RESPONSE_WINDOW_SECONDS)
    """How long after the record bidders may confirm or object; the key is kept until then."""
    key_destroyed_at: Mapped[datetime | None]


class TenderOfficer(Base):
    __tablename__ = "tender_officers"

    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"), primary_key=True)
    share_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    subject: Mapped[str] = mapped_column(Text)
    certificate_der: Mapped[bytes]
    certificate_sha256: Mapped[str] = mapped_column(String(_HEX))
    sealed_share: Mapped[bytes]
    """The officer's share, CMS-encrypted to the officer's certificate."""
    commitment: Mapped[str] = mapped_column(String(_HEX))
    """``ShareRecord.commitment()``: checks a presented share before it is combined."""


class OpeningProof(Base):
    """A time-stamping authority's token over one opening request, stored before any
    tender key is used under it."""

    __tablename__ = "opening_proofs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"), index=True)
    requested_at: Mapped[datetime]
    request_json: Mapped[str] = mapped_column(Text)
    request_sha256: Mapped[str] = mapped_column(String(_HEX))
    gen_time: Mapped[datetime]
    tsa_token_der: Mapped[bytes]
    token_sha256: Mapped[str] = mapped_column(String(_HEX))
    outcome: Mapped[str | None] = mapped_column(String(64))
    """None while the attempt runs (or after the process died in it: "interrupted" once a
    later attempt sees it), "completed", or "failed: <CODE>"."""


class OpeningRow(Base):
    """One bid's finished row of an opening in progress, stored as soon as the bid is
    done: a resumed opening reuses it, so a bid is never opened into two records. Written
    only after the proven opening time; the signer material is in clear from then on."""

    __tablename__ = "opening_rows"

    tender_id: Mapped[str] = mapped_column(ForeignKey("tenders.id"), primary_key=True)
    bid_id: Mapped[str] = mapped_column(ForeignKey("bids.id"), primary_key=True)
    proof_id: Mapped[int] = mapped_column(ForeignKey("opening_proofs.id"))
    row_json: Mapped[str] = mapped_column(Text)
    signature_blob: Mapped[str | None] = mapped_column(String(_HEX))
    validation_json: Mapped[str | None] = mapped_column(Text)
