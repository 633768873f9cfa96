"""Bidders at the opening: watching their own tender's opening, and confirming or
objecting to its record within the tender's response window.

Bidders have no client certificate on the public port; each request is a statement they
signed (CMS SignedData, attached) with the certificate they bid with. The signer is
checked as at submission (signingTime, chain, revocation, the tender's policy) and then
identified: for watching, by its bidder tag (``ServiceContext.bidder_tag``) against the
tender's bidder slots; for a response, against the bids of the opening record.

It must never tell a signer who has no bid anything about the tender's other bids: the
refusal (NOT_A_BIDDER) reads the same whether or not anybody bid. It must never log a
statement's contents beyond ids, and it never changes a record: responses are stored
beside it, each with its audit entry in the same transaction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_bridge.identity import BidderIdentity
from sealed_bid.crypto.signed_data import SignatureFacts, verify_attached
from sealed_bid.domain.ids import TenderId
from sealed_bid.domain.opening_response import (
    MAX_STATEMENT_BYTES,
    ReceivedResponse,
    ResponseStatement,
    WatchRequest,
    new_response_id,
)
from sealed_bid.errors import (
    NotABidder,
    RecordMismatch,
    ResponseWindowClosed,
    StatementInvalid,
)
from sealed_bid.service import signers
from sealed_bid.service.context import ServiceContext, sha256_hex
from sealed_bid.service.custody import load_response_window
from sealed_bid.service.opening_events import ResponseEvent
from sealed_bid.storage.custody_models import TenderCustody
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import OpeningRecord as StoredRecord
from sealed_bid.storage.repository import Repository
from sealed_bid.storage.response_models import RecordResponse

log = logging.getLogger("sealed_bid.responses")


@dataclass(frozen=True)
class RecordExtras:
    """What travels beside a record (which stays as signed): the bidders' responses in
    arrival order, when the window for them closes (None: no record yet) and when the
    tender key was destroyed (None: not yet)."""

    responses: tuple[ReceivedResponse, ...] = ()
    responses_close_at: datetime | None = None
    key_destroyed_at: datetime | None = None


class BidderOpeningService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def authorise_watch(self, signed_request: bytes) -> str:
        """The tender id a bidder may watch, from its signed watch request; NOT_A_BIDDER
        unless the signer has (or had) a bid in that tender."""
        ctx = self._ctx
        facts, content = _verified(ctx, signed_request, "watch request")
        request = WatchRequest.parse(content)
        identity = self._check_signer(facts, request.tender_id)
        tag = ctx.bidder_tag(request.tender_id, identity)
        with unit_of_work(ctx.engine, read_only=True) as session:
            slot = Repository(session).get_slot(request.tender_id, tag)
        if slot is None:
            # One message for every signer without a bid: it must not depend on other bids.
            raise NotABidder(
                f"this certificate has no bid in tender {request.tender_id}",
                tender_id=request.tender_id,
            )
        return request.tender_id

    def respond(self, signed_statement: bytes) -> ReceivedResponse:
        """Store a bidder's confirmation of, or objection to, the tender's record. The same
        signed statement sent again returns the response stored the first time."""
        ctx = self._ctx
        facts, content = _verified(ctx, signed_statement, "response statement")
        statement = ResponseStatement.parse(content)
        tender_id = statement.tender_id
        identity = self._check_signer(facts, tender_id)
        tag = ctx.bidder_tag(tender_id, identity)
        statement_sha256 = sha256_hex(signed_statement)
        with unit_of_work(ctx.engine) as session:
            repo = Repository(session)
            repo.lock_tender(tender_id)
            record = repo.get_record(tender_id)
            if statement.record_sha256 != record.record_sha256:
                raise RecordMismatch(
                    f"record_sha256 is not the digest of tender {tender_id}'s opening record;"
                    " fetch the record again and sign its record_sha256",
                    tender_id=tender_id,
                )
            now = ctx.clock.now()
            closes = response_window_closes(session, record)
            if now >= closes:
                raise ResponseWindowClosed(
                    f"responses to tender {tender_id}'s record closed at {closes.isoformat()}",
                    tender_id=tender_id,
                )
            bid_id = _responding_bid(repo, record, identity, tag)
            if bid_id is None:
                raise NotABidder(
                    f"this certificate has no opened bid in tender {tender_id}'s record",
                    tender_id=tender_id,
                )
            earlier = session.scalars(
                select(RecordResponse).where(
                    RecordResponse.tender_id == tender_id,
                    RecordResponse.statement_sha256 == statement_sha256,
                )
            ).one_or_none()
            if earlier is not None:
                return _received(earlier)
            entry = ctx.audit.append(
                session,
                at=now,
                event="record.response",
                tender_id=tender_id,
                bid_id=bid_id,
                fields={"verdict": statement.verdict, "statement_sha256": statement_sha256},
            )
            row = RecordResponse(
                id=new_response_id(),
                tender_id=tender_id,
                bid_id=bid_id,
                verdict=statement.verdict,
                text=statement.text,
                bidder=identity.organisation or identity.common_name or "",
                signed_statement=signed_statement,
                statement_sha256=statement_sha256,
                received_at=now,
                log_sequence=entry.seq,
            )
            session.add(row)
            response = _received(row)
        log.info(
            "record.response tender=%s bid=%s response=%s", tender_id, bid_id, response.response_id
        )
        ctx.events.publish(tender_id, now, ResponseEvent(response))
        return response

    def record_extras(self, tender_id: str) -> RecordExtras:
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            record = session.get(StoredRecord, tender_id)
            custody = session.get(TenderCustody, tender_id)
            rows = session.scalars(
                select(RecordResponse)
                .where(RecordResponse.tender_id == tender_id)
                .order_by(RecordResponse.log_sequence)
            ).all()
            closes = None if record is None else response_window_closes(session, record)
            return RecordExtras(
                responses=tuple(_received(r) for r in rows),
                responses_close_at=closes,
                key_destroyed_at=None if custody is None else custody.key_destroyed_at,
            )

    def _check_signer(self, facts: SignatureFacts, tender_id: TenderId) -> BidderIdentity:
        """The signer, checked as a submission's would be: the signature algorithm, a
        fresh signingTime, and the certificate under the tender's CAs and policy."""
        ctx = self._ctx
        signers.require_signature_algorithm(facts)
        now = ctx.clock.now()
        with unit_of_work(ctx.engine, read_only=True) as session:
            tender = Repository(session).get_tender(tender_id)
            accepted = list(tender.accepted_ca_ids)
            policy = signers.policy_for(
                tender.revocation_policy, tender.policy_oids or (), tender.eku_oids or ()
            )
        signers.require_signing_time(facts, now, ctx.settings.limits.signing_time_skew_seconds)
        signers.validate(ctx, facts, accepted, now, policy)
        return signers.identify(facts)


