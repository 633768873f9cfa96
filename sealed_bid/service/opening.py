"""The opening: at or after the opening time, and only then, recover each current bid's
content key on the token, decrypt, verify the inner signature against the outer signer,
read the bid form, and publish the opening record.

Before the opening time this module refuses with NOT_YET_OPEN before touching the token.
Replaced and withdrawn envelopes are never decrypted, nor are their sealed signer
identities. Plaintext lives only in the work directory while a bid is read, and is deleted
afterwards. Each opened bid's signer identity is unsealed (a journalled key use) and, once
the tender is opened, kept in clear for later re-validation (ADR 0016).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.timestamps import HTTPTimeStamper
from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_bridge.identity import BidderIdentity
from sealed_bid.crypto.released_key import ReleasedKeyTransport
from sealed_bid.crypto.seal import OpenedBid, open_bid
from sealed_bid.crypto.signed_data import verify_detached
from sealed_bid.crypto.signer import KeyTransport
from sealed_bid.domain.canonical import format_time
from sealed_bid.domain.custody import UnlockPolicy
from sealed_bid.domain.ids import TenderId
from sealed_bid.domain.opening_record import (
    AttemptEntry,
    BidderEntry,
    BidRow,
    CustodyEntry,
    DocumentEntry,
    NotOpenedBid,
    OpenedWith,
    OpeningRecord,
    TimeProofEntry,
)
from sealed_bid.domain.opening_record import BidStatus as BidStatus_
from sealed_bid.errors import (
    AlgorithmRefused,
    DecryptionFailed,
    EnvelopeNotCms,
    EnvelopeNotDer,
    EnvelopeWrongContentType,
    InnerSignatureInvalid,
    KeyTransportFailed,
    MalformedPackage,
    NotYetOpen,
    QuorumNotMet,
    RecipientMismatch,
    SealedBidError,
    SignatureInvalid,
    SignatureMalformed,
    SignerMismatch,
)
from sealed_bid.hsm.token import RECEIPT_KEY
from sealed_bid.records.bid_pdfs import validate_bid_pdf
from sealed_bid.records.pades import sign_record_pdf
from sealed_bid.records.pdf_render import render_record_pdf
from sealed_bid.service import sealing
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.custody import load_unlock_policy, unlock_quorum_key
from sealed_bid.service.opening_events import (
    BidOpenedEvent,
    FailedEvent,
    FinishedEvent,
    TimeProvenEvent,
)
from sealed_bid.service.share_desk import PresentedShare
from sealed_bid.service.tender_keys import PlatformTenderKey, TenderKeyAccess, journal_key_use
from sealed_bid.service.time_proof import TimeProof, prove_opening_time
from sealed_bid.service.views import RecordView
from sealed_bid.storage.custody_models import OpeningProof, OpeningRow
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import Bid, BidStatus, KeyOperation, TenderState
from sealed_bid.storage.models import OpeningRecord as StoredRecord
from sealed_bid.storage.repository import Repository

log = logging.getLogger("sealed_bid.opening")


class OpeningService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def record(self, tender_id: str) -> RecordView:
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            return _view(Repository(session).get_record(TenderId(tender_id)))

    def open(self, tender_id: str, operator: str) -> RecordView:
        tid = TenderId(tender_id)
        with self._locks[tid]:
            return self._open(tid, operator)

    def _open(self, tender_id: TenderId, operator: str) -> RecordView:
        ctx = self._ctx
        with unit_of_work(ctx.engine, read_only=True) as session:
            repo = Repository(session)
            tender = repo.get_tender(tender_id)
            if tender.state == TenderState.OPENED:
                stored = repo.get_record(tender_id)
                return _view(stored)
            plan = _Plan(
                tender_id=tender_id,
                operator=operator,
                title=tender.title,
                deadline=tender.deadline,
                opening_time=tender.opening_time,
                accepted_ca_ids=tuple(tender.accepted_ca_ids),
                recipient=sealing.SealRecipient.of(tender),
                bids=tuple(_BidRef.of(b) for b in repo.all_bids(tender_id)),
                unlock=load_unlock_policy(session, tender_id),
            )
        try:
            return self._open_proven(plan)
        except SealedBidError as exc:
            ctx.events.publish(tender_id, ctx.clock.now(), FailedEvent(exc.code, exc.message))
            raise

    def _open_proven(self, plan: _Plan) -> RecordView:
        ctx = self._ctx
        tender_id, opening_time, unlock = plan.tender_id, plan.opening_time, plan.unlock
        # Cheap refusals first: nothing below may run before the opening time.
        now = ctx.clock.now()
        if now < opening_time:
            raise NotYetOpen(
                f"tender {tender_id} opens at {opening_time.isoformat()}; it is now"
                f" {now.isoformat()}",
                tender_id=tender_id,
            )
        shares = ctx.shares.presented(tender_id) if unlock.kind == "quorum" else []
        if unlock.kind == "quorum" and len(shares) < unlock.threshold:
            raise QuorumNotMet(
                f"{len(shares)} of the {unlock.threshold} officers' shares needed have been"
                " presented",
                tender_id=tender_id,
            )
        officers = tuple(share.subject for share in shares)
        _mark_interrupted(ctx, tender_id)
        proof = prove_opening_time(ctx, tender_id, opening_time, plan.operator, officers)
        ctx.events.publish(
            tender_id, ctx.clock.now(), TimeProvenEvent(proof.gen_time, proof.token_sha256)
        )
        try:
            return self._open_rows(plan, shares, officers, proof)
        except Exception as exc:
            code = exc.code if isinstance(exc, SealedBidError) else "INTERNAL_ERROR"
            _finish_attempt(ctx, tender_id, proof.proof_id, f"failed: {code}")
            raise

    def _open_rows(
        self,
        plan: _Plan,
        shares: list[PresentedShare],
        officers: tuple[str, ...],
        proof: TimeProof,
    ) -> RecordView:
        tender_id, recipient, bids, unlock = plan.tender_id, plan.recipient, plan.bids, plan.unlock
        ctx = self._ctx
        rows: list[BidRow] = []
        not_opened: list[NotOpenedBid] = []
        current = [
            b for b in sorted(bids, key=lambda b: b.log_sequence) if b.status == BidStatus.CURRENT
        ]
        # Rows an earlier, interrupted attempt finished: reused, never opened again.
        finished = _finished_rows(ctx, tender_id)
        # Signatures on bidders' PDF documents are checked against the tender's bidder CAs.
        pdf_roots = _bidder_anchors(ctx, plan.accepted_ca_ids)
        with self._tender_key(tender_id, unlock, shares) as key:
            # The guard: no access without the clock and the TSA's proof.
            access = TenderKeyAccess(key, tender_id, plan.opening_time, ctx.clock, proof, officers)
            for position, ref in enumerate(current, start=1):
                if ref.id in finished:
                    row = BidRow.from_dict(json.loads(finished[ref.id].row_json))
                else:
                    row = self._open_and_keep(access, recipient, ref, proof, pdf_roots)
                rows.append(row)
                ctx.events.publish(
                    tender_id,
                    ctx.clock.now(),
                    BidOpenedEvent(
                        bid_id=row.bid_id,
                        status=row.status,
                        position=position,
                        total=len(current),
                        bidder=(row.bidder.organisation or row.bidder.common_name or "")
                        if row.bidder is not None
                        else "",
                    ),
                )
        for ref in sorted(bids, key=lambda b: b.log_sequence):
            if ref.status != BidStatus.CURRENT:
                not_opened.append(
                    NotOpenedBid(
                        ref.id,
                        ref.envelope_sha256,
                        "WITHDRAWN" if ref.status == BidStatus.WITHDRAWN else "REPLACED",
                    )
                )
        now = ctx.clock.now()
        record = OpeningRecord(
            tender_id=tender_id,
            title=plan.title,
            deadline=plan.deadline,
            opening_time=plan.opening_time,
            opened_at=now,
            bids=tuple(rows),
            not_opened=tuple(not_opened),
            time_proof=TimeProofEntry(
                tsa_time=proof.gen_time,
                request_json=proof.request_json,
                request_sha256=proof.request_sha256,
                tsa_token_der=proof.token_der,
                tsa_token_sha256=proof.token_sha256,
            ),
            custody=CustodyEntry(unlock.kind, unlock.threshold, officers),
            attempts=_attempts(ctx, tender_id, proof.proof_id),
        )
        record_json = record.to_json()
        record_sha256 = hashlib.sha256(record_json).hexdigest()
        record_pdf = self._signed_pdf(record_json, now)
        ctx.settings.records_dir.mkdir(parents=True, exist_ok=True)
        (ctx.settings.records_dir / f"{tender_id}.json").write_bytes(record_json)
        (ctx.settings.records_dir / f"{tender_id}.pdf").write_bytes(record_pdf)
        with unit_of_work(ctx.engine) as session:
            repo = Repository(session)
            stored = repo.save_record(
                StoredRecord(
                    tender_id=tender_id,
                    created_at=now,
                    record_json=record_json.decode("utf-8"),
                    record_sha256=record_sha256,
                    record_pdf=record_pdf,
                )
            )
            repo.mark_opened(tender_id, now)
            for kept in _finished_rows(ctx, tender_id, session).values():
                if kept.signature_blob is not None:
                    repo.store_opened_signer(kept.bid_id, kept.signature_blob, kept.validation_json)
            _finish_attempt(ctx, tender_id, proof.proof_id, "completed", session)
            ctx.audit.append(
                session,
                at=now,
                event="tender.opened",
                tender_id=tender_id,
                bid_id=None,
                fields={
                    "operator": plan.operator,
                    "record_sha256": record_sha256,
                    "record_pdf_sha256": hashlib.sha256(record_pdf).hexdigest(),
                    "opened": sum(1 for r in rows if r.status == "OPENED"),
                    "failed": sum(1 for r in rows if r.status != "OPENED"),
                    "tsa_token_sha256": proof.token_sha256,
                    "officers": ",".join(officers),
                },
            )
            view = _view(stored)
        ctx.shares.forget(tender_id)
        ctx.released_keys.forget(tender_id)
        log.info("tender.opened tender=%s record=%s", tender_id, record_sha256)
        ctx.events.publish(tender_id, now, FinishedEvent(view.record_json, view.record_sha256))
        return view

    def _open_and_keep(
        self,
        access: TenderKeyAccess,
        recipient: sealing.SealRecipient,
        ref: _BidRef,
        proof: TimeProof,
        pdf_roots: tuple[bytes, ...],
    ) -> BidRow:
        """Open one bid and store its row (and its signer material, now in clear) at once,
        so an opening killed after this bid resumes without opening it again."""
        ctx = self._ctx
        row, bundle = self._open_one(access, recipient, ref, pdf_roots)
        signature_blob = (
            None if bundle is None else sealing.store_in_clear(ctx.blobs, access, bundle)
        )
        with unit_of_work(ctx.engine) as session:
            session.add(
                OpeningRow(
                    tender_id=recipient.tender_id,
                    bid_id=ref.id,
                    proof_id=proof.proof_id,
                    row_json=json.dumps(row.to_dict(), sort_keys=True),
                    signature_blob=signature_blob,
                    validation_json=None if bundle is None else bundle.validation_json,
                )
            )
        return row

    @contextmanager
    def _tender_key(
        self, tender_id: TenderId, unlock: UnlockPolicy, shares: list[PresentedShare]
    ) -> Iterator[KeyTransport]:
        """The tender key: the platform token's (``scheduled``), or the tender's own token
        unlocked by the officers' shares (``quorum``; logged out on exit)."""
        if unlock.kind != "quorum":
            yield PlatformTenderKey(self._ctx.token, tender_id)
            return
        with unlock_quorum_key(
            self._ctx.quorum_tokens, tender_id, unlock.threshold, shares
        ) as session:
            yield session

    def _signed_pdf(self, record_json: bytes, now: datetime) -> bytes:
        """The record as a PDF, PAdES-signed by the platform receipt key on the token with
        the TSA's signature and document time stamps (ADR 0015)."""
        ctx = self._ctx
        pdf = render_record_pdf(record_json.decode("utf-8"), generated_at=now)
        timestamper = (
            HTTPTimeStamper(ctx.settings.tsa_url, timeout=ctx.settings.limits.tsa_timeout_seconds)
            if ctx.settings.tsa_url
            else None
        )
        return sign_record_pdf(
            pdf,
            token=ctx.token,
            key_label=RECEIPT_KEY,
            certificate_der=ctx.receipt_signer.certificate_der,
            chain_der=(_platform_root_der(ctx),),
            timestamper=timestamper,
        )

    def _open_one(
        self,
        access: TenderKeyAccess,
        recipient: sealing.SealRecipient,
        ref: _BidRef,
        pdf_roots: tuple[bytes, ...],
    ) -> tuple[BidRow, sealing.IdentityBundle | None]:
        """The bid's row, and its unsealed signer material (None if it did not unseal)."""
        ctx = self._ctx
        tender_id, tender_cert = recipient.tender_id, recipient.certificate_der
        try:
            # A key use of its own, journalled inside unseal before the token is asked.
            bundle = sealing.unseal(ctx, access, recipient, ref.id, ref.sealed_identity, "bid")
        except _UNSEAL_FAULTS as exc:
            # The service sealed this blob itself: it is damaged. The bid cannot be
            # attributed, so its envelope is not opened either.
            return ref.row(
                status=_bid_status(exc),
                reason=f"the sealed signer identity did not unseal: {exc.message}",
            ), None
        outer_cert = verify_detached(
            bundle.signature, bytes.fromhex(ref.envelope_sha256)
        ).signer_certificate_der
        identity = BidderIdentity.from_certificate(outer_cert)
        bidder = BidderEntry(
            organisation=identity.organisation,
            common_name=identity.common_name,
            credit_code=identity.credit_code,
            certificate_sha256=identity.certificate_sha256.hex(),
        )
        work = ctx.settings.work_dir / "opening" / tender_id
        work.mkdir(parents=True, exist_ok=True)
        envelope = ctx.blobs.path(ref.envelope_sha256)
        inspect_pdf = partial(_pdf_signatures, roots=pdf_roots)
        note: str | None = None
        released = ctx.released_keys.get(tender_id, ref.id)
        if released is not None:
            # Bidder participation: the content key the bidder released, first. It is not a
            # tender-key use, so nothing is journalled; it counts only if the bid opens
            # with it (a released key can open a bid, never make it fail).
            failure: str
            try:
                row = _opened_row(
                    ref,
                    bidder,
                    outer_cert,
                    open_bid(
                        envelope,
                        ReleasedKeyTransport(released),
                        tender_cert,
                        work,
                        inspect_pdf=inspect_pdf,
                    ),
                    tender_id,
                    "bidder_key",
                )
                if row.status == "OPENED":
                    return row, bundle
                failure = row.status
            except _BID_FAULTS as exc:
                failure = exc.code
            note = (
                f"the content key the bidder released did not open the bid ({failure});"
                " the tender key was used instead"
            )
        journal_key_use(ctx, access, ref.id, KeyOperation.DECRYPT_KEY)
        try:
            opened = open_bid(envelope, access, tender_cert, work, inspect_pdf=inspect_pdf)
        except _BID_FAULTS as exc:
            # A fault of this bid becomes its row. Anything else (token or storage down)
            # propagates: the opening stops, stores nothing and can be run again.
            row = ref.row(status=_bid_status(exc), bidder=bidder, reason=exc.message, note=note)
            return row, bundle
        return _opened_row(ref, bidder, outer_cert, opened, tender_id, "tender_key", note), bundle


