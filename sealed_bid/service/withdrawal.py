"""Withdrawing a bid before the deadline, by a statement signed by the same bidder.

The statement's signingTime must be newer than everything the bidder sent before, so a
withdrawal cannot be replayed and an old envelope cannot come back after it. The signed
statement names its signer, so it is stored only sealed to the tender certificate
(``sealing``, ADR 0016); the opening does not unseal it (the withdrawn bid is not opened).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sealed_bid.crypto.signed_data import verify_attached
from sealed_bid.domain.ids import BidderTag, BidId, EnvelopeDigest, new_withdrawal_id
from sealed_bid.domain.receipt import ReceiptContent
from sealed_bid.domain.withdrawal import MAX_STATEMENT_BYTES, WithdrawalStatement
from sealed_bid.errors import (
    BidLate,
    BidNotFound,
    BidReplayed,
    BidWithdrawn,
    NotBidOwner,
    StatementInvalid,
)
from sealed_bid.service import receipt_stamps, sealing, signers
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.receipts import sign_receipt
from sealed_bid.service.submission import last_signing_time
from sealed_bid.service.views import ReceiptView
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import Bid, BidStatus, Tender, TenderState, Withdrawal
from sealed_bid.storage.repository import Repository

log = logging.getLogger("sealed_bid.withdrawal")


class WithdrawalService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def withdraw(self, signed_statement: bytes) -> ReceiptView:
        ctx = self._ctx
        if not signed_statement or len(signed_statement) > ctx.settings.limits.max_signature_bytes:
            raise StatementInvalid("send the signed statement (DER CMS SignedData, attached)")
        facts, content = verify_attached(signed_statement)
        if len(content) > MAX_STATEMENT_BYTES:
            raise StatementInvalid("the withdrawal statement is too large")
        statement = WithdrawalStatement.parse(content)
        signers.require_signature_algorithm(facts)
        now = ctx.clock.now()
        with unit_of_work(ctx.engine, read_only=True) as session:
            tender = Repository(session).get_tender(statement.tender_id)
            accepted = list(tender.accepted_ca_ids)
            recipient = sealing.SealRecipient.of(tender)
            policy = signers.policy_for(
                tender.revocation_policy, tender.policy_oids or (), tender.eku_oids or ()
            )
        signing_time = signers.require_signing_time(
            facts, now, ctx.settings.limits.signing_time_skew_seconds
        )
        signers.validate(ctx, facts, accepted, now, policy)
        tag = ctx.bidder_tag(statement.tender_id, signers.identify(facts))
        # Refuse before the statement is stored (blob writes stay outside the unit of work,
        # ADR 0008); the same checks run again below under the tender and slot locks.
        with unit_of_work(ctx.engine, read_only=True) as session:
            repo = Repository(session)
            _check(repo, repo.get_tender(statement.tender_id), statement, tag, ctx.clock.now())
            _require_newer(signing_time, last_signing_time(repo, statement.tender_id, tag))
        sealed_statement = sealing.seal(
            ctx.blobs,
            recipient,
            sealing.IdentityBundle(kind="withdrawal", signature=signed_statement),
        )
        with unit_of_work(ctx.engine) as session:
            repo = Repository(session)
            now = ctx.clock.now()
            bid = _check(repo, repo.lock_tender(statement.tender_id), statement, tag, now)
            slot = repo.lock_or_create_slot(statement.tender_id, tag)
            _require_newer(signing_time, slot.last_signing_time)
            bid.status = BidStatus.WITHDRAWN
            entry = ctx.audit.append(
                session,
                at=now,
                event="bid.withdrawn",
                tender_id=statement.tender_id,
                bid_id=bid.id,
                fields={"sealed_statement_blob": sealed_statement},
            )
            content_r = ReceiptContent(
                kind="withdrawal",
                tender_id=statement.tender_id,
                bid_id=BidId(bid.id),
                envelope_sha256=EnvelopeDigest(bid.envelope_sha256),
                size=bid.size,
                received_at=now,
                log_sequence=entry.seq,
            )
            receipt_der = sign_receipt(content_r, ctx.receipt_signer)
            withdrawal_id = new_withdrawal_id()
            repo.add_withdrawal(
                Withdrawal(
                    id=withdrawal_id,
                    tender_id=statement.tender_id,
                    bid_id=bid.id,
                    bidder_tag=tag,
                    sealed_statement_blob=sealed_statement,
                    signing_time=signing_time,
                    received_at=now,
                    log_sequence=entry.seq,
                    receipt_der=receipt_der,
                )
            )
            slot.current_bid_id = None
            slot.last_signing_time = signing_time
        log.info("bid.withdrawn tender=%s bid=%s", statement.tender_id, statement.bid_id)
        # Stored; the TSA is asked now, outside every lock.
        receipt_der = receipt_stamps.stamped(
            ctx, "withdrawal", withdrawal_id, statement.tender_id, receipt_der
        )
        return ReceiptView(receipt_der, content_r)


def _check(
    repo: Repository, tender: Tender, statement: WithdrawalStatement, tag: BidderTag, now: datetime
) -> Bid:
    """The bid the statement may withdraw, or the refusal."""
    if now > tender.deadline or tender.state != TenderState.ACCEPTING:
        raise BidLate("the submission deadline has passed; bids can no longer change")
    bid = repo.get_bid(statement.bid_id)
    if bid.tender_id != statement.tender_id:
        raise BidNotFound(f"no bid {statement.bid_id!r} in this tender")
    if bid.bidder_tag != tag:
        raise NotBidOwner("only the bidder who submitted a bid may withdraw it")
    if bid.status == BidStatus.WITHDRAWN:
        raise BidWithdrawn("this bid is withdrawn already")
    if bid.status != BidStatus.CURRENT:
        raise BidReplayed("this bid was replaced; withdraw the current one")
    return bid


def _require_newer(signing_time: datetime, last: datetime | None) -> None:
    if last is not None and signing_time <= last:
        raise BidReplayed("this statement is not newer than the bidder's last signed submission")
