"""Bidder participation: a bidder releases the content key of its own bid, recovered on its
own machine from the RecipientInfo sealed to its own certificate, so that the opening can
decrypt that bid without the tender key (docs/opening-ceremony.md, "Bidder
participation"). The tender key stays the fallback.

A release is a statement the bidder signed (CMS SignedData, attached) with the
certificate it bid with. It is accepted only from the tender's opening time on (by the
service clock) until the tender is opened, only for a current bid of that signer (by
bidder tag) with the envelope digest it names; the key is then held in memory
(``ServiceContext.released_keys``) and an audit entry names the bid.

It must never write the key to the database, a file, a log or an error message, never
decrypt anything (a wrong key is found at the opening, which then uses the tender key),
and never tell a signer anything about bids that are not its own: "no such bid", "not
yours", "replaced or withdrawn" and "another envelope" all read the same
(NOT_A_BIDDER).
"""

from __future__ import annotations

import logging

from sealed_bid.crypto.signed_data import SignatureFacts, verify_attached
from sealed_bid.domain.key_release import MAX_RELEASE_BYTES, KeyRelease
from sealed_bid.errors import AlreadyOpened, BidNotFound, NotABidder, NotYetOpen, StatementInvalid
from sealed_bid.service import signers
from sealed_bid.service.context import ServiceContext
from sealed_bid.storage.custody_models import OpeningRow
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import BidStatus, TenderState
from sealed_bid.storage.repository import Repository

log = logging.getLogger("sealed_bid.key_release")


class KeyReleaseService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def release(self, signed_release: bytes) -> str:
        """Hold the content key a bidder released for its bid; return the bid id."""
        ctx = self._ctx
        facts, release = _verified(ctx, signed_release)
        tender_id = release.tender_id
        with unit_of_work(ctx.engine, read_only=True) as session:
            tender = Repository(session).get_tender(tender_id)
            opening_time, state = tender.opening_time, tender.state
            accepted = list(tender.accepted_ca_ids)
            policy = signers.policy_for(
                tender.revocation_policy, tender.policy_oids or (), tender.eku_oids or ()
            )
        now = ctx.clock.now()
        # Before anything about the signer: the same answer for everybody.
        if now < opening_time:
            raise NotYetOpen(
                f"content keys are accepted from the opening time on ({opening_time.isoformat()})",
                tender_id=tender_id,
            )
        if state == TenderState.OPENED:
            raise AlreadyOpened(f"tender {tender_id} has been opened", tender_id=tender_id)
        signers.require_signature_algorithm(facts)
        signers.require_signing_time(facts, now, ctx.settings.limits.signing_time_skew_seconds)
        signers.validate(ctx, facts, accepted, now, policy)
        tag = ctx.bidder_tag(tender_id, signers.identify(facts))
        not_a_bidder = NotABidder(
            f"this certificate has no current bid {release.bid_id} with this envelope in"
            f" tender {tender_id}",
            tender_id=tender_id,
        )
        with unit_of_work(ctx.engine) as session:
            repo = Repository(session)
            tender = repo.lock_tender(tender_id)
            if tender.state == TenderState.OPENED:
                raise AlreadyOpened(f"tender {tender_id} has been opened", tender_id=tender_id)
            try:
                bid = repo.get_bid(release.bid_id)
            except BidNotFound:
                raise not_a_bidder from None
            if (
                bid.tender_id != tender_id
                or bid.bidder_tag != tag
                or bid.status != BidStatus.CURRENT
                or bid.envelope_sha256 != release.envelope_sha256
            ):
                raise not_a_bidder
            if session.get(OpeningRow, (tender_id, bid.id)) is not None:
                raise AlreadyOpened(
                    f"bid {bid.id} has been opened already (an opening is in progress)",
                    tender_id=tender_id,
                )
            replaced = ctx.released_keys.get(tender_id, bid.id) is not None
            ctx.audit.append(
                session,
                at=now,
                event="bid.key_released",
                tender_id=tender_id,
                bid_id=bid.id,
                fields={"envelope_sha256": bid.envelope_sha256, "replaced": replaced},
            )
            bid_id = bid.id
        # Held only once its audit entry is committed.
        ctx.released_keys.hold(tender_id, bid_id, release.content_key)
        log.info("bid.key_released tender=%s bid=%s", tender_id, bid_id)
        return bid_id


def _verified(ctx: ServiceContext, signed: bytes) -> tuple[SignatureFacts, KeyRelease]:
    if not signed or len(signed) > ctx.settings.limits.max_signature_bytes:
        raise StatementInvalid(
            "send the signed key release statement (DER CMS SignedData, attached)"
        )
    facts, content = verify_attached(signed)
    if len(content) > MAX_RELEASE_BYTES:
        raise StatementInvalid("the key release statement is too large")
    return facts, KeyRelease.parse(content)