def _opened_row(
    ref: _BidRef,
    bidder: BidderEntry,
    outer_cert: bytes,
    opened: OpenedBid,
    tender_id: TenderId,
    opened_with: OpenedWith,
    note: str | None = None,
) -> BidRow:
    """The row of a decrypted bid: OPENED (by ``opened_with``), or why not."""
    if opened.inner.signer_certificate_der != outer_cert:
        err = SignerMismatch("the package was signed by someone other than the bidder")
        return ref.row(status="SIGNER_MISMATCH", bidder=bidder, reason=err.message, note=note)
    form = opened.package.form
    if form.tender_id != tender_id:
        return ref.row(
            status="MALFORMED_PACKAGE",
            bidder=bidder,
            reason=f"bid.json names tender {form.tender_id!r}, not this tender",
            note=note,
        )
    return ref.row(
        status="OPENED",
        bidder=bidder,
        form=json.loads(form.to_json()),
        inner_signing_time=opened.inner.signing_time,
        package_sha256=opened.inner.content_digest.hex(),
        documents=tuple(
            DocumentEntry(
                d.name,
                d.size,
                d.sha256,
                cast("list[dict[str, Any]] | None", opened.pdf_reports.get(d.name)),
            )
            for d in opened.package.documents
        ),
        opened_with=opened_with,
        note=note,
    )


