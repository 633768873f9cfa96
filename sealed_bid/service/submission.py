"""Receiving a bid: spool and hash the stream, check everything that can be checked
without decrypting, store durably, sign a receipt.

Never decrypts, never calls a tender private key, never holds the envelope in memory.
Nothing is stored (and no receipt exists) unless every check passes; the blob is fsync'd
and renamed and the audit entry committed before the receipt is returned. Nothing that
identifies the bidder is stored in clear: the outer signature, the validation record and
its evidence are sealed to the tender certificate as one blob (``sealing``, ADR 0016).
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime

from sealed_bid.crypto.envelope import EnvelopeInfo, inspect_envelope
from sealed_bid.crypto.signed_data import verify_attached, verify_detached
from sealed_bid.domain.ids import BidderTag, BidId, EnvelopeDigest, TenderId, new_bid_id
from sealed_bid.domain.receipt import ReceiptContent
from sealed_bid.domain.tender import KEY_TRANSPORT
from sealed_bid.errors import (
    AlgorithmRefused,
    BidLate,
    BidNotFound,
    BidReplayed,
    ChunkTooLarge,
    DigestMismatch,
    EnvelopeTooLarge,
    EnvelopeWrongContentType,
    MalformedRequest,
    ReceiptNotFound,
    RecipientMismatch,
    SignatureMalformed,
    SizeMismatch,
)
from sealed_bid.service import receipt_stamps, sealing, signers
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.expiry import expiry_before_opening
from sealed_bid.service.receipts import sign_receipt
from sealed_bid.service.views import ReceiptView
from sealed_bid.storage.blobstore import IncomingBlob
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import Bid, BidStatus, CertificateExpiry, Tender, TenderState
from sealed_bid.storage.repository import Repository

log = logging.getLogger("sealed_bid.submission")


def _late(tender: Tender, now: datetime) -> bool:
    return now > tender.deadline or tender.state != TenderState.ACCEPTING


class Upload:
    """One submission stream in progress. ``abort()`` is always safe to call."""

    def __init__(self, ctx: ServiceContext, tender: Tender, declared_size: int) -> None:
        self._ctx = ctx
        self._tender_id = TenderId(tender.id)
        self._deadline = tender.deadline
        self._max = tender.max_envelope_bytes
        self._declared = declared_size
        self._received = 0
        self._blob: IncomingBlob | None = ctx.blobs.begin()

    def write(self, chunk: bytes) -> None:
        blob = self._require_open()
        limits = self._ctx.settings.limits
        if len(chunk) > limits.max_chunk_bytes:
            raise ChunkTooLarge(f"chunks may be at most {limits.max_chunk_bytes} bytes")
        self._received += len(chunk)
        if self._received > self._declared:
            raise SizeMismatch(
                f"more bytes arrived than the {self._declared} declared in the header"
            )
        blob.write(chunk)

    def finish(self, envelope_sha256: bytes, outer_signature: bytes) -> ReceiptView:
        blob = self._require_open()
        ctx = self._ctx
        if self._received != self._declared:
            raise SizeMismatch(
                f"declared {self._declared} bytes but received {self._received}",
                declared=self._declared,
                received=self._received,
            )
        blob.flush()
        actual = bytes.fromhex(blob.hexdigest())
        if len(envelope_sha256) != 32 or not hmac.compare_digest(actual, envelope_sha256):
            raise DigestMismatch("the trailer's SHA-256 is not the SHA-256 of the data sent")
        if not outer_signature:
            raise SignatureMalformed("the trailer carries no outer signature")
        if len(outer_signature) > ctx.settings.limits.max_signature_bytes:
            raise SignatureMalformed("the outer signature is larger than the service accepts")
        now = ctx.clock.now()
        with unit_of_work(ctx.engine, read_only=True) as session:
            repo = Repository(session)
            tender = repo.get_tender(self._tender_id)
            if _late(tender, now):
                raise BidLate(f"the submission deadline {tender.deadline.isoformat()} has passed")
            info = inspect_envelope(blob.tmp_path)
            _check_envelope(info, tender)
            facts = verify_detached(outer_signature, actual)
            signers.require_signature_algorithm(facts)
            identity = signers.identify(facts)
            tag = ctx.bidder_tag(self._tender_id, identity)
            digest = EnvelopeDigest(actual.hex())
            existing = repo.find_bid(self._tender_id, tag, digest)
            if existing is not None and existing.status == BidStatus.CURRENT:
                # The same bid again (a retry after a lost response): the same receipt.
                duplicate: tuple[str, bytes] | None = (existing.id, bytes(existing.receipt_der))
            elif existing is not None:
                raise BidReplayed(
                    "this envelope was replaced or withdrawn already and cannot become"
                    " current again; seal and sign a new one"
                )
            else:
                duplicate = None
                signing_time = signers.require_signing_time(
                    facts, now, ctx.settings.limits.signing_time_skew_seconds
                )
                # Refuse a replay here, before any blob is written; _store checks again
                # under the slot lock (a concurrent submission can still move the mark).
                mark = last_signing_time(repo, self._tender_id, tag)
                if mark is not None and signing_time <= mark:
                    raise BidReplayed(_OLDER_THAN_LAST)
                accepted_ca_ids = list(tender.accepted_ca_ids)
                policy = signers.policy_for(
                    tender.revocation_policy, tender.policy_oids or (), tender.eku_oids or ()
                )
                recipient = sealing.SealRecipient.of(tender)
                expiry = expiry_before_opening(facts, tender.opening_time)
        if duplicate is not None:
            self.abort()
            receipt_der = receipt_stamps.stamped(
                ctx, "bid", duplicate[0], self._tender_id, duplicate[1]
            )
            content = ReceiptContent.from_bytes(_receipt_content(receipt_der))
            return ReceiptView(receipt_der, content, duplicate=True)
        # Outside the database session: revocation checking may wait on a CA's responder.
        validation = signers.validation_record(
            signers.validate(ctx, facts, accepted_ca_ids, now, policy), policy
        )
        # The only blob written about the signer: ciphertext to the tender certificate.
        sealed_identity = sealing.seal(
            ctx.blobs,
            recipient,
            sealing.IdentityBundle(
                kind="bid",
                signature=outer_signature,
                validation_json=validation.json,
                evidence=validation.evidence,
            ),
        )
        envelope_blob = blob.commit()
        self._blob = None
        view = self._store(
            tag=tag,
            digest=EnvelopeDigest(envelope_blob),
            signing_time=signing_time,
            sealed_identity=sealed_identity,
            expiry=expiry,
        )
        log.info(
            "bid.accepted tender=%s bid=%s seq=%d",
            self._tender_id,
            view.content.bid_id,
            view.content.log_sequence,
        )
        # The bid is stored; the TSA is asked now, outside every lock.
        receipt_der = receipt_stamps.stamped(
            ctx, "bid", view.content.bid_id, self._tender_id, view.receipt_der
        )
        return ReceiptView(receipt_der, view.content)

    def _store(
        self,
        *,
        tag: BidderTag,
        digest: EnvelopeDigest,
        signing_time: datetime,
        sealed_identity: str,
        expiry: CertificateExpiry,
    ) -> ReceiptView:
        ctx = self._ctx
        with unit_of_work(ctx.engine) as session:
            repo = Repository(session)
            tender = repo.lock_tender(self._tender_id)
            now = ctx.clock.now()
            if _late(tender, now):
                raise BidLate(f"the submission deadline {tender.deadline.isoformat()} has passed")
            slot = repo.lock_or_create_slot(self._tender_id, tag)
            if slot.last_signing_time is not None and signing_time <= slot.last_signing_time:
                raise BidReplayed(_OLDER_THAN_LAST)
            bid_id = new_bid_id()
            if slot.current_bid_id is not None:
                previous = repo.get_bid(BidId(slot.current_bid_id))
                if previous.status == BidStatus.CURRENT:
                    previous.status = BidStatus.REPLACED
                    ctx.audit.append(
                        session,
                        at=now,
                        event="bid.replaced",
                        tender_id=self._tender_id,
                        bid_id=previous.id,
                        fields={"replaced_by": bid_id},
                    )
            entry = ctx.audit.append(
                session,
                at=now,
                event="bid.accepted",
                tender_id=self._tender_id,
                bid_id=bid_id,
                fields={"envelope_sha256": digest, "size": self._declared},
            )
            content = ReceiptContent(
                kind="bid",
                tender_id=self._tender_id,
                bid_id=bid_id,
                envelope_sha256=digest,
                size=self._declared,
                received_at=now,
                log_sequence=entry.seq,
            )
            receipt_der = sign_receipt(content, ctx.receipt_signer)
            repo.add_bid(
                Bid(
                    id=bid_id,
                    tender_id=self._tender_id,
                    bidder_tag=tag,
                    envelope_sha256=digest,
                    size=self._declared,
                    received_at=now,
                    signing_time=signing_time,
                    log_sequence=entry.seq,
                    status=BidStatus.CURRENT,
                    sealed_identity_blob=sealed_identity,
                    expires_before_opening=expiry,
                    outer_signature_blob=None,
                    validation_json=None,
                    receipt_der=receipt_der,
                )
            )
            slot.current_bid_id = bid_id
            slot.last_signing_time = signing_time
        return ReceiptView(receipt_der, content)

    def abort(self) -> None:
        if self._blob is not None:
            self._blob.abort()
            self._blob = None

    def _require_open(self) -> IncomingBlob:
        if self._blob is None:
            raise MalformedRequest("this submission is finished")
        return self._blob


_OLDER_THAN_LAST = (
    "a bid or withdrawal signed at or after this envelope's signingTime exists;"
    " an older envelope never replaces a newer one"
)


def last_signing_time(repo: Repository, tender_id: TenderId, tag: BidderTag) -> datetime | None:
    """The bidder's replay high-water mark (signingTime of its latest accepted envelope or
    withdrawal), read without the slot lock for the early checks."""
    slot = repo.get_slot(tender_id, tag)
    return None if slot is None else slot.last_signing_time


MAX_RECIPIENTS = 4
"""RecipientInfos an envelope may carry: the tender's and a few more, e.g. the bidder's own
certificate (bidder participation). What the others use is the bidder's business; only the
tender's must be one the token opens."""


