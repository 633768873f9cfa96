"""The opening-event hub: per-tender order and numbering, replay for late subscribers,
bounded queues (a slow subscriber is dropped, publishers never wait), thread safety."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from sealed_bid.service.opening_events import (
    BidOpenedEvent,
    FailedEvent,
    FinishedEvent,
    OpeningEventBody,
    OpeningEvents,
    Published,
    SharePresentedEvent,
    SubscriptionDropped,
    TimeProvenEvent,
)

AT = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def bid(position: int, total: int = 3) -> BidOpenedEvent:
    return BidOpenedEvent(f"B-{position}", "OPENED", position, total, f"Bidder {position}")


def drain(subscription_next: Callable[[float], Published | None], count: int) -> list[Published]:
    events = []
    for _ in range(count):
        event = subscription_next(5.0)
        assert event is not None
        events.append(event)
    return events


def test_events_are_numbered_per_tender_from_one_and_delivered_in_order() -> None:
    hub = OpeningEvents()
    bodies: list[OpeningEventBody] = [
        SharePresentedEvent(1, "CN=Officer One", 1, 2),
        SharePresentedEvent(2, "CN=Officer Two", 2, 2),
        TimeProvenEvent(AT, "ab" * 32),
        bid(1),
        bid(2),
        FinishedEvent('{"bids":[]}', "cd" * 32),
    ]
    with hub.subscribe("T-1") as sub:
        published = [hub.publish("T-1", AT + timedelta(seconds=i), b) for i, b in enumerate(bodies)]
        received = drain(sub.next, len(bodies))
        assert sub.next(0.01) is None
    assert [p.seq for p in published] == [1, 2, 3, 4, 5, 6]
    assert received == published
    assert [r.body for r in received] == bodies
    assert all(r.tender_id == "T-1" for r in received)


def test_a_late_subscriber_replays_the_history_then_gets_live_events() -> None:
    hub = OpeningEvents()
    early = [hub.publish("T-1", AT, bid(i)) for i in (1, 2)]
    with hub.subscribe("T-1") as sub:
        live = hub.publish("T-1", AT, FinishedEvent("{}", "00" * 32))
        assert drain(sub.next, 3) == [*early, live]


def test_history_is_bounded_and_keeps_the_latest() -> None:
    hub = OpeningEvents(history_limit=3)
    for i in range(1, 6):
        hub.publish("T-1", AT, bid(i, 5))
    with hub.subscribe("T-1") as sub:
        assert [e.seq for e in drain(sub.next, 3)] == [3, 4, 5]
        assert sub.next(0.01) is None


def test_tenders_are_isolated() -> None:
    hub = OpeningEvents()
    with hub.subscribe("T-1") as one, hub.subscribe("T-2") as two:
        hub.publish("T-1", AT, bid(1))
        hub.publish("T-2", AT, FailedEvent("NOT_YET_OPEN", "too early"))
        hub.publish("T-1", AT, bid(2))
        assert [(e.tender_id, e.seq) for e in drain(one.next, 2)] == [("T-1", 1), ("T-1", 2)]
        assert [(e.tender_id, e.seq, e.body) for e in drain(two.next, 1)] == [
            ("T-2", 1, FailedEvent("NOT_YET_OPEN", "too early"))
        ]
        assert one.next(0.01) is None and two.next(0.01) is None


def test_a_slow_subscriber_is_dropped_without_blocking_the_publisher() -> None:
    hub = OpeningEvents(queue_limit=4)
    with hub.subscribe("T-1") as slow, hub.subscribe("T-1") as keen:
        done = threading.Event()

        def publish_many() -> None:
            for i in range(1, 11):
                hub.publish("T-1", AT, bid(i, 10))
                assert keen.next(5.0) is not None  # keeps up
            done.set()

        publisher = threading.Thread(target=publish_many)
        publisher.start()
        assert done.wait(10), "publishing waited for a subscriber that does not read"
        publisher.join()
        assert hub.subscriber_count("T-1") == 1
        # It reads what it was sent before it fell behind, then learns it was dropped.
        assert [e.seq for e in drain(slow.next, 4)] == [1, 2, 3, 4]
        with pytest.raises(SubscriptionDropped):
            slow.next(0.01)
        # The keen one goes on.
        hub.publish("T-1", AT, bid(11, 11))
        event = keen.next(5.0)
        assert event is not None and event.seq == 11


def test_a_dropped_subscriber_may_subscribe_again_and_replay() -> None:
    hub = OpeningEvents(queue_limit=1)
    sub = hub.subscribe("T-1")
    for i in (1, 2, 3):
        hub.publish("T-1", AT, bid(i))
    assert [e.seq for e in drain(sub.next, 1)] == [1]
    with pytest.raises(SubscriptionDropped):
        sub.next(0.01)
    sub.close()
    with hub.subscribe("T-1") as again:
        assert [e.seq for e in drain(again.next, 3)] == [1, 2, 3]


def test_close_unsubscribes_and_wakes_a_waiting_reader() -> None:
    hub = OpeningEvents()
    sub = hub.subscribe("T-1")
    assert hub.subscriber_count("T-1") == 1
    woke = threading.Event()

    def wait() -> None:
        sub.next(30.0)
        woke.set()

    reader = threading.Thread(target=wait)
    reader.start()
    sub.close()
    assert woke.wait(10)
    reader.join()
    assert sub.closed and hub.subscriber_count("T-1") == 0
    hub.publish("T-1", AT, bid(1))
    assert sub.next(0.01) is None


def test_concurrent_publishers_give_unique_gapless_numbers_seen_in_order() -> None:
    threads, per_thread = 8, 250
    total = threads * per_thread
    hub = OpeningEvents(queue_limit=total)
    with hub.subscribe("T-1") as sub:
        received: list[Published] = []
        reader_done = threading.Event()

        def read() -> None:
            while len(received) < total:
                event = sub.next(10.0)
                if event is None:
                    break
                received.append(event)
            reader_done.set()

        reader = threading.Thread(target=read)
        reader.start()
        start = threading.Barrier(threads)

        def publish(worker: int) -> None:
            start.wait()
            for i in range(per_thread):
                hub.publish("T-1", AT, FailedEvent(f"W{worker}", str(i)))

        publishers = [threading.Thread(target=publish, args=(w,)) for w in range(threads)]
        for t in publishers:
            t.start()
        for t in publishers:
            t.join()
        assert reader_done.wait(30)
        reader.join()
    assert [e.seq for e in received] == list(range(1, total + 1))
    for worker in range(threads):
        mine = [e.body for e in received if isinstance(e.body, FailedEvent)]
        assert [b.message for b in mine if b.code == f"W{worker}"] == [
            str(i) for i in range(per_thread)
        ]
