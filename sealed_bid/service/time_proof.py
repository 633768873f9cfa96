"""Proving that the opening time has come: a time-stamping authority's token over the
opening request, checked and stored before any tender key is used under it.

The local clock only decides whether to *ask*; the TSA's genTime decides whether the key
may be used. A clock set ahead (or a host whose time was moved) therefore cannot open
early: the TSA answers with its own time and the opening is refused with
OPENING_TIME_NOT_PROVEN. Never uses a tender key and never decides anything from the
local clock alone.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sealed_bid.domain.canonical import canonical_json, format_time
from sealed_bid.domain.ids import TenderId
from sealed_bid.errors import OpeningTimeNotProven
from sealed_bid.service.context import ServiceContext
from sealed_bid.storage.custody_models import OpeningProof
from sealed_bid.storage.db import unit_of_work

log = logging.getLogger("sealed_bid.time_proof")

REQUEST_FORMAT = "sealed-bid/opening-request/v1"


@dataclass(frozen=True)
class TimeProof:
    """A stored, verified time stamp showing that ``gen_time`` >= the opening time."""

    proof_id: int
    tender_id: TenderId
    gen_time: datetime
    request_json: str
    request_sha256: str
    token_der: bytes

    @property
    def token_sha256(self) -> str:
        return hashlib.sha256(self.token_der).hexdigest()


def prove_opening_time(
    ctx: ServiceContext,
    tender_id: TenderId,
    opening_time: datetime,
    operator: str,
    officers: Sequence[str],
) -> TimeProof:
    """Ask the TSA for a token over this opening request; refuse with
    ``OpeningTimeNotProven`` if none is configured or its genTime is before
    ``opening_time``. The proof and an audit entry are committed before returning."""
    if ctx.timestamps is None:
        raise OpeningTimeNotProven(
            "no time-stamping authority is configured (tsa_url); the opening time cannot"
            " be proven, so no tender key is used",
            tender_id=tender_id,
        )
    requested_at = ctx.clock.now()
    request_json = canonical_json(
        {
            "format": REQUEST_FORMAT,
            "tender_id": tender_id,
            "opening_time": format_time(opening_time),
            "requested_at": format_time(requested_at),
            "operator": operator,
            "officers": sorted(officers),
        }
    )
    request_sha256 = hashlib.sha256(request_json).digest()
    token = ctx.timestamps.stamp(request_sha256)
    if token.gen_time < opening_time:
        log.warning(
            "opening.refused tender=%s tsa_time=%s local_time=%s",
            tender_id,
            token.gen_time.isoformat(),
            requested_at.isoformat(),
        )
        raise OpeningTimeNotProven(
            f"the time-stamping authority says it is {token.gen_time.isoformat()}, before the"
            f" opening time {opening_time.isoformat()}; the local clock"
            f" ({requested_at.isoformat()}) is not trusted for this",
            tender_id=tender_id,
        )
    with unit_of_work(ctx.engine) as session:
        row = OpeningProof(
            tender_id=tender_id,
            requested_at=requested_at,
            request_json=request_json.decode("utf-8"),
            request_sha256=request_sha256.hex(),
            gen_time=token.gen_time,
            tsa_token_der=token.der,
            token_sha256=hashlib.sha256(token.der).hexdigest(),
        )
        session.add(row)
        session.flush()
        ctx.audit.append(
            session,
            at=requested_at,
            event="opening.time_proven",
            tender_id=tender_id,
            bid_id=None,
            fields={
                "operator": operator,
                "tsa_gen_time": token.gen_time.isoformat(),
                "request_sha256": request_sha256.hex(),
                "tsa_token_sha256": row.token_sha256,
                "officers": ",".join(sorted(officers)),
            },
        )
        proof_id = row.id
    return TimeProof(
        proof_id=proof_id,
        tender_id=tender_id,
        gen_time=token.gen_time,
        request_json=request_json.decode("utf-8"),
        request_sha256=request_sha256.hex(),
        token_der=token.der,
    )
