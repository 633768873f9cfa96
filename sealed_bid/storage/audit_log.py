"""The append-only, hash-chained, optionally signed audit log.

Owns sequence numbering (global across tenders, gap-free, starting at 1), the canonical
encoding that is hashed, and verification of the chain. Entries are appended inside the
caller's transaction so an entry commits atomically with the state change it describes.
It must never record a secret, a bidder's identity or plaintext: ``fields`` holds ids,
digests, sizes, counts and codes only; and it never updates or deletes an entry.

Entry hash: ``sha256(b"sealed-bid/audit/v1\\n" + canonical_json({...}))`` over ``seq``,
``at`` (RFC 3339 UTC, microseconds), ``event``, ``tender_id``, ``bid_id``, ``fields``
(the stored canonical JSON text) and ``prev_hash``; entry 1 links to 64 zeros. When a
signing function is given it signs the 32 raw bytes of the entry hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sealed_bid.domain.canonical import canonical_json, format_time
from sealed_bid.errors import SealedBidError, Status
from sealed_bid.storage.models import GENESIS_HASH, AuditEntry, AuditHead

FieldValue = str | int | bool | None
SignFunction = Callable[[bytes], bytes]
VerifyFunction = Callable[[bytes, bytes], None]
"""``verify(message, signature)``: returns on success, raises on a bad signature."""

_DOMAIN = b"sealed-bid/audit/v1\n"
_VERIFY_BATCH = 1000


class AuditChainBroken(SealedBidError):
    """The stored audit log does not verify; ``seq`` is the first entry that fails."""

    code = "AUDIT_CHAIN_BROKEN"
    status = Status.INTERNAL

    def __init__(self, message: str, *, seq: int) -> None:
        super().__init__(f"audit entry {seq}: {message}", seq=seq)
        self.seq = seq


def canonical_fields(fields: Mapping[str, FieldValue]) -> str:
    """The canonical JSON text stored in ``fields_json``; refuses nested or float values
    (floats have no single canonical text)."""
    for key, value in fields.items():
        if not isinstance(key, str):
            raise TypeError(f"audit field names are strings, got {key!r}")
        if value is not None and not isinstance(value, str | int | bool):
            raise TypeError(f"audit field {key!r} must be str, int, bool or None")
    return canonical_json(dict(fields)).decode("utf-8")


def compute_entry_hash(
    *,
    seq: int,
    at: datetime,
    event: str,
    tender_id: str | None,
    bid_id: str | None,
    fields_json: str,
    prev_hash: str,
) -> str:
    """The hex entry hash; a pure function so anyone holding an export can recheck it."""
    encoded = canonical_json(
        {
            "seq": seq,
            "at": format_time(at),
            "event": event,
            "tender_id": tender_id,
            "bid_id": bid_id,
            "fields": fields_json,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(_DOMAIN + encoded).hexdigest()


class AuditLog:
    """Appends to and verifies the log. ``sign`` (e.g. the token's audit key) is optional:
    without it entries are chained but unsigned."""

    def __init__(self, sign: SignFunction | None = None) -> None:
        self._sign = sign

    def append(
        self,
        session: Session,
        at: datetime,
        event: str,
        tender_id: str | None,
        bid_id: str | None,
        fields: Mapping[str, FieldValue],
    ) -> AuditEntry:
        """Append one entry within the session's transaction and flush it.

        Locks the log head until the transaction ends, so appends (and therefore all
        state changes) serialise; take the other row locks of the unit of work first and
        append last to keep transactions short and lock order consistent.
        """
        if at.tzinfo is None:
            raise ValueError("naive datetime refused: audit times are timezone-aware UTC")
        fields_json = canonical_fields(fields)
        head = session.execute(
            select(AuditHead.last_seq, AuditHead.last_hash)
            .where(AuditHead.id == AuditHead.SINGLETON)
            .with_for_update()
        ).one_or_none()
        if head is None:
            raise AuditChainBroken("the audit head is missing; run create_schema", seq=1)
        seq = head.last_seq + 1
        entry_hash = compute_entry_hash(
            seq=seq,
            at=at,
            event=event,
            tender_id=tender_id,
            bid_id=bid_id,
            fields_json=fields_json,
            prev_hash=head.last_hash,
        )
        signature = self._sign(bytes.fromhex(entry_hash)) if self._sign is not None else None
        entry = AuditEntry(
            seq=seq,
            at=at,
            event=event,
            tender_id=tender_id,
            bid_id=bid_id,
            fields_json=fields_json,
            prev_hash=head.last_hash,
            entry_hash=entry_hash,
            signature=signature,
        )
        session.add(entry)
        session.execute(
            update(AuditHead)
            .where(AuditHead.id == AuditHead.SINGLETON)
            .values(last_seq=seq, last_hash=entry_hash)
        )
        session.flush()
        return entry

    def verify_chain(
        self, session: Session, *, verify_signature: VerifyFunction | None = None
    ) -> int:
        """Recompute every entry hash and link, check seqs are 1..n without gaps and that
        the head names the last entry; with ``verify_signature`` also require every entry
        to carry a valid signature. Returns the number of entries checked; raises
        ``AuditChainBroken`` naming the first failing seq."""
        head = session.execute(
            select(AuditHead.last_seq, AuditHead.last_hash).where(
                AuditHead.id == AuditHead.SINGLETON
            )
        ).one_or_none()
        if head is None:
            raise AuditChainBroken("the audit head is missing", seq=1)
        expected_seq = 1
        prev_hash = GENESIS_HASH
        # Entries appended after the head was read are left for the next verification.
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.seq <= head.last_seq)
            .order_by(AuditEntry.seq)
            .execution_options(yield_per=_VERIFY_BATCH)
        )
        for entry in rows:
            self._check_entry(entry, expected_seq, prev_hash, verify_signature)
            prev_hash = entry.entry_hash
            expected_seq += 1
        checked = expected_seq - 1
        if checked != head.last_seq:
            raise AuditChainBroken(
                f"missing: the head says the log has {head.last_seq} entries, found {checked}",
                seq=checked + 1,
            )
        if prev_hash != head.last_hash:
            raise AuditChainBroken("the head hash does not match the last entry", seq=checked)
        return checked

    @staticmethod
    def _check_entry(
        entry: AuditEntry,
        expected_seq: int,
        prev_hash: str,
        verify_signature: VerifyFunction | None,
    ) -> None:
        if entry.seq != expected_seq:
            raise AuditChainBroken("missing (gap in the sequence)", seq=expected_seq)
        if entry.prev_hash != prev_hash:
            raise AuditChainBroken("does not link to the previous entry", seq=entry.seq)
        try:
            json.loads(entry.fields_json)
        except ValueError:
            raise AuditChainBroken("fields are not JSON", seq=entry.seq) from None
        recomputed = compute_entry_hash(
            seq=entry.seq,
            at=entry.at,
            event=entry.event,
            tender_id=entry.tender_id,
            bid_id=entry.bid_id,
            fields_json=entry.fields_json,
            prev_hash=entry.prev_hash,
        )
        if recomputed != entry.entry_hash:
            raise AuditChainBroken("content does not match its hash", seq=entry.seq)
        if verify_signature is not None:
            if entry.signature is None:
                raise AuditChainBroken("is not signed", seq=entry.seq)
            try:
                verify_signature(bytes.fromhex(entry.entry_hash), entry.signature)
            except Exception as exc:  # any failure of the injected verifier is a bad signature
                raise AuditChainBroken(
                    f"signature does not verify ({type(exc).__name__})", seq=entry.seq
                ) from exc

    @staticmethod
    def entries(
        session: Session, *, tender_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditEntry]:
        """Entries in seq order, optionally of one tender, for export and inspection."""
        query = select(AuditEntry).where(AuditEntry.seq > after_seq)
        if tender_id is not None:
            query = query.where(AuditEntry.tender_id == tender_id)
        return list(session.scalars(query.order_by(AuditEntry.seq).limit(limit)))
