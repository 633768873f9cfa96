"""The live events of tender openings, per tender, in this process's memory only.

The opening and the share ceremony publish what happens (a share presented, the opening
time proven, each bid opened, the record finished, an attempt failed) and, after the
record, each bidder's response to it; watchers (the opening-room console, observers,
the tender's bidders) subscribe and first receive what this process has seen of the
tender, then each new event.

This module owns ordering (``seq`` per tender, from 1) and delivery. It must never block a
publisher: a subscriber that falls too far behind is dropped and told so when it reads.
It must never carry anything secret: no share, no PIN, no key material; before the
opening nothing here names a bidder or counts bids (the publishers only publish opening
events once the opening runs; responses exist only after the record). Nothing is
persisted.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from sealed_bid.domain.opening_response import ReceivedResponse

HISTORY_LIMIT = 10_000
"""Events kept per tender for subscribers that arrive late."""
QUEUE_LIMIT = 1_000
"""Live events a subscriber may have unread before it is dropped."""


@dataclass(frozen=True)
class SharePresentedEvent:
    index: int
    subject: str
    presented: int
    threshold: int


@dataclass(frozen=True)
class TimeProvenEvent:
    tsa_time: datetime
    tsa_token_sha256: str


@dataclass(frozen=True)
class BidOpenedEvent:
    bid_id: str
    status: str
    position: int
    total: int
    bidder: str


@dataclass(frozen=True)
class FinishedEvent:
    record_json: str
    record_sha256: str


@dataclass(frozen=True)
class FailedEvent:
    code: str
    message: str


@dataclass(frozen=True)
class ResponseEvent:
    """A bidder confirmed or objected to the record (``service.responses``)."""

    response: ReceivedResponse


OpeningEventBody = (
    SharePresentedEvent
    | TimeProvenEvent
    | BidOpenedEvent
    | FinishedEvent
    | FailedEvent
    | ResponseEvent
)


@dataclass(frozen=True)
class Published:
    tender_id: str
    seq: int
    """Per tender and process, from 1, without gaps."""
    at: datetime
    body: OpeningEventBody


class SubscriptionDropped(Exception):
    """The subscriber fell more than its queue limit behind and was dropped; it has read
    every event it was sent. Subscribe again to replay the history."""


class Subscription:
    """One watcher of one tender: the history at subscription time, then live events.
    Use as a context manager, or call ``close()``."""

    def __init__(
        self, hub: OpeningEvents, tender_id: str, backlog: list[Published], limit: int
    ) -> None:
        self._hub = hub
        self.tender_id = tender_id
        self._limit = limit
        self._ready = threading.Condition(threading.Lock())
        self._backlog: deque[Published] = deque(backlog)
        self._live: deque[Published] = deque()
        self._dropped = False
        self._closed = False

    @property
    def closed(self) -> bool:
        with self._ready:
            return self._closed

    def next(self, timeout: float) -> Published | None:
        """The next event, waiting at most ``timeout`` seconds; None if none came or the
        subscription is closed. Raises ``SubscriptionDropped`` once the events received
        before the drop have been read."""
        with self._ready:
            if not self._backlog and not self._live and not self._dropped and not self._closed:
                self._ready.wait(timeout)
            if self._backlog:
                return self._backlog.popleft()
            if self._live:
                return self._live.popleft()
            if self._dropped and not self._closed:
                raise SubscriptionDropped(
                    f"this watcher of {self.tender_id} fell behind and was dropped"
                )
            return None

    def close(self) -> None:
        self._hub._remove(self)
        with self._ready:
            self._closed = True
            self._backlog.clear()
            self._live.clear()
            self._ready.notify_all()

    def _offer(self, event: Published) -> bool:
        """Queue a live event; False (and the subscription dropped) when it is full."""
        with self._ready:
            if self._closed:
                return False
            if len(self._live) >= self._limit:
                self._dropped = True
                self._ready.notify_all()
                return False
            self._live.append(event)
            self._ready.notify_all()
            return True

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class OpeningEvents:
    """The hub: thread-safe; publishing never waits for a subscriber."""

    def __init__(self, history_limit: int = HISTORY_LIMIT, queue_limit: int = QUEUE_LIMIT) -> None:
        self._lock = threading.Lock()
        self._history_limit = history_limit
        self._queue_limit = queue_limit
        self._history: dict[str, deque[Published]] = {}
        self._seq: dict[str, int] = {}
        self._subscribers: dict[str, list[Subscription]] = {}

    def publish(self, tender_id: str, at: datetime, body: OpeningEventBody) -> Published:
        with self._lock:
            seq = self._seq.get(tender_id, 0) + 1
            self._seq[tender_id] = seq
            event = Published(tender_id, seq, at, body)
            history = self._history.get(tender_id)
            if history is None:
                history = self._history[tender_id] = deque(maxlen=self._history_limit)
            history.append(event)
            subscribers = self._subscribers.get(tender_id, [])
            kept = [s for s in subscribers if s._offer(event)]
            if len(kept) != len(subscribers):
                self._subscribers[tender_id] = kept
            return event

    def subscribe(self, tender_id: str) -> Subscription:
        with self._lock:
            backlog = list(self._history.get(tender_id, ()))
            subscription = Subscription(self, tender_id, backlog, self._queue_limit)
            self._subscribers.setdefault(tender_id, []).append(subscription)
            return subscription

    def subscriber_count(self, tender_id: str) -> int:
        with self._lock:
            return len(self._subscribers.get(tender_id, ()))

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            subscribers = self._subscribers.get(subscription.tender_id, [])
            if subscription in subscribers:
                subscribers.remove(subscription)
