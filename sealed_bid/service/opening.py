"""The opening: at or after the opening time, and only then, recover each current bid's
content key on the token, decrypt, verify the inner signature against the outer signer,
read the bid form, and publish the opening record.

Before the opening time this module refuses with NOT_YET_OPEN before touching the token.
Replaced and withdrawn envelopes are never decrypted. Plaintext lives only in the work
directory while a bid is read, and is deleted afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ca_bridge.identity import BidderIdentity
from sealed_bid.crypto.seal import open_bid
from sealed_bid.crypto.signed_data import verify_detached
from sealed_bid.domain.ids import TenderId
from sealed_bid.domain.opening_record import (
    BidderEntry,
    BidRow,
    DocumentEntry,
    NotOpenedBid,
    OpeningRecord,
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
    SealedBidError,
    SignatureInvalid,
    SignatureMalformed,
    SignerMismatch,
)
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.tender_keys import TenderKeyAccess
from sealed_bid.service.views import RecordView
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import Bid, BidStatus, KeyOperation, KeyUse, TenderState
from sealed_bid.storage.models import OpeningRecord as StoredRecord
from sealed_bid.storage.repository import Repository

log = logging.getLogger("sealed_bid.opening")


class OpeningService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def record(self, tender_id: str) -> RecordView:
        with unit_of_work(self._ctx.engine, read_only=True) as session:
            stored = Repository(session).get_record(TenderId(tender_id))
            return RecordView(stored.tender_id, stored.record_json, stored.record_sha256)

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
                return RecordView(stored.tender_id, stored.record_json, stored.record_sha256)
            title, deadline, opening_time = tender.title, tender.deadline, tender.opening_time
            tender_cert = tender.tender_cert_der
            bids = [_BidRef.of(b) for b in repo.all_bids(tender_id)]
        # The guard: raises NotYetOpen before anything touches the token.
        access = TenderKeyAccess(ctx.token, tender_id, opening_time, ctx.clock)
        rows: list[BidRow] = []
        not_opened: list[NotOpenedBid] = []
        for ref in sorted(bids, key=lambda b: b.log_sequence):
            if ref.status == BidStatus.CURRENT:
                rows.append(self._open_one(access, tender_id, tender_cert, ref))
            else:
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
            title=title,
            deadline=deadline,
            opening_time=opening_time,
            opened_at=now,
            bids=tuple(rows),
            not_opened=tuple(not_opened),
        )
        record_json = record.to_json()
        record_sha256 = hashlib.sha256(record_json).hexdigest()
        ctx.settings.records_dir.mkdir(parents=True, exist_ok=True)
        (ctx.settings.records_dir / f"{tender_id}.json").write_bytes(record_json)
        with unit_of_work(ctx.engine) as session:
            repo = Repository(session)
            repo.save_record(
                StoredRecord(
                    tender_id=tender_id,
                    created_at=now,
                    record_json=record_json.decode("utf-8"),
                    record_sha256=record_sha256,
                )
            )
            repo.mark_opened(tender_id, now)
            ctx.audit.append(
                session,
                at=now,
                event="tender.opened",
                tender_id=tender_id,
                bid_id=None,
                fields={
                    "operator": operator,
                    "record_sha256": record_sha256,
                    "opened": sum(1 for r in rows if r.status == "OPENED"),
                    "failed": sum(1 for r in rows if r.status != "OPENED"),
                },
            )
        log.info("tender.opened tender=%s record=%s", tender_id, record_sha256)
        return RecordView(tender_id, record_json.decode("utf-8"), record_sha256)

    def _open_one(
        self, access: TenderKeyAccess, tender_id: TenderId, tender_cert: bytes, ref: _BidRef
    ) -> BidRow:
        ctx = self._ctx
        with unit_of_work(ctx.engine) as session:
            now = ctx.clock.now()
            Repository(session).add_key_use(
                KeyUse(
                    tender_id=tender_id, bid_id=ref.id, operation=KeyOperation.DECRYPT_KEY, at=now
                )
            )
            ctx.audit.append(
                session,
                at=now,
                event="key.used",
                tender_id=tender_id,
                bid_id=ref.id,
                fields={"operation": "decrypt_key"},
            )
        outer_cert = verify_detached(
            ctx.blobs.path(ref.signature_blob).read_bytes(), bytes.fromhex(ref.envelope_sha256)
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
        try:
            opened = open_bid(ctx.blobs.path(ref.envelope_sha256), access, tender_cert, work)
        except _BID_FAULTS as exc:
            # A fault of this bid becomes its row. Anything else (token or storage down)
            # propagates: the opening stops, stores nothing and can be run again.
            return ref.row(status=_bid_status(exc), bidder=bidder, reason=exc.message)
        if opened.inner.signer_certificate_der != outer_cert:
            err = SignerMismatch("the package was signed by someone other than the bidder")
            return ref.row(status="SIGNER_MISMATCH", bidder=bidder, reason=err.message)
        form = opened.package.form
        if form.tender_id != tender_id:
            return ref.row(
                status="MALFORMED_PACKAGE",
                bidder=bidder,
                reason=f"bid.json names tender {form.tender_id!r}, not this tender",
            )
        return ref.row(
            status="OPENED",
            bidder=bidder,
            form=json.loads(form.to_json()),
            inner_signing_time=opened.inner.signing_time,
            package_sha256=opened.inner.content_digest.hex(),
            documents=tuple(
                DocumentEntry(d.name, d.size, d.sha256) for d in opened.package.documents
            ),
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
class _BidRef:
    """What the opening needs of a bid row, read once before the long-running loop."""

    id: str
    status: BidStatus
    log_sequence: int
    envelope_sha256: str
    size: int
    received_at: datetime
    signature_blob: str

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
            bid.outer_signature_blob,
        )
