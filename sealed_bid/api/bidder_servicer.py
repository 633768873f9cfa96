"""``BidderOpening`` on the public port: a tender's bidders watch its opening, respond to
its record and release their own bids' content keys, each request signed with the
certificate they bid with (no client certificate on this port). ``service.responses``
and ``service.key_release`` decide who is a bidder; this module only translates, and
bounds how many watch streams the public listener holds at once so that streams can
never take the threads submissions need.

It never logs more than ids, codes and counts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc

from sealed_bid.api import convert
from sealed_bid.api.servicers import guard
from sealed_bid.api.watch_servicer import POLL_SECONDS, start_watch, stream_events
from sealed_bid.errors import SealedBidError, Status
from sealed_bid.service.context import ServiceContext
from sealed_bid.service.key_release import KeyReleaseService
from sealed_bid.service.opening_events import Subscription
from sealed_bid.service.responses import BidderOpeningService
from sealed_bid.service.tenders import TenderService
from sealed_bid.v1 import sealed_bid_pb2 as pb
from sealed_bid.v1 import sealed_bid_pb2_grpc as rpc

MAX_BIDDER_WATCH_STREAMS = 16
"""Bidders' watch streams the public listener holds at once (it reserves a thread for
each, beside the threads for submissions)."""


class WatchersBusy(SealedBidError):
    """Every watch stream the public port reserves for bidders is in use."""

    code = "WATCHERS_BUSY"
    status = Status.RESOURCE_EXHAUSTED


class BidderOpening(rpc.BidderOpeningServicer):
    def __init__(
        self,
        ctx: ServiceContext,
        tenders: TenderService,
        responses: BidderOpeningService,
        key_release: KeyReleaseService,
        poll_seconds: float = POLL_SECONDS,
        max_streams: int = MAX_BIDDER_WATCH_STREAMS,
    ) -> None:
        self._ctx = ctx
        self._tenders = tenders
        self._responses = responses
        self._key_release = key_release
        self._poll = poll_seconds
        self._streams = threading.BoundedSemaphore(max_streams)

    def WatchAsBidder(
        self, request: pb.WatchAsBidderRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.OpeningEvent]:
        snapshot, subscription = guard(context, "WatchAsBidder", lambda: self._start(request))
        try:
            yield from stream_events(context, snapshot, subscription, self._poll)
        finally:
            self._streams.release()

    def _start(self, request: pb.WatchAsBidderRequest) -> tuple[pb.OpeningEvent, Subscription]:
        tender_id = self._responses.authorise_watch(request.signed_request)
        if not self._streams.acquire(blocking=False):
            raise WatchersBusy(
                "too many bidders are watching openings on this service; try again later"
            )
        try:
            snapshot, subscription = start_watch(self._ctx, self._tenders, tender_id)
        except BaseException:
            self._streams.release()
            raise
        # Not logged: before the opening, a count of bidders watching a tender would tell
        # a log reader how many bid.
        return snapshot, subscription

    def RespondToRecord(
        self, request: pb.RespondToRecordRequest, context: grpc.ServicerContext
    ) -> pb.OpeningResponse:
        return guard(
            context,
            "RespondToRecord",
            lambda: convert.response_message(self._responses.respond(request.signed_statement)),
        )

    def ReleaseContentKey(
        self, request: pb.ReleaseContentKeyRequest, context: grpc.ServicerContext
    ) -> pb.ReleaseContentKeyResponse:
        return guard(
            context,
            "ReleaseContentKey",
            lambda: pb.ReleaseContentKeyResponse(
                bid_id=self._key_release.release(request.signed_release), accepted=True
            ),
        )
