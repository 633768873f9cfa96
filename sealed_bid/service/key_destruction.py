"""Destroying a tender's key once its record is final: after the opening, and only once
the bidders' response window has closed.

A ``scheduled`` tender's key is destroyed on the platform token; a ``quorum`` tender's on
its own token, which needs the threshold of officers' shares presented again (the PIN is
rebuilt in memory for the one login, as at the opening). The destruction is recorded
(``TenderCustody.key_destroyed_at`` and a ``key.destroyed`` audit entry, one transaction)
after the token has destroyed the key; a call that failed in between is completed by the
next one. It must never destroy a key before the window closes, and never use a key.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sealed_bid.domain.custody import UnlockPolicy
from sealed_bid.domain.ids import TenderId
from sealed_bid.errors import QuorumNotMet, ResponseWindowOpen
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.custody import load_unlock_policy, unlock_quorum_key
from sealed_bid.service.responses import response_window_closes
from sealed_bid.service.views import RecordView
from sealed_bid.storage.custody_models import TenderCustody
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import OpeningRecord as StoredRecord
from sealed_bid.storage.repository import Repository

log = logging.getLogger("sealed_bid.key_destruction")


@dataclass(frozen=True)
class _Facts:
    record: RecordView
    unlock: UnlockPolicy
    closes_at: datetime
    destroyed_at: datetime | None


class KeyDestructionService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def destroy(self, tender_id: str, operator: str) -> RecordView:
        """Destroy the tender key and return the record. Idempotent: once destroyed, the
        record comes back and nothing else happens."""
        tid = TenderId(tender_id)
        with self._locks[tid]:
            return self._destroy(tid, operator)

    def _destroy(self, tender_id: TenderId, operator: str) -> RecordView:
        ctx = self._ctx
        facts = self._facts(tender_id)
        if facts.destroyed_at is not None:
            return facts.record
        now = ctx.clock.now()
        if now < facts.closes_at:
            raise ResponseWindowOpen(
                f"bidders may respond to tender {tender_id}'s record until"
                f" {facts.closes_at.isoformat()}; the key is kept until then",
                tender_id=tender_id,
            )
        unlock = facts.unlock
        officers: tuple[str, ...] = ()
        if unlock.kind == "quorum":
            shares = ctx.shares.presented(tender_id)
            if len(shares) < unlock.threshold:
                raise QuorumNotMet(
                    f"{len(shares)} of the {unlock.threshold} officers' shares needed to destroy"
                    " the key have been presented",
                    tender_id=tender_id,
                )
            with unlock_quorum_key(ctx.quorum_tokens, tender_id, unlock.threshold, shares) as key:
                found = not key.key_destroyed()
                key.destroy_key()
            ctx.shares.forget(tender_id)
            officers = tuple(share.subject for share in shares)
        else:
            found = ctx.token.tender_key_exists(tender_id)
            if found:
                ctx.token.destroy_tender_key(tender_id)
        with unit_of_work(ctx.engine) as session:
            now = ctx.clock.now()
            custody = session.get(TenderCustody, tender_id)
            if custody is None:  # a tender from before custody rows existed
                custody = TenderCustody(
                    tender_id=tender_id, policy=unlock.kind, threshold=0, token_label=None
                )
                session.add(custody)
            custody.key_destroyed_at = now
            ctx.audit.append(
                session,
                at=now,
                event="key.destroyed",
                tender_id=tender_id,
                bid_id=None,
                fields={
                    "operator": operator,
                    "policy": unlock.kind,
                    "officers": ",".join(officers),
                    "key_found": found,
                },
            )
        log.info("key.destroyed tender=%s policy=%s", tender_id, unlock.kind)
        return facts.record

    def _facts(self, tender_id: TenderId) -> _Facts:
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            repo = Repository(session)
            repo.get_tender(tender_id)
            stored = repo.get_record(tender_id)
            custody = session.get(TenderCustody, tender_id)
            return _Facts(
                record=_view(stored),
                unlock=load_unlock_policy(session, tender_id),
                closes_at=response_window_closes(session, stored),
                destroyed_at=None if custody is None else custody.key_destroyed_at,
            )


def _view(stored: StoredRecord) -> RecordView:
    return RecordView(
        stored.tender_id, stored.record_json, stored.record_sha256, stored.record_pdf or b""
    )
