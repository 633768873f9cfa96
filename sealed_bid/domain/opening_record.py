"""The opening record: one row per current bid, what it declared and whether it opened.

Pure data; built by ``service.opening`` and published as canonical JSON. A bid that fails
to open is a row with a stable status code and a reason, never a missing row.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sealed_bid.domain.canonical import canonical_json, format_time, parse_time

RECORD_FORMAT = "sealed-bid/opening-record/v1"

BidStatus = Literal[
    "OPENED",
    "KEY_TRANSPORT_FAILED",
    "DECRYPTION_FAILED",
    "INNER_SIGNATURE_INVALID",
    "SIGNER_MISMATCH",
    "MALFORMED_PACKAGE",
]

OpenedWith = Literal["bidder_key", "tender_key"]


@dataclass(frozen=True)
class DocumentEntry:
    name: str
    size: int
    sha256: str
    signatures: list[dict[str, Any]] | None = None
    """For a PDF: each embedded signature as validated at the opening (signer, time,
    intact/valid/trusted, PAdES); None for other documents."""


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
    opened_with: OpenedWith | None = None
    """Which key recovered the content of an ``OPENED`` bid: the content key its bidder
    released (``bidder_key``) or the tender key (``tender_key``); None unless opened."""
    note: str | None = None
    """Set when the bidder released a content key that did not open the bid (the tender
    key was then used); None otherwise."""

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
            "opened_with": self.opened_with,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BidRow:
        """The inverse of ``to_dict`` (rows kept while an opening is in progress)."""
        bidder = data["bidder"]
        signing_time = data["inner_signing_time"]
        return cls(
            bid_id=data["bid_id"],
            log_sequence=data["log_sequence"],
            envelope_sha256=data["envelope_sha256"],
            size=data["size"],
            received_at=parse_time(data["received_at"]),
            status=data["status"],
            bidder=None if bidder is None else BidderEntry(**bidder),
            reason=data["reason"],
            form=data["form"],
            inner_signing_time=None if signing_time is None else parse_time(signing_time),
            package_sha256=data["package_sha256"],
            documents=tuple(DocumentEntry(**d) for d in data["documents"]),
            # Absent from rows an opening kept before these fields existed.
            opened_with=data.get("opened_with"),
            note=data.get("note"),
        )


@dataclass(frozen=True)
class NotOpenedBid:
    """A replaced or withdrawn envelope: listed for the trace, never decrypted."""

    bid_id: str
    envelope_sha256: str
    status: Literal["REPLACED", "WITHDRAWN"]

    def to_dict(self) -> dict[str, Any]:
        return vars(self).copy()


@dataclass(frozen=True)
class TimeProofEntry:
    """The TSA token over the opening request: proves that no key use came before
    ``tsa_time`` >= the opening time."""

    tsa_time: datetime
    request_json: str
    request_sha256: str
    tsa_token_der: bytes
    tsa_token_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tsa_time": format_time(self.tsa_time),
            "request_json": self.request_json,
            "request_sha256": self.request_sha256,
            "tsa_token": base64.b64encode(self.tsa_token_der).decode("ascii"),
            "tsa_token_sha256": self.tsa_token_sha256,
        }


@dataclass(frozen=True)
class AttemptEntry:
    """One attempt to open: its proven time and how it ended ("completed", "interrupted"
    when the process died in it, or "failed: <CODE>")."""

    tsa_time: datetime
    tsa_token_sha256: str
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tsa_time": format_time(self.tsa_time),
            "tsa_token_sha256": self.tsa_token_sha256,
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class CustodyEntry:
    """Who unlocked the tender key: the platform on schedule, or K named officers."""

    policy: str
    threshold: int
    officers_present: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "threshold": self.threshold,
            "officers_present": list(self.officers_present),
        }


@dataclass(frozen=True)
class OpeningRecord:
    tender_id: str
    title: str
    deadline: datetime
    opening_time: datetime
    opened_at: datetime
    bids: tuple[BidRow, ...]
    not_opened: tuple[NotOpenedBid, ...] = field(default=())
    time_proof: TimeProofEntry | None = None
    custody: CustodyEntry | None = None
    attempts: tuple[AttemptEntry, ...] = ()

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
            "time_proof": None if self.time_proof is None else self.time_proof.to_dict(),
            "custody": None if self.custody is None else self.custody.to_dict(),
            "attempts": [a.to_dict() for a in self.attempts],
        }

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())
