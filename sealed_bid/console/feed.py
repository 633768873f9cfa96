"""Reading one tender's ``WatchOpening`` stream on a background thread.

``OpeningFeed.run`` blocks (it is the body of a thread worker) and hands every event and
every note about the stream to callbacks, which must be thread-safe (the console posts
them to the UI thread). When the service ends a stream (a watcher that fell behind is
dropped) or the connection breaks, it watches again after a pause: the new stream starts
with a snapshot and replays what the service saw, so nothing is lost. A refusal that
cannot change by waiting (no operator/observer role, unknown tender) ends it. ``stop()``
from any thread ends it promptly. It never calls anything but ``watch_opening``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.client.client import OpeningStream
from sealed_bid.v1 import sealed_bid_pb2 as pb

RETRY_SECONDS = 2.0
FINAL_CODES = frozenset({"OPERATOR_REQUIRED", "TENDER_NOT_FOUND", "GRPC_UNIMPLEMENTED"})


def refusal_text(exc: ServiceError) -> str:
    """``CODE (STATUS): message`` without the code twice."""
    message = exc.message.removeprefix(f"{exc.code}: ")
    return f"{exc.code} ({exc.status}): {message}"


class OpeningFeed:
    def __init__(
        self, client: SealedBidClient, tender_id: str, retry_seconds: float = RETRY_SECONDS
    ) -> None:
        self._client = client
        self.tender_id = tender_id
        self._retry = retry_seconds
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: OpeningStream | None = None

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def run(
        self,
        on_event: Callable[[pb.OpeningEvent], object],
        on_note: Callable[[str], object],
    ) -> None:
        while not self._stopped.is_set():
            stream = self._client.watch_opening(self.tender_id)
            with self._lock:
                if self._stopped.is_set():
                    stream.cancel()
                    return
                self._stream = stream
            try:
                for event in stream:
                    on_event(event)
            except ServiceError as exc:
                if self._stopped.is_set():
                    return
                on_note(f"watch refused: {refusal_text(exc)}")
                if exc.code in FINAL_CODES:
                    return
            else:
                if self._stopped.is_set():
                    return
                on_note("the service ended the stream")
            finally:
                stream.cancel()
            on_note(f"watching again in {self._retry:g} s")
            self._stopped.wait(self._retry)

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            if self._stream is not None:
                self._stream.cancel()
