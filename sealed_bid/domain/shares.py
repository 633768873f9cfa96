"""A share of a quorum tender's token PIN as a wire and disk object, bound to its tender.

Owns the share record's canonical JSON (what is sealed to an officer and presented back),
its commitment (the digest the service stores at creation and checks on presentation),
splitting a fresh PIN K-of-N and combining presented records back into it.

It must never put a share value or a PIN in a message, a log line or a ``repr``: errors
name the field that is wrong, never its content. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from sealed_bid.crypto.shamir import MAX_SHARES, MIN_THRESHOLD, Share, combine_shares, split_secret
from sealed_bid.domain.canonical import canonical_json
from sealed_bid.domain.ids import parse_tender_id
from sealed_bid.errors import QuorumNotMet, ShareInvalid

SHARE_FORMAT = "sealed-bid/pin-share/v1"
COMMITMENT_DOMAIN = b"sealed-bid/pin-share-commitment/v1\0"
MAX_SHARE_VALUE_BYTES = 255
"""SoftHSM2 PINs are at most 255 characters; a share is as long as its secret."""
MAX_SHARE_RECORD_BYTES = 4096
PIN_BYTES = 32

_KEYS = frozenset({"format", "tender_id", "index", "threshold", "total", "value"})
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_COMMITMENT = re.compile(r"[0-9a-f]{64}")


def new_pin() -> str:
    """A fresh token user PIN: 64 lower-case hex characters (32 random bytes)."""
    return secrets.token_hex(PIN_BYTES)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ShareRecord:
    """Share ``index`` of ``total`` (``threshold`` of which recover the PIN) of one tender."""

    tender_id: str
    index: int
    threshold: int
    total: int
    value: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tender_id, str):
            raise ShareInvalid("the share's tender_id is not a string")
        try:
            parse_tender_id(self.tender_id)
        except ValueError:
            raise ShareInvalid("the share's tender_id is not a valid tender id") from None
        if not all(_is_int(v) for v in (self.index, self.threshold, self.total)):
            raise ShareInvalid("the share's index, threshold and total must be integers")
        if not MIN_THRESHOLD <= self.threshold <= self.total <= MAX_SHARES:
            raise ShareInvalid(
                f"the share needs {MIN_THRESHOLD} <= threshold <= total <= {MAX_SHARES}"
            )
        if not 1 <= self.index <= self.total:
            raise ShareInvalid("the share's index is not in 1..total")
        if not isinstance(self.value, bytes) or not 1 <= len(self.value) <= MAX_SHARE_VALUE_BYTES:
            raise ShareInvalid(f"the share's value must be 1..{MAX_SHARE_VALUE_BYTES} bytes")

    def to_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, compact, the value in lower-case hex."""
        return canonical_json(
            {
                "format": SHARE_FORMAT,
                "tender_id": self.tender_id,
                "index": self.index,
                "threshold": self.threshold,
                "total": self.total,
                "value": self.value.hex(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ShareRecord:
        """Parse exactly what ``to_bytes`` writes (canonical form only, so one share has
        one encoding). Raises ``ShareInvalid``; the message never contains the value."""
        if len(data) > MAX_SHARE_RECORD_BYTES:
            raise ShareInvalid("the share is too large")
        try:
            raw = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ShareInvalid("the share is not UTF-8 JSON") from None
        if not isinstance(raw, dict) or set(raw) != _KEYS:
            raise ShareInvalid(
                "the share must be a JSON object with exactly the keys " + ", ".join(sorted(_KEYS))
            )
        if raw["format"] != SHARE_FORMAT:
            raise ShareInvalid(f"unknown share format; expected {SHARE_FORMAT!r}")
        value = raw["value"]
        if not isinstance(value, str) or not _HEX.fullmatch(value):
            raise ShareInvalid("the share's value is not lower-case hex")
        record = cls(
            tender_id=raw["tender_id"],
            index=raw["index"],
            threshold=raw["threshold"],
            total=raw["total"],
            value=bytes.fromhex(value),
        )
        if record.to_bytes() != data:
            raise ShareInvalid("the share is not in canonical form (sorted keys, compact JSON)")
        return record

    def commitment(self) -> str:
        """Hex SHA-256 over the domain tag, tender id, index and value (NUL-separated)."""
        digest = hashlib.sha256()
        digest.update(COMMITMENT_DOMAIN)
        digest.update(self.tender_id.encode("ascii") + b"\0")
        digest.update(str(self.index).encode("ascii") + b"\0")
        digest.update(self.value)
        return digest.hexdigest()

    def check_commitment(self, expected: str) -> None:
        """Raise ``ShareInvalid`` unless this share matches the commitment stored for it."""
        if not _COMMITMENT.fullmatch(expected):
            raise ValueError("a share commitment is 64 lower-case hex characters")
        if not hmac.compare_digest(self.commitment(), expected):
            raise ShareInvalid(
                f"share {self.index} does not match the share issued for this tender",
                index=self.index,
            )


def split_pin(tender_id: str, pin: bytes, threshold: int, total: int) -> list[ShareRecord]:
    """Split ``pin`` into ``total`` records (indices 1..total), ``threshold`` of which
    recover it. Raises ``ValueError`` for parameters no tender could have."""
    if not 1 <= len(pin) <= MAX_SHARE_VALUE_BYTES:
        raise ValueError(f"a PIN to split is 1..{MAX_SHARE_VALUE_BYTES} bytes")
    if not MIN_THRESHOLD <= threshold <= total <= MAX_SHARES:
        raise ValueError(
            f"need {MIN_THRESHOLD} <= threshold <= total <= {MAX_SHARES};"
            f" got threshold {threshold} of {total}"
        )
    parse_tender_id(tender_id)
    return [
        ShareRecord(tender_id, share.index, threshold, total, share.value)
        for share in split_secret(pin, threshold, total)
    ]


def combine_pin(records: Sequence[ShareRecord]) -> bytes:
    """The PIN from at least ``threshold`` records of one split. Raises ``ShareInvalid`` if
    they disagree (tender, threshold, total, length) or repeat an index, ``QuorumNotMet``
    if there are too few. A wrong value is not detected here: check commitments first."""
    if not records:
        raise QuorumNotMet("no shares have been presented", presented=0)
    first = records[0]
    for record in records[1:]:
        if record.tender_id != first.tender_id:
            raise ShareInvalid("the shares belong to different tenders")
        if (record.threshold, record.total) != (first.threshold, first.total):
            raise ShareInvalid("the shares disagree on threshold or total")
        if len(record.value) != len(first.value):
            raise ShareInvalid("the shares differ in length")
    indices = [record.index for record in records]
    if len(set(indices)) != len(indices):
        raise ShareInvalid("the same share was presented twice")
    if len(records) < first.threshold:
        raise QuorumNotMet(
            f"{len(records)} of the {first.threshold} shares needed have been presented",
            presented=len(records),
            threshold=first.threshold,
        )
    return combine_shares([Share(record.index, record.value) for record in records])
