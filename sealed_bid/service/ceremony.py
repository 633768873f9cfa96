"""The officers' part of a quorum opening: fetching one's encrypted share and presenting
it decrypted. The caller is identified by its mTLS client certificate (its SHA-256), which
the API layer takes from the TLS session; nothing here trusts a name sent in a request.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from sealed_bid.domain.ids import TenderId
from sealed_bid.errors import InvalidTender, OfficerNotNamed
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.opening_events import SharePresentedEvent
from sealed_bid.service.share_desk import OfficerRow
from sealed_bid.storage.custody_models import TenderCustody, TenderOfficer
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.repository import Repository

log = logging.getLogger("sealed_bid.ceremony")


@dataclass(frozen=True)
class OfficerShareView:
    tender_id: str
    index: int
    threshold: int
    total: int
    sealed_share: bytes


@dataclass(frozen=True)
class PresentedCount:
    presented: int
    threshold: int


class CeremonyService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def officer_share(self, tender_id: str, caller_certificate_der: bytes) -> OfficerShareView:
        digest = hashlib.sha256(caller_certificate_der).hexdigest()
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            Repository(session).get_tender(TenderId(tender_id))
            custody = _quorum_custody(session, tender_id)
            officers = _officers(session, tender_id)
            officer = next((o for o in officers if o.certificate_sha256 == digest), None)
            if officer is None:
                raise OfficerNotNamed(
                    f"the client certificate is not one of tender {tender_id}'s opening officers"
                )
            return OfficerShareView(
                tender_id=tender_id,
                index=officer.share_index,
                threshold=custody.threshold,
                total=len(officers),
                sealed_share=officer.sealed_share,
            )

    def present_share(
        self, tender_id: str, caller_certificate_der: bytes, share: bytes
    ) -> PresentedCount:
        ctx = self._ctx
        tid = TenderId(tender_id)
        digest = hashlib.sha256(caller_certificate_der).hexdigest()
        with unit_of_work(ctx.engine, read_only=True) as session:
            tender = Repository(session).get_tender(tid)
            custody = _quorum_custody(session, tender_id)
            rows = [
                OfficerRow(o.share_index, o.subject, o.certificate_sha256, o.commitment)
                for o in _officers(session, tender_id)
            ]
            opening_time = tender.opening_time
        now = ctx.clock.now()
        presented = ctx.shares.present(
            tender_id=tid,
            opening_time=opening_time,
            now=now,
            threshold=custody.threshold,
            officers=rows,
            caller_certificate_sha256=digest,
            share=share,
        )
        officer = next(o for o in rows if o.certificate_sha256 == digest)
        with unit_of_work(ctx.engine) as session:
            ctx.audit.append(
                session,
                at=now,
                event="opening.share_presented",
                tender_id=tid,
                bid_id=None,
                fields={
                    "officer": officer.subject,
                    "share_index": officer.share_index,
                    "presented": presented,
                    "threshold": custody.threshold,
                },
            )
        ctx.events.publish(
            tid,
            now,
            SharePresentedEvent(officer.share_index, officer.subject, presented, custody.threshold),
        )
        log.info(
            "opening.share_presented tender=%s index=%d presented=%d/%d",
            tid,
            officer.share_index,
            presented,
            custody.threshold,
        )
        return PresentedCount(presented=presented, threshold=custody.threshold)


def _quorum_custody(session: Session, tender_id: str) -> TenderCustody:
    custody = session.get(TenderCustody, tender_id)
    if custody is None or custody.policy != "quorum":
        raise InvalidTender(f"tender {tender_id} is not a quorum tender; it has no officers")
    return custody


def _officers(session: Session, tender_id: str) -> list[TenderOfficer]:
    return list(
        session.scalars(
            select(TenderOfficer)
            .where(TenderOfficer.tender_id == tender_id)
            .order_by(TenderOfficer.share_index)
        )
    )
