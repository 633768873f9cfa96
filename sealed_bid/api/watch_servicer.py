"""``OpeningWatch``: the live view of one tender's opening on the operator port, for the
opening-room console (OU=operator) and read-only observers (OU=observer).

A stream is a snapshot of the tender (no bid count, no bidder) followed by the events of
``ServiceContext.events`` for that tender, converted to messages, until the client
cancels (``start_watch`` and ``stream_events``, which ``bidder_servicer`` shares). This
module only reads: it never opens, never touches a key or a share, and never logs more
than the tender id and the caller's role.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import cast

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from sealed_bid.api import convert
from sealed_bid.api.servicers import guard
from sealed_bid.errors import OperatorRequired
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.opening_events import (
    BidOpenedEvent,
    FailedEvent,
    FinishedEvent,
    Published,
    ResponseEvent,
    SharePresentedEvent,
    Subscription,
    SubscriptionDropped,
    TimeProvenEvent,
)
from sealed_bid.service.tenders import TenderService
from sealed_bid.v1 import sealed_bid_pb2 as pb
from sealed_bid.v1 import sealed_bid_pb2_grpc as rpc

log = logging.getLogger("sealed_bid.api")

WATCH_ROLES = ("operator", "observer")
"""Certificate OUs that may watch an opening."""
POLL_SECONDS = 0.25
"""How often a stream with nothing to send checks that its client is still there."""
MAX_WATCH_STREAMS = 16
"""Streams the operator listener reserves threads for (each open stream holds one)."""

_STATES = {"accepting": pb.TENDER_STATE_ACCEPTING, "opened": pb.TENDER_STATE_OPENED}


def watcher_role(context: grpc.ServicerContext) -> str:
    """The caller's role (``operator`` or ``observer``) from its verified TLS client
    certificate, or raise OperatorRequired."""
    # grpc-stubs types the values as bytes; grpcio really returns a list of bytes.
    auth = cast("Mapping[str, Sequence[bytes]]", context.auth_context())
    pems = list(auth.get("x509_pem_cert", ()))
    if not pems:
        raise OperatorRequired("watching an opening needs an operator or observer certificate")
    cert = x509.load_pem_x509_certificate(pems[0])
    units = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    role = next((r for r in WATCH_ROLES if r in units), None)
    if role is None:
        raise OperatorRequired(
            "the client certificate carries neither the operator nor the observer role"
        )
    return role


def event_message(event: Published) -> pb.OpeningEvent:
    message = pb.OpeningEvent(seq=event.seq, at=convert.timestamp(event.at))
    body = event.body
    if isinstance(body, SharePresentedEvent):
        message.share_presented.CopyFrom(
            pb.SharePresented(
                index=body.index,
                subject=body.subject,
                presented=body.presented,
                threshold=body.threshold,
            )
        )
    elif isinstance(body, TimeProvenEvent):
        message.time_proven.CopyFrom(
            pb.TimeProven(
                tsa_time=convert.timestamp(body.tsa_time),
                tsa_token_sha256=body.tsa_token_sha256,
            )
        )
    elif isinstance(body, BidOpenedEvent):
        message.bid_opened.CopyFrom(
            pb.BidOpened(
                bid_id=body.bid_id,
                status=body.status,
                position=body.position,
                total=body.total,
                bidder=body.bidder,
            )
        )
    elif isinstance(body, FinishedEvent):
        message.finished.CopyFrom(
            pb.OpeningFinished(
                record=pb.OpeningRecord(
                    tender_id=event.tender_id,
                    record_json=body.record_json,
                    record_sha256=body.record_sha256,
                )
            )
        )
    elif isinstance(body, FailedEvent):
        message.failed.CopyFrom(pb.OpeningFailed(code=body.code, message=body.message))
    elif isinstance(body, ResponseEvent):
        message.response.CopyFrom(convert.response_message(body.response))
    return message


def start_watch(
    ctx: ServiceContext, tenders: TenderService, tender_id: str
) -> tuple[pb.OpeningEvent, Subscription]:
    """The snapshot of the tender and a subscription to its events (close it)."""
    view = tenders.get(tender_id)
    # Subscribe before reading the snapshot: an event in between is replayed rather
    # than lost (the console applies events idempotently).
    subscription = ctx.events.subscribe(view.tender_id)
    try:
        policy = view.unlock_policy
        presented = sorted(p.officer_index for p in ctx.shares.presented(view.tender_id))
        snapshot = pb.OpeningEvent(
            seq=0,
            at=convert.timestamp(ctx.clock.now()),
            snapshot=pb.OpeningSnapshot(
                tender_id=view.tender_id,
                title=view.title,
                state=_STATES.get(view.state, pb.TENDER_STATE_UNSPECIFIED),
                opening_time=convert.timestamp(view.opening_time),
                unlock_kind=policy.kind,
                threshold=policy.threshold,
                officers=[
                    pb.Officer(
                        index=o.index,
                        subject=o.subject,
                        certificate_sha256=o.certificate_sha256,
                    )
                    for o in policy.officers
                ],
                presented_indices=presented,
            ),
        )
    except BaseException:
        subscription.close()
        raise
    return snapshot, subscription


def stream_events(
    context: grpc.ServicerContext,
    snapshot: pb.OpeningEvent,
    subscription: Subscription,
    poll_seconds: float = POLL_SECONDS,
) -> Iterator[pb.OpeningEvent]:
    """The snapshot, then each event until the client cancels; releases the
    subscription however the stream ends."""
    # Ended by the client (or the server stopping): release the subscription at once,
    # not only when this generator notices.
    context.add_callback(subscription.close)
    try:
        yield snapshot
        while context.is_active() and not subscription.closed:
            try:
                event = subscription.next(poll_seconds)
            except SubscriptionDropped:
                # Ending the stream tells the client to watch again (and replay).
                log.info("watch.dropped tender=%s", subscription.tender_id)
                return
            if event is not None:
                yield event_message(event)
    finally:
        subscription.close()


class OpeningWatch(rpc.OpeningWatchServicer):
    def __init__(
        self, ctx: ServiceContext, tenders: TenderService, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._ctx = ctx
        self._tenders = tenders
        self._poll = poll_seconds

    def WatchOpening(
        self, request: pb.WatchOpeningRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.OpeningEvent]:
        snapshot, subscription = guard(
            context, "WatchOpening", lambda: self._start(request, context)
        )
        yield from stream_events(context, snapshot, subscription, self._poll)

    def _start(
        self, request: pb.WatchOpeningRequest, context: grpc.ServicerContext
    ) -> tuple[pb.OpeningEvent, Subscription]:
        role = watcher_role(context)
        snapshot, subscription = start_watch(self._ctx, self._tenders, request.tender_id)
        log.info("watch.started tender=%s role=%s", subscription.tender_id, role)
        return snapshot, subscription