_BID_FAULTS = (
    KeyTransportFailed,
    DecryptionFailed,
    EnvelopeNotDer,
    EnvelopeNotCms,
    EnvelopeWrongContentType,
    AlgorithmRefused,
    SignatureInvalid,
    SignatureMalformed,
    InnerSignatureInvalid,
    MalformedPackage,
)
_UNSEAL_FAULTS = (
    KeyTransportFailed,
    DecryptionFailed,
    EnvelopeNotDer,
    EnvelopeNotCms,
    EnvelopeWrongContentType,
    AlgorithmRefused,
    RecipientMismatch,
)


def _bid_status(exc: SealedBidError) -> BidStatus_:
    if isinstance(exc, KeyTransportFailed):
        return "KEY_TRANSPORT_FAILED"
    if isinstance(exc, SignatureInvalid | SignatureMalformed | InnerSignatureInvalid):
        return "INNER_SIGNATURE_INVALID"
    if isinstance(exc, MalformedPackage):
        return "MALFORMED_PACKAGE"
    # The envelope passed these checks at submission; failing them now means the stored
    # bytes no longer decrypt as they did.
    return "DECRYPTION_FAILED"


@dataclass(frozen=True)
class _Plan:
    """What one opening attempt needs of its tender, read once before it starts."""

    tender_id: TenderId
    operator: str
    title: str
    deadline: datetime
    opening_time: datetime
    accepted_ca_ids: tuple[str, ...]
    recipient: sealing.SealRecipient
    bids: tuple[_BidRef, ...]
    unlock: UnlockPolicy


