"""Typed identifiers, so that a hex digest cannot be passed where an id is meant."""

from __future__ import annotations

import re
import secrets
from typing import NewType

TenderId = NewType("TenderId", str)
BidId = NewType("BidId", str)
EnvelopeDigest = NewType("EnvelopeDigest", str)
"""Lower-case hex SHA-256 of the envelope bytes."""
BidderTag = NewType("BidderTag", str)
"""Keyed hash (HMAC on the token) of a bidder's identity within one tender."""

_TENDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def parse_tender_id(value: str) -> TenderId:
    """A tender id: 1..64 of letters, digits, '.', '_', '-', not starting with punctuation."""
    if not _TENDER_ID.fullmatch(value):
        raise ValueError(f"not a valid tender id: {value!r}")
    return TenderId(value)


def parse_envelope_digest(value: str) -> EnvelopeDigest:
    if not _HEX64.fullmatch(value):
        raise ValueError("an envelope digest is 64 lower-case hex characters")
    return EnvelopeDigest(value)


def new_bid_id() -> BidId:
    return BidId("bid-" + secrets.token_hex(12))


def new_withdrawal_id() -> str:
    return "wd-" + secrets.token_hex(12)
