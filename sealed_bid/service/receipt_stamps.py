"""Time-stamping receipts without holding a lock across the network.

A receipt is signed inside the submission's (or withdrawal's) transaction and committed
with the bid; the TSA is asked only afterwards, outside every lock (on SQLite the
transaction holds the database's write lock, so a slow TSA would stall every writer).
The stamped receipt then replaces the unstamped one in a short second transaction,
with an audit entry. If the TSA cannot be reached the bid stands and the unstamped
receipt is returned; the next ``GetReceipt`` (or a resent submission) stamps it.

Never raises because of the TSA; never changes a receipt other than by adding the
signature time stamp (the platform's signature and content stay byte for byte).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Literal

from sealed_bid.domain.ids import TenderId
from sealed_bid.errors import TimestampInvalid, TimestampUnavailable
from sealed_bid.service.context import ServiceContext
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import Bid, Withdrawal
from sealed_bid.timestamping.cades import (
    add_unsigned_timestamp,
    signature_digest,
    signature_timestamp_of,
)

log = logging.getLogger("sealed_bid.receipts")

ReceiptKind = Literal["bid", "withdrawal"]


def stamped(
    ctx: ServiceContext, kind: ReceiptKind, row_id: str, tender_id: str, receipt_der: bytes
) -> bytes:
    """``receipt_der`` with the TSA's signature time stamp, stored in place of the
    unstamped receipt of row ``row_id``; the receipt unchanged when it is stamped already,
    no TSA is configured, or the TSA fails now."""
    if ctx.timestamps is None or signature_timestamp_of(receipt_der) is not None:
        return receipt_der
    try:
        token = ctx.timestamps.stamp(signature_digest(receipt_der))
    except (TimestampUnavailable, TimestampInvalid) as exc:
        log.warning("receipt.unstamped %s=%s code=%s", kind, row_id, exc.code)
        return receipt_der
    with_stamp = add_unsigned_timestamp(receipt_der, token.der)
    with unit_of_work(ctx.engine) as session:
        row: Bid | Withdrawal | None = (
            session.get(Bid, row_id) if kind == "bid" else session.get(Withdrawal, row_id)
        )
        if row is None or row.receipt_der != receipt_der:
            # Stamped meanwhile by another request: keep the stored one.
            return receipt_der if row is None else bytes(row.receipt_der)
        row.receipt_der = with_stamp
        ctx.audit.append(
            session,
            at=ctx.clock.now(),
            event="receipt.time_stamped",
            tender_id=TenderId(tender_id),
            bid_id=row.bid_id if isinstance(row, Withdrawal) else row.id,
            fields={
                "kind": kind,
                "tsa_gen_time": token.gen_time.isoformat(),
                "tsa_token_sha256": hashlib.sha256(token.der).hexdigest(),
            },
        )
    return with_stamp
