"""What the console shows, as plain data: one tender's opening as the service reported it
on the ``WatchOpening`` stream, and the texts of the tender list (unlock kind, countdown).

Pure: no widgets, no network, no clock of its own (the caller passes "now"). It must
never invent what the service did not say: no bid count and no bidder before the service
reports bids opened, and no time proof but the TSA's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from sealed_bid.v1 import sealed_bid_pb2 as pb

CLOCK_NOTE = "countdown by this machine's clock; the service proves the time with its TSA"
STATE_NAMES: dict[int, str] = {
    pb.TENDER_STATE_ACCEPTING: "accepting",
    pb.TENDER_STATE_OPENED: "opened",
}


def state_name(state: int) -> str:
    return STATE_NAMES.get(state, "unknown")


def as_datetime(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def unlock_label(kind: str, threshold: int, total: int) -> str:
    """``scheduled`` or ``quorum K/N``."""
    if kind == "quorum":
        return f"quorum {threshold}/{total}"
    return kind or "scheduled"


def countdown(opening_time: datetime, now: datetime) -> str:
    """``in 01:29:58`` (``in 2d 03:04:05``) before the opening time, ``due`` after."""
    left = opening_time - now
    if left <= timedelta(0):
        return "due"
    seconds = int(left.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"in {days}d {clock}" if days else f"in {clock}"


@dataclass
class OfficerLine:
    index: int
    subject: str
    presented: bool = False


@dataclass(frozen=True)
class BidLine:
    position: int
    total: int
    bid_id: str
    bidder: str
    status: str


@dataclass(frozen=True)
class RecordSummary:
    sha256: str
    rows: int
    opened: int
    not_opened: int

    @classmethod
    def of(cls, record_json: str, record_sha256: str) -> RecordSummary:
        data = json.loads(record_json)
        bids = data.get("bids") or []
        return cls(
            sha256=record_sha256,
            rows=len(bids),
            opened=sum(1 for b in bids if b.get("status") == "OPENED"),
            not_opened=len(data.get("not_opened") or []),
        )


def record_bid_lines(record_json: str) -> list[BidLine]:
    """The bids of a record, for a console that missed the opening's events."""
    bids = json.loads(record_json).get("bids") or []
    lines = []
    for position, bid in enumerate(bids, start=1):
        bidder = bid.get("bidder") or {}
        name = bidder.get("organisation") or bidder.get("common_name") or "?"
        lines.append(BidLine(position, len(bids), bid["bid_id"], name, bid["status"]))
    return lines


@dataclass
class OpeningState:
    """One tender's opening: the last snapshot plus the events applied since."""

    tender_id: str
    title: str = ""
    state: str = "unknown"
    opening_time: datetime | None = None
    unlock_kind: str = ""
    threshold: int = 0
    officers: dict[int, OfficerLine] = field(default_factory=dict)
    presented: int = 0
    tsa_time: datetime | None = None
    tsa_token_sha256: str = ""
    bids: dict[str, BidLine] = field(default_factory=dict)
    record: RecordSummary | None = None
    snapshot_seen: bool = False

    @property
    def finished(self) -> bool:
        return self.record is not None

    def apply(self, event: pb.OpeningEvent) -> str:
        """Apply one event (idempotently: a replay changes nothing); return the log line."""
        kind = event.WhichOneof("event")
        if kind == "snapshot":
            return self._snapshot(event.snapshot)
        if kind == "share_presented":
            e = event.share_presented
            line = self.officers.get(e.index)
            if line is None:
                line = self.officers[e.index] = OfficerLine(e.index, e.subject)
            line.presented = True
            self.threshold = e.threshold or self.threshold
            self.presented = max(e.presented, self._presented_count())
            return f"#{event.seq} share presented by officer {e.index} ({e.subject}):" + (
                f" {e.presented}/{e.threshold}"
            )
        if kind == "time_proven":
            self.tsa_time = as_datetime(event.time_proven.tsa_time)
            self.tsa_token_sha256 = event.time_proven.tsa_token_sha256
            return f"#{event.seq} opening time proven by the TSA: {format_time(self.tsa_time)}"
        if kind == "bid_opened":
            b = event.bid_opened
            self.bids[b.bid_id] = BidLine(b.position, b.total, b.bid_id, b.bidder, b.status)
            return f"#{event.seq} bid {b.position}/{b.total} {b.bid_id}: {b.status}"
        if kind == "finished":
            r = event.finished.record
            self.record = RecordSummary.of(r.record_json, r.record_sha256)
            self.state = "opened"
            return f"#{event.seq} opening finished: record sha256 {r.record_sha256}"
        if kind == "failed":
            failed = event.failed
            return f"#{event.seq} opening attempt failed: {failed.code}: {failed.message}"
        return f"#{event.seq} (an event this console does not know)"

    def adopt_record(self, record: pb.OpeningRecord) -> None:
        """Show a record fetched after the fact (the events were before this process)."""
        if self.record is not None:
            return
        self.record = RecordSummary.of(record.record_json, record.record_sha256)
        if not self.bids:
            self.bids = {b.bid_id: b for b in record_bid_lines(record.record_json)}

    def bid_lines(self) -> list[BidLine]:
        return sorted(self.bids.values(), key=lambda b: (b.position, b.bid_id))

    def _presented_count(self) -> int:
        return sum(1 for o in self.officers.values() if o.presented)

    def _snapshot(self, s: pb.OpeningSnapshot) -> str:
        """A (re)connected stream starts over: what follows replays this process's events."""
        self.tender_id = s.tender_id
        self.title = s.title
        self.state = state_name(s.state)
        self.opening_time = as_datetime(s.opening_time)
        self.unlock_kind = s.unlock_kind or "scheduled"
        self.threshold = s.threshold
        self.officers = {o.index: OfficerLine(o.index, o.subject) for o in s.officers}
        for index in s.presented_indices:
            self.officers.setdefault(index, OfficerLine(index, "?")).presented = True
        self.presented = self._presented_count()
        self.tsa_time = None
        self.tsa_token_sha256 = ""
        self.bids = {}
        self.record = None
        self.snapshot_seen = True
        unlock = unlock_label(self.unlock_kind, self.threshold, len(s.officers))
        return f"watching {s.tender_id}: {self.state}, unlock {unlock}"