def _check_envelope(info: EnvelopeInfo, tender: Tender) -> None:
    """Refuse anything the token could not open, before any receipt."""
    if len(info.recipients) > MAX_RECIPIENTS:
        # Who an envelope is addressed to is RECIPIENT_MISMATCH's subject; the remedy is
        # the same (seal again, to the tender certificate and at most three more).
        raise RecipientMismatch(
            f"the envelope has {len(info.recipients)} recipients; at most {MAX_RECIPIENTS} are"
            " accepted (this tender's certificate and up to three more)"
        )
    if info.content_type not in ("authEnvelopedData", "envelopedData"):
        raise EnvelopeWrongContentType(f"{info.content_type} is not an envelope type we accept")
    if info.content_algorithm not in tender.content_algorithms:
        raise AlgorithmRefused(
            f"content encryption {info.content_algorithm} is not accepted; use "
            + " or ".join(tender.content_algorithms)
        )
    ours = [r for r in info.recipients if r.matches(tender.tender_cert_der)]
    if not ours:
        raise RecipientMismatch(
            "the envelope is not encrypted to this tender's certificate; fetch the tender"
            " and seal to its certificate"
        )
    for recipient in ours:
        if recipient.key_encryption != KEY_TRANSPORT:
            raise AlgorithmRefused(
                f"key transport {recipient.key_encryption} is refused; use RSAES-OAEP"
            )
        if recipient.oaep_hash not in tender.oaep_hashes:
            raise AlgorithmRefused(
                f"OAEP with {recipient.oaep_hash} cannot be opened by this tender's token; use "
                + " or ".join(tender.oaep_hashes)
            )