@dataclass(frozen=True)
class _BidRef:
    """What the opening needs of a bid row, read once before the long-running loop."""

    id: str
    status: BidStatus
    log_sequence: int
    envelope_sha256: str
    size: int
    received_at: datetime
    sealed_identity: str

    def row(self, status: BidStatus_, **outcome: Any) -> BidRow:
        return BidRow(
            bid_id=self.id,
            log_sequence=self.log_sequence,
            envelope_sha256=self.envelope_sha256,
            size=self.size,
            received_at=self.received_at,
            status=status,
            **outcome,
        )

    @classmethod
    def of(cls, bid: Bid) -> _BidRef:
        return cls(
            bid.id,
            bid.status,
            bid.log_sequence,
            bid.envelope_sha256,
            bid.size,
            bid.received_at,
            bid.sealed_identity_blob,
        )


def _view(stored: StoredRecord) -> RecordView:
    return RecordView(
        stored.tender_id, stored.record_json, stored.record_sha256, stored.record_pdf or b""
    )


def _platform_root_der(ctx: ServiceContext) -> bytes:
    return x509.load_pem_x509_certificate(
        ctx.settings.platform_root_path.read_bytes()
    ).public_bytes(serialization.Encoding.DER)


def _finished_rows(
    ctx: ServiceContext, tender_id: str, session: Session | None = None
) -> dict[str, OpeningRow]:
    def read(s: Session) -> dict[str, OpeningRow]:
        rows = s.scalars(select(OpeningRow).where(OpeningRow.tender_id == tender_id))
        return {row.bid_id: row for row in rows}

    if session is not None:
        return read(session)
    with unit_of_work(ctx.engine, read_only=True) as own:
        found = read(own)
        for row in found.values():
            own.expunge(row)
        return found


