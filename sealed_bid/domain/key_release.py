"""The content-key release a bidder signs (CMS SignedData, attached) at a remote opening:
the content-encryption key of its own bid, recovered on its own machine from the
RecipientInfo sealed to its own certificate.

Pure: parsing is strict (exactly these keys, no duplicates, known format, lower-case hex
of a 16-, 24- or 32-byte key) and nothing here checks a signature, a signer, a time or
whether the key opens anything. It must never put the key in an error message or a
``repr`` (the key is the bid's plaintext, in all but name), and it must never accept a
statement it cannot reproduce byte for byte from its fields (``to_bytes`` is canonical
JSON).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from sealed_bid.domain.canonical import canonical_json
from sealed_bid.domain.ids import BidId, EnvelopeDigest, TenderId, parse_tender_id
from sealed_bid.errors import StatementInvalid

RELEASE_FORMAT: Final = "sealed-bid/content-key-release/v1"
MAX_RELEASE_BYTES: Final = 4096
CONTENT_KEY_LENGTHS: Final = (16, 24, 32)
"""AES-128/192/256 key sizes; the bids this version accepts use AES-256 (32 bytes)."""

_KEYS: Final = frozenset({"format", "tender_id", "bid_id", "envelope_sha256", "content_key"})
_BID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_HEX = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{48}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class KeyRelease:
    """``{"format":"sealed-bid/content-key-release/v1","tender_id":...,"bid_id":...,
    "envelope_sha256":...,"content_key":"<hex>"}``"""

    tender_id: TenderId
    bid_id: BidId
    envelope_sha256: EnvelopeDigest
    content_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _BID_ID.fullmatch(self.bid_id):
            raise StatementInvalid("bid_id is not a bid id (as on the bid's receipt)")
        if not _HEX64.fullmatch(self.envelope_sha256):
            raise StatementInvalid("envelope_sha256 must be 64 lower-case hex characters")
        if len(self.content_key) not in CONTENT_KEY_LENGTHS:
            raise StatementInvalid("content_key must be a 16-, 24- or 32-byte key")

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "format": RELEASE_FORMAT,
                "tender_id": self.tender_id,
                "bid_id": self.bid_id,
                "envelope_sha256": self.envelope_sha256,
                "content_key": self.content_key.hex(),
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> KeyRelease:
        """Accept any JSON layout (openssl users write it by hand) with exactly the keys."""
        if len(data) > MAX_RELEASE_BYTES:
            raise StatementInvalid("the key release statement is too large")
        try:
            raw = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (ValueError, UnicodeDecodeError):
            raise StatementInvalid("the key release statement is not UTF-8 JSON") from None
        if not isinstance(raw, dict) or set(raw) != _KEYS:
            raise StatementInvalid(
                "the key release statement must be a JSON object with exactly the keys "
                + ", ".join(sorted(_KEYS))
            )
        if raw["format"] != RELEASE_FORMAT:
            raise StatementInvalid("unknown statement format; expected " + RELEASE_FORMAT)
        if not all(isinstance(raw[k], str) for k in _KEYS):
            raise StatementInvalid("every value of the key release statement is a string")
        try:
            tender_id = parse_tender_id(raw["tender_id"])
        except ValueError as exc:
            raise StatementInvalid(str(exc)) from None
        if not _KEY_HEX.fullmatch(raw["content_key"]):
            # Never echo the value: it may be the key, slightly mistyped.
            raise StatementInvalid(
                "content_key must be 32, 48 or 64 lower-case hex characters (a 16-, 24- or"
                " 32-byte key)"
            )
        return cls(
            tender_id=tender_id,
            bid_id=BidId(raw["bid_id"]),
            envelope_sha256=EnvelopeDigest(raw["envelope_sha256"]),
            content_key=bytes.fromhex(raw["content_key"]),
        )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise StatementInvalid("the key release statement repeats a key")
    return dict(pairs)
