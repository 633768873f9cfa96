"""The opening view of one tender: officers and their shares, the TSA's proof of the
opening time, the bids as the service opens them, the record when it is finished, the
bidders' confirmations and objections after it, and a log of everything the stream and
this console's requests reported.

Everything shown comes from the service's ``WatchOpening`` stream (read on a thread by
``OpeningFeed``) or from the answers to this console's own requests; the countdown is
this machine's clock, for display only. Before the opening nothing here counts bids or
names a bidder, because the service sends neither. Never logs or shows shares or PINs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Log, Static

from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.console.feed import OpeningFeed, refusal_text
from sealed_bid.console.model import (
    CLOCK_NOTE,
    BidLine,
    OpeningState,
    countdown,
    format_time,
    unlock_label,
)
from sealed_bid.domain.opening_response import describe_response
from sealed_bid.v1 import sealed_bid_pb2 as pb

PRESENTED = "✓"
NOT_PRESENTED = "\N{EN DASH}"


class FeedEvent(Message):
    def __init__(self, event: pb.OpeningEvent) -> None:
        super().__init__()
        self.event = event


class Note(Message):
    """A line for the log pane, from a background thread."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class RecordFetched(Message):
    def __init__(self, record: pb.OpeningRecord) -> None:
        super().__init__()
        self.record = record


