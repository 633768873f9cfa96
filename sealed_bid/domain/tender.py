"""Tender schedule rules and the algorithms a bid must use. Pure: no I/O, no clock of its own.

Rules (each has a test): the deadline is in the future at creation; the opening time is at
or after the deadline; the envelope size limit is positive and under the hard limit; at
least one bidder CA is accepted. A bad schedule is refused with INVALID_SCHEDULE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sealed_bid.config import Limits
from sealed_bid.domain.ids import TenderId, parse_tender_id
from sealed_bid.errors import InvalidSchedule, InvalidTender

ENVELOPE_CONTENT_TYPES = ("authEnvelopedData", "envelopedData")
CONTENT_ENCRYPTION = ("aes256_gcm", "aes256_cbc")
KEY_TRANSPORT = "rsaes_oaep"
DIGEST = "sha256"
SIGNATURE_ALGORITHMS = ("sha256_rsa", "sha256_rsa_pss", "sha256_ecdsa")
MAX_TITLE_CHARS = 300
RevocationPolicy = Literal["require", "soft-fail"]
REVOCATION_POLICIES: tuple[RevocationPolicy, ...] = ("require", "soft-fail")
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")


@dataclass(frozen=True)
class BidAlgorithms:
    """Exactly what an envelope for a tender may use; everything else is refused."""

    oaep_hashes: tuple[str, ...]
    content_encryption: tuple[str, ...] = CONTENT_ENCRYPTION
    envelope_content_types: tuple[str, ...] = ENVELOPE_CONTENT_TYPES
    key_transport: str = KEY_TRANSPORT
    digest: str = DIGEST
    signature_algorithms: tuple[str, ...] = SIGNATURE_ALGORITHMS


@dataclass(frozen=True)
class TenderSpec:
    """A validated request to create a tender."""

    tender_id: TenderId
    title: str
    deadline: datetime
    opening_time: datetime
    max_envelope_bytes: int
    accepted_ca_ids: tuple[str, ...]
    bid_count_visible: bool
    revocation_policy: RevocationPolicy = "require"
    certificate_policies: tuple[str, ...] = ()
    extended_key_usages: tuple[str, ...] = ()


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidSchedule(f"{name} must carry a time zone", field=name)
    return value


def validate_tender_spec(
    *,
    tender_id: str,
    title: str,
    deadline: datetime,
    opening_time: datetime,
    max_envelope_bytes: int,
    accepted_ca_ids: tuple[str, ...],
    bid_count_visible: bool,
    known_ca_ids: frozenset[str],
    revocation_policy: str = "",
    certificate_policies: tuple[str, ...] = (),
    extended_key_usages: tuple[str, ...] = (),
    now: datetime,
    limits: Limits,
) -> TenderSpec:
    """Check every creation rule and return the spec, or raise with a stable code."""
    try:
        tid = parse_tender_id(tender_id)
    except ValueError as exc:
        raise InvalidTender(str(exc), field="tender_id") from None
    if not title.strip() or len(title) > MAX_TITLE_CHARS:
        raise InvalidTender(f"title must be 1..{MAX_TITLE_CHARS} characters", field="title")
    _aware("deadline", deadline)
    _aware("opening_time", opening_time)
    earliest = now + timedelta(seconds=limits.min_schedule_lead_seconds)
    if deadline <= earliest:
        raise InvalidSchedule(
            "the submission deadline must be in the future", field="deadline", now=now
        )
    if opening_time < deadline:
        raise InvalidSchedule(
            "the opening time must be at or after the submission deadline", field="opening_time"
        )
    size = max_envelope_bytes or limits.default_max_envelope_bytes
    if size <= 0 or size > limits.hard_max_envelope_bytes:
        raise InvalidTender(
            f"max_envelope_bytes must be 1..{limits.hard_max_envelope_bytes}",
            field="max_envelope_bytes",
        )
    if not accepted_ca_ids:
        raise InvalidTender("name at least one accepted bidder CA", field="accepted_ca_ids")
    unknown = sorted(set(accepted_ca_ids) - known_ca_ids)
    if unknown:
        raise InvalidTender(f"unknown bidder CA ids: {', '.join(unknown)}", field="accepted_ca_ids")
    policy = revocation_policy or "require"
    if policy not in REVOCATION_POLICIES:
        raise InvalidTender(
            "revocation_policy must be 'require' or 'soft-fail'", field="revocation_policy"
        )
    for name, oids in (
        ("certificate_policies", certificate_policies),
        ("extended_key_usages", extended_key_usages),
    ):
        bad_oids = [oid for oid in oids if not _OID.fullmatch(oid)]
        if bad_oids:
            raise InvalidTender(f"{name} must be dotted OIDs: {', '.join(bad_oids)}", field=name)
    return TenderSpec(
        tender_id=tid,
        title=title.strip(),
        deadline=deadline,
        opening_time=opening_time,
        max_envelope_bytes=size,
        accepted_ca_ids=tuple(dict.fromkeys(accepted_ca_ids)),
        bid_count_visible=bid_count_visible,
        revocation_policy="soft-fail" if policy == "soft-fail" else "require",
        certificate_policies=tuple(dict.fromkeys(certificate_policies)),
        extended_key_usages=tuple(dict.fromkeys(extended_key_usages)),
    )


MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Reschedule:
    deadline: datetime
    opening_time: datetime
    reason: str


def validate_reschedule(
    *,
    current_deadline: datetime,
    deadline: datetime,
    opening_time: datetime,
    reason: str,
    now: datetime,
    key_valid_until: datetime,
    limits: Limits,
) -> Reschedule:
    """A schedule change never reopens closed submissions, never puts the opening before
    the deadline or before now, and never outlives the tender certificate."""
    _aware("deadline", deadline)
    _aware("opening_time", opening_time)
    if not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise InvalidTender(f"a reason of 1..{MAX_REASON_CHARS} characters is required")
    if now > current_deadline:
        if deadline != current_deadline:
            raise InvalidSchedule(
                "the submission deadline has passed; it can no longer move", field="deadline"
            )
    elif deadline <= now + timedelta(seconds=limits.min_schedule_lead_seconds):
        raise InvalidSchedule("the new deadline must be in the future", field="deadline")
    if opening_time < deadline or opening_time <= now:
        raise InvalidSchedule(
            "the opening time must be at or after the deadline and in the future",
            field="opening_time",
        )
    if opening_time > key_valid_until:
        raise InvalidSchedule(
            f"the tender certificate is valid until {key_valid_until.isoformat()};"
            " the opening cannot move beyond it",
            field="opening_time",
        )
    return Reschedule(deadline=deadline, opening_time=opening_time, reason=reason.strip())
