"""What a bidder signs at the opening (CMS SignedData, attached): the request to watch its
tender's opening, and its confirmation of, or objection to, the opening record; and what
the platform keeps of a response it accepted.

Pure: parsing is strict (exactly these keys, known format, bounded text) and nothing here
checks a signature, a signer or a time. It must never accept a statement it cannot
reproduce byte for byte from its fields (``to_bytes`` is canonical JSON).
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast

from sealed_bid.domain.canonical import canonical_json
from sealed_bid.domain.ids import TenderId, parse_tender_id
from sealed_bid.errors import StatementInvalid

WATCH_FORMAT: Final = "sealed-bid/watch-opening/v1"
RESPONSE_FORMAT: Final = "sealed-bid/opening-response/v1"
MAX_TEXT_CHARS: Final = 2000
MAX_STATEMENT_BYTES: Final = 16 * 1024
"""Room for 2 000 characters of text even if every one is written as a \\uXXXX escape."""
VERDICTS: Final = ("confirm", "object")

Verdict = Literal["confirm", "object"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ALLOWED_CONTROLS = frozenset("\n\t")


@dataclass(frozen=True)
class WatchRequest:
    """``{"format":"sealed-bid/watch-opening/v1","tender_id":...}``"""

    tender_id: TenderId

    def to_bytes(self) -> bytes:
        return canonical_json({"format": WATCH_FORMAT, "tender_id": self.tender_id})

    @classmethod
    def parse(cls, data: bytes) -> WatchRequest:
        raw = _object(data, "watch request", {"format", "tender_id"}, WATCH_FORMAT)
        return cls(tender_id=_tender_id(raw["tender_id"]))


@dataclass(frozen=True)
class ResponseStatement:
    """``{"format":"sealed-bid/opening-response/v1","tender_id":...,"record_sha256":...,
    "verdict":"confirm"|"object","text":...}``; an objection must say why."""

    tender_id: TenderId
    record_sha256: str
    verdict: Verdict
    text: str = ""

    def __post_init__(self) -> None:
        _check_response(self.record_sha256, self.verdict, self.text)

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "format": RESPONSE_FORMAT,
                "tender_id": self.tender_id,
                "record_sha256": self.record_sha256,
                "verdict": self.verdict,
                "text": self.text,
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> ResponseStatement:
        keys = {"format", "tender_id", "record_sha256", "verdict", "text"}
        raw = _object(data, "response statement", keys, RESPONSE_FORMAT)
        if not all(isinstance(raw[k], str) for k in ("record_sha256", "verdict", "text")):
            raise StatementInvalid("record_sha256, verdict and text must be strings")
        return cls(
            tender_id=_tender_id(raw["tender_id"]),
            record_sha256=raw["record_sha256"],
            verdict=cast("Verdict", raw["verdict"]),
            text=raw["text"],
        )


@dataclass(frozen=True)
class ReceivedResponse:
    """A response the platform accepted, as it is published beside the record."""

    response_id: str
    tender_id: str
    bid_id: str
    verdict: str
    text: str
    bidder: str
    """The responding bidder's organisation (or common name), from its certificate."""
    received_at: datetime
    signed_statement: bytes


def new_response_id() -> str:
    return "resp-" + secrets.token_hex(12)


def describe_response(bidder: str, bid_id: str, verdict: str, text: str) -> str:
    """One line for people: ``Alpha Co. confirms`` / ``Alpha Co. objects: <text>``."""
    who = bidder or f"the bidder of {bid_id}"
    if verdict == "confirm":
        line = f"{who} confirms" + (f": {text}" if text else "")
    else:
        line = f"{who} objects: {text}"
    return " ".join(line.split())


def _check_response(record_sha256: str, verdict: str, text: str) -> None:
    if not _HEX64.fullmatch(record_sha256):
        raise StatementInvalid("record_sha256 must be 64 lower-case hex characters")
    if verdict not in VERDICTS:
        raise StatementInvalid(f'verdict must be "confirm" or "object", not {verdict!r}')
    if len(text) > MAX_TEXT_CHARS:
        raise StatementInvalid(f"the text is longer than {MAX_TEXT_CHARS} characters")
    if any(unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS for ch in text):
        raise StatementInvalid("the text may not contain control characters but newline and tab")
    if verdict == "object" and not text.strip():
        raise StatementInvalid("an objection must say why (text)")


def _object(data: bytes, what: str, keys: set[str], expected_format: str) -> dict[str, Any]:
    """Accept any JSON layout (openssl users write it by hand) with exactly ``keys``."""
    if len(data) > MAX_STATEMENT_BYTES:
        raise StatementInvalid(f"the {what} is too large")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise StatementInvalid(f"the {what} is not UTF-8 JSON") from None
    if not isinstance(raw, dict) or set(raw) != keys:
        raise StatementInvalid(
            f"the {what} must be a JSON object with exactly the keys " + ", ".join(sorted(keys))
        )
    if raw["format"] != expected_format:
        raise StatementInvalid(f"unknown statement format {raw['format']!r}")
    return raw


def _tender_id(value: object) -> TenderId:
    if not isinstance(value, str):
        raise StatementInvalid("tender_id must be a string")
    try:
        return parse_tender_id(value)
    except ValueError as exc:
        raise StatementInvalid(str(exc)) from None
