"""What a receipt says. The platform signs ``canonical_json(content.to_dict())`` as CMS
SignedData with its receipt key; this module only defines and parses the content.

A receipt never names the bidder, and its ``log_sequence`` is the platform-wide audit log
position, not a per-tender counter, so it does not reveal how many bids a tender has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sealed_bid.domain.canonical import canonical_json, format_time, parse_time
from sealed_bid.domain.ids import BidId, EnvelopeDigest, TenderId, parse_envelope_digest
from sealed_bid.errors import ReceiptInvalid

RECEIPT_FORMAT = "sealed-bid/receipt/v1"
ReceiptKind = Literal["bid", "withdrawal"]


@dataclass(frozen=True)
class ReceiptContent:
    kind: ReceiptKind
    tender_id: TenderId
    bid_id: BidId
    envelope_sha256: EnvelopeDigest
    size: int
    received_at: datetime
    log_sequence: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECEIPT_FORMAT,
            "kind": self.kind,
            "tender_id": self.tender_id,
            "bid_id": self.bid_id,
            "envelope_sha256": self.envelope_sha256,
            "size": self.size,
            "received_at": format_time(self.received_at),
            "log_sequence": self.log_sequence,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> ReceiptContent:
        try:
            raw = json.loads(data.decode("utf-8"))
            if not isinstance(raw, dict) or raw.get("format") != RECEIPT_FORMAT:
                raise ValueError("not a sealed-bid receipt")
            if set(raw) != {
                "format",
                "kind",
                "tender_id",
                "bid_id",
                "envelope_sha256",
                "size",
                "received_at",
                "log_sequence",
            }:
                raise ValueError("unexpected receipt fields")
            kind = raw["kind"]
            if kind not in ("bid", "withdrawal"):
                raise ValueError(f"unknown receipt kind {kind!r}")
            content = cls(
                kind=kind,
                tender_id=TenderId(str(raw["tender_id"])),
                bid_id=BidId(str(raw["bid_id"])),
                envelope_sha256=parse_envelope_digest(str(raw["envelope_sha256"])),
                size=int(raw["size"]),
                received_at=parse_time(str(raw["received_at"])),
                log_sequence=int(raw["log_sequence"]),
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ReceiptInvalid(f"receipt content does not parse: {exc}") from None
        if content.to_bytes() != data:
            raise ReceiptInvalid("receipt content is not in canonical form")
        return content