def response_window_closes(session: Session, record: StoredRecord) -> datetime:
    """When bidders can no longer respond to ``record`` (and its tender key may go)."""
    return record.created_at + timedelta(seconds=load_response_window(session, record.tender_id))


def _verified(ctx: ServiceContext, signed: bytes, what: str) -> tuple[SignatureFacts, bytes]:
    if not signed or len(signed) > ctx.settings.limits.max_signature_bytes:
        raise StatementInvalid(f"send the signed {what} (DER CMS SignedData, attached)")
    facts, content = verify_attached(signed)
    if len(content) > MAX_STATEMENT_BYTES:
        raise StatementInvalid(f"the {what} is too large")
    return facts, content


def _responding_bid(
    repo: Repository, record: StoredRecord, identity: BidderIdentity, tag: str
) -> str | None:
    """The record row (an opened bid, or one that failed to open) of the signer: by its
    certificate, else by the same bidder identity (a renewed certificate, or a row the
    opening could not attribute). Replaced and withdrawn bids are not rows."""
    rows = json.loads(record.record_json).get("bids") or []
    fingerprint = identity.certificate_sha256.hex()
    for row in rows:
        if (row.get("bidder") or {}).get("certificate_sha256") == fingerprint:
            return str(row["bid_id"])
    for row in rows:
        if repo.get_bid(row["bid_id"]).bidder_tag == tag:
            return str(row["bid_id"])
    return None


def _received(row: RecordResponse) -> ReceivedResponse:
    return ReceivedResponse(
        response_id=row.id,
        tender_id=row.tender_id,
        bid_id=row.bid_id,
        verdict=row.verdict,
        text=row.text,
        bidder=row.bidder,
        received_at=row.received_at,
        signed_statement=row.signed_statement,
    )
