"""The opening record: one row per current bid, what it declared and whether it opened.

Pure data; built by ``service.opening`` and published as canonical JSON. A bid that fails
to open is a row with a stable status code and a reason, never a missing row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sealed_bid.domain.canonical import canonical_json, format_time

RECORD_FORMAT = "sealed-bid/opening-record/v1"

BidStatus = Literal[
    "OPENED",
    "KEY_TRANSPORT_FAILED",
    "DECRYPTION_FAILED",
    "INNER_SIGNATURE_INVALID",
    "SIGNER_MISMATCH",
    "MALFORMED_PACKAGE",
]


@dataclass(frozen=True)
class DocumentEntry:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BidderEntry:
    organisation: str | None
    common_name: str | None
    credit_code: str | None
    certificate_sha256: str


@dataclass(frozen=True)
class BidRow:
    bid_id: str
    log_sequence: int
    envelope_sha256: str
    size: int
    received_at: datetime
    status: BidStatus
    bidder: BidderEntry | None = None
    reason: str | None = None
    form: dict[str, Any] | None = None
    inner_signing_time: datetime | None = None
    package_sha256: str | None = None
    documents: tuple[DocumentEntry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "bid_id": self.bid_id,
            "log_sequence": self.log_sequence,
            "envelope_sha256": self.envelope_sha256,
            "size": self.size,
            "received_at": format_time(self.received_at),
            "status": self.status,
            "reason": self.reason,
            "bidder": None if self.bidder is None else vars(self.bidder),
            "form": self.form,
            "inner_signing_time": None
            if self.inner_signing_time is None
            else format_time(self.inner_signing_time),
            "package_sha256": self.package_sha256,
            "documents": [vars(d) for d in self.documents],
        }


@dataclass(frozen=True)
class NotOpenedBid:
    """A replaced or withdrawn envelope: listed for the trace, never decrypted."""

    bid_id: str
    envelope_sha256: str
    status: Literal["REPLACED", "WITHDRAWN"]

    def to_dict(self) -> dict[str, Any]:
        return vars(self).copy()


@dataclass(frozen=True)
class OpeningRecord:
    tender_id: str
    title: str
    deadline: datetime
    opening_time: datetime
    opened_at: datetime
    bids: tuple[BidRow, ...]
    not_opened: tuple[NotOpenedBid, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "tender_id": self.tender_id,
            "title": self.title,
            "deadline": format_time(self.deadline),
            "opening_time": format_time(self.opening_time),
            "opened_at": format_time(self.opened_at),
            "bids": [b.to_dict() for b in self.bids],
            "not_opened": [b.to_dict() for b in self.not_opened],
        }

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())