def _receipt_content(receipt_der: bytes) -> bytes:
    return verify_attached(receipt_der)[1]


class SubmissionService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def begin(self, tender_id: str, declared_size: int) -> Upload:
        ctx = self._ctx
        with unit_of_work(ctx.engine, read_only=True) as session:
            tender = Repository(session).get_tender(TenderId(tender_id))
            if _late(tender, ctx.clock.now()):
                raise BidLate(f"the submission deadline {tender.deadline.isoformat()} has passed")
            if declared_size <= 0:
                raise MalformedRequest("the header must declare the envelope size")
            if declared_size > tender.max_envelope_bytes:
                raise EnvelopeTooLarge(
                    f"this tender accepts envelopes of at most {tender.max_envelope_bytes} bytes",
                    limit=tender.max_envelope_bytes,
                )
            return Upload(ctx, tender, declared_size)

    def receipt(self, tender_id: str, bid_id: str) -> ReceiptView:
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            try:
                bid = Repository(session).get_bid(BidId(bid_id))
            except BidNotFound:
                bid = None
            if bid is None or bid.tender_id != tender_id:
                raise ReceiptNotFound(f"no receipt for bid {bid_id!r} in tender {tender_id!r}")
            receipt_der = bytes(bid.receipt_der)
        # A receipt left unstamped while the TSA was down is stamped now.
        receipt_der = receipt_stamps.stamped(self._ctx, "bid", bid_id, tender_id, receipt_der)
        return ReceiptView(receipt_der, ReceiptContent.from_bytes(_receipt_content(receipt_der)))