def _mark_interrupted(ctx: ServiceContext, tender_id: str) -> None:
    """Attempts still without an outcome died with their process (e.g. kill -9)."""
    with unit_of_work(ctx.engine) as session:
        for attempt in session.scalars(
            select(OpeningProof).where(
                OpeningProof.tender_id == tender_id, OpeningProof.outcome.is_(None)
            )
        ):
            attempt.outcome = "interrupted"
            ctx.audit.append(
                session,
                at=ctx.clock.now(),
                event="opening.interrupted",
                tender_id=tender_id,
                bid_id=None,
                fields={"attempt": attempt.id, "tsa_gen_time": attempt.gen_time.isoformat()},
            )


def _finish_attempt(
    ctx: ServiceContext,
    tender_id: str,
    proof_id: int,
    outcome: str,
    session: Session | None = None,
) -> None:
    def mark(s: Session) -> None:
        attempt = s.get(OpeningProof, proof_id)
        if attempt is not None:
            attempt.outcome = outcome
        if outcome != "completed":
            ctx.audit.append(
                s,
                at=ctx.clock.now(),
                event="opening.failed",
                tender_id=tender_id,
                bid_id=None,
                fields={"attempt": proof_id, "outcome": outcome},
            )

    if session is not None:
        mark(session)
        return
    with unit_of_work(ctx.engine) as own:
        mark(own)


