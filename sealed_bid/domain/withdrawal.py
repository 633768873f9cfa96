"""The withdrawal statement a bidder signs (CMS SignedData, attached) to withdraw a bid.

It names the tender and the bid id from the bid's receipt; the signature's signingTime
orders it against the bidder's envelopes, so an old statement cannot be replayed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sealed_bid.domain.canonical import canonical_json
from sealed_bid.domain.ids import BidId, TenderId, parse_tender_id
from sealed_bid.errors import StatementInvalid

WITHDRAWAL_FORMAT = "sealed-bid/withdrawal/v1"
MAX_STATEMENT_BYTES = 4096


@dataclass(frozen=True)
class WithdrawalStatement:
    tender_id: TenderId
    bid_id: BidId

    def to_bytes(self) -> bytes:
        return canonical_json(
            {"format": WITHDRAWAL_FORMAT, "tender_id": self.tender_id, "bid_id": self.bid_id}
        )

    @classmethod
    def parse(cls, data: bytes) -> WithdrawalStatement:
        """Accept any JSON layout (openssl users write it by hand) with exactly these keys."""
        if len(data) > MAX_STATEMENT_BYTES:
            raise StatementInvalid("the withdrawal statement is too large")
        try:
            raw = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise StatementInvalid("the withdrawal statement is not UTF-8 JSON") from None
        if not isinstance(raw, dict) or set(raw) != {"format", "tender_id", "bid_id"}:
            raise StatementInvalid(
                'the statement must be {"format": "'
                + WITHDRAWAL_FORMAT
                + '", "tender_id": ..., "bid_id": ...}'
            )
        if raw["format"] != WITHDRAWAL_FORMAT:
            raise StatementInvalid(f"unknown statement format {raw['format']!r}")
        if not isinstance(raw["tender_id"], str) or not isinstance(raw["bid_id"], str):
            raise StatementInvalid("tender_id and bid_id must be strings")
        try:
            tender_id = parse_tender_id(raw["tender_id"])
        except ValueError as exc:
            raise StatementInvalid(str(exc)) from None
        return cls(tender_id=tender_id, bid_id=BidId(raw["bid_id"]))