class OpeningScreen(Screen[None]):
    DEFAULT_CSS = """
    OpeningScreen #facts { height: auto; }
    OpeningScreen #facts Static { width: 1fr; padding: 0 1; }
    OpeningScreen #tender { padding: 0 1; text-style: bold; }
    OpeningScreen #tables { height: 3fr; min-height: 8; }
    OpeningScreen #officers { width: 1fr; height: 100%; border: round $secondary; }
    OpeningScreen #bids { width: 1fr; height: 100%; border: round $secondary; }
    OpeningScreen #record { padding: 0 1; }
    OpeningScreen #log { height: 2fr; min-height: 6; border-top: solid $secondary; }
    OpeningScreen #note { padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open_tender", "Open"),
        Binding("r", "refresh", "Refresh"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(
        self, client: SealedBidClient, tender_id: str, clock: Callable[[], datetime]
    ) -> None:
        super().__init__()
        self._client = client
        self._clock = clock
        self.tender_id = tender_id
        self.opening = OpeningState(tender_id)
        self._feed: OpeningFeed | None = None
        self._bid_rows: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.tender_id, id="tender")
        with Horizontal(id="facts"):
            yield Static("", id="clock")
            yield Static("", id="shares")
            yield Static("TSA time: not proven yet", id="tsa")
        with Horizontal(id="tables"):
            yield DataTable(id="officers", cursor_type="none")
            yield DataTable(id="bids", cursor_type="row", zebra_stripes=True)
        yield Static("record: not yet", id="record")
        yield Log(id="log", max_lines=2000)
        yield Static(CLOCK_NOTE, id="note")
        yield Footer()

    def on_mount(self) -> None:
        officers = self.query_one("#officers", DataTable)
        officers.border_title = "officers"
        officers.add_column("#", key="index")
        officers.add_column("share", key="presented")
        officers.add_column("officer", key="subject")
        bids = self.query_one("#bids", DataTable)
        bids.border_title = "bids (shown as the service opens them)"
        bids.add_column("#", key="position")
        bids.add_column("bid id", key="bid_id")
        bids.add_column("bidder", key="bidder")
        bids.add_column("status", key="status")
        self._render_facts()
        self.set_interval(1.0, self._render_clock)
        self._watch()

    def on_unmount(self) -> None:
        if self._feed is not None:
            self._feed.stop()

    # --- the stream -------------------------------------------------------------------
    def _watch(self) -> None:
        if self._feed is not None:
            self._feed.stop()
        feed = self._feed = OpeningFeed(self._client, self.tender_id)
        self.run_worker(
            lambda: feed.run(
                lambda e: self.post_message(FeedEvent(e)),
                lambda text: self.post_message(Note(text)),
            ),
            name=f"watch {self.tender_id}",
            group="feed",
            exclusive=True,
            thread=True,
        )

    @on(FeedEvent)
    def _on_feed_event(self, message: FeedEvent) -> None:
        event = message.event
        kind = event.WhichOneof("event")
        if kind == "response":
            r = event.response
            self.write_log(
                f"#{event.seq} {describe_response(r.bidder, r.bid_id, r.verdict, r.text)}"
            )
            return
        self.write_log(self.opening.apply(event))
        if kind == "snapshot":
            self._reset_tables()
            if self.opening.state == "opened":
                self.run_worker(self._fetch_record, thread=True, group="record")
        elif kind == "bid_opened":
            self._show_bid(self.opening.bids[event.bid_opened.bid_id])
        self._render_facts()

    @on(Note)
    def _on_note(self, message: Note) -> None:
        self.write_log(message.text)

    def _fetch_record(self) -> None:
        try:
            record = self._client.get_record(self.tender_id)
        except ServiceError as exc:
            self.post_message(Note(f"record: {refusal_text(exc)}"))
        else:
            self.post_message(RecordFetched(record))

    @on(RecordFetched)
    def _on_record(self, message: RecordFetched) -> None:
        if self.opening.record is None:
            self.opening.adopt_record(message.record)
            for line in self.opening.bid_lines():
                self._show_bid(line)
            self._render_facts()

    # --- actions ----------------------------------------------------------------------
    def action_open_tender(self) -> None:
        self.write_log(f"asking the service to open {self.tender_id}")
        self.run_worker(self._open, thread=True, group="open")

    def _open(self) -> None:
        try:
            record = self._client.open_tender(self.tender_id)
        except ServiceError as exc:
            self.post_message(Note(f"open refused: {refusal_text(exc)}"))
        else:
            self.post_message(Note(f"opened: record sha256 {record.record_sha256}"))
            self.post_message(RecordFetched(record))

    def action_refresh(self) -> None:
        self.write_log("watching again")
        self._watch()

    def action_back(self) -> None:
        self.app.pop_screen()

    # --- rendering --------------------------------------------------------------------
    def write_log(self, text: str) -> None:
        stamp = self._clock().strftime("%H:%M:%S")
        self.query_one("#log", Log).write_line(f"{stamp} {text}")

    def _reset_tables(self) -> None:
        self.query_one("#bids", DataTable).clear()
        self._bid_rows.clear()
        for line in self.opening.bid_lines():
            self._show_bid(line)

    def _show_bid(self, line: BidLine) -> None:
        table = self.query_one("#bids", DataTable)
        if line.bid_id in self._bid_rows:
            table.update_cell(line.bid_id, "status", line.status)
            return
        self._bid_rows.add(line.bid_id)
        table.add_row(
            f"{line.position}/{line.total}", line.bid_id, line.bidder, line.status, key=line.bid_id
        )

    def _render_facts(self) -> None:
        o = self.opening
        title = f" · {o.title}" if o.title else ""
        self.query_one("#tender", Static).update(f"{o.tender_id}{title} · {o.state}")
        unlock = unlock_label(o.unlock_kind, o.threshold, len(o.officers))
        shares = f" · shares {o.presented}/{o.threshold}" if o.threshold or o.officers else ""
        self.query_one("#shares", Static).update(f"unlock {unlock}{shares}")
        tsa = format_time(o.tsa_time) if o.tsa_time else "not proven yet"
        self.query_one("#tsa", Static).update(f"TSA time: {tsa}")
        officers = self.query_one("#officers", DataTable)
        officers.clear()
        for officer in sorted(o.officers.values(), key=lambda x: x.index):
            mark = PRESENTED if officer.presented else NOT_PRESENTED
            officers.add_row(str(officer.index), mark, officer.subject, key=str(officer.index))
        if o.record is not None:
            r = o.record
            self.query_one("#record", Static).update(
                f"record sha256 {r.sha256} · {r.rows} bids in the record, {r.opened} opened,"
                f" {r.not_opened} replaced or withdrawn"
            )
        else:
            self.query_one("#record", Static).update("record: not yet")
        self._render_clock()

    def _render_clock(self) -> None:
        o = self.opening
        if o.opening_time is None:
            text = "opening time: …"
        elif o.state == "opened":
            text = f"opening time {format_time(o.opening_time)} · opened"
        else:
            text = (
                f"opening time {format_time(o.opening_time)}"
                f" · {countdown(o.opening_time, self._clock())}"
            )
        self.query_one("#clock", Static).update(text)