def _attempts(ctx: ServiceContext, tender_id: str, current: int) -> tuple[AttemptEntry, ...]:
    with unit_of_work(ctx.engine, read_only=True) as session:
        proofs = session.scalars(
            select(OpeningProof)
            .where(OpeningProof.tender_id == tender_id)
            .order_by(OpeningProof.id)
        )
        return tuple(
            AttemptEntry(
                tsa_time=p.gen_time,
                tsa_token_sha256=p.token_sha256,
                outcome="completed" if p.id == current else (p.outcome or "interrupted"),
            )
            for p in proofs
        )


def _bidder_anchors(ctx: ServiceContext, ca_ids: tuple[str, ...]) -> tuple[bytes, ...]:
    store = ctx.trust.current()
    return tuple(
        anchor for ca_id in ca_ids if ca_id in store.cas for anchor in store.cas[ca_id].anchors
    )


MAX_BID_PDF_BYTES = 256 * 1024 * 1024


def _pdf_signatures(path: Path, *, roots: tuple[bytes, ...]) -> list[dict[str, Any]]:
    """The signatures in a bidder's PDF document, as the record shows them."""
    return [
        {
            "status": sig.status,
            "kind": sig.kind,
            "signer_common_name": sig.signer_common_name,
            "signer_organisation": sig.signer_organisation,
            "signer_certificate_sha256": sig.signer_certificate_sha256,
            "signing_time": None if sig.signing_time is None else format_time(sig.signing_time),
            "signing_time_source": sig.signing_time_source,
            "intact": sig.intact,
            "valid": sig.valid,
            "trusted": sig.trusted,
            "pades": sig.pades,
            "coverage": sig.coverage,
            "modification_level": sig.modification_level,
            "error": sig.error,
        }
        for sig in validate_bid_pdf(path, trust_roots_der=roots, max_bytes=MAX_BID_PDF_BYTES)
    ]
