"""The console's first screen: every tender with its state, unlock policy, opening time
and a countdown to it; Enter opens the opening view of the highlighted tender.

The countdown is computed from this machine's clock and is for display only; the screen
says so. It shows nothing the public tender directory does not (no bid counts).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.console.feed import refusal_text
from sealed_bid.console.model import (
    CLOCK_NOTE,
    as_datetime,
    countdown,
    format_time,
    state_name,
    unlock_label,
)
from sealed_bid.console.opening_view import OpeningScreen
from sealed_bid.v1 import sealed_bid_pb2 as pb

COLUMNS = (
    ("id", "tender"),
    ("title", "title"),
    ("state", "state"),
    ("unlock", "unlock"),
    ("opening", "opening time (UTC)"),
    ("countdown", "countdown"),
)


class TendersLoaded(Message):
    def __init__(self, tenders: list[pb.Tender]) -> None:
        super().__init__()
        self.tenders = tenders


class TendersRefused(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class TenderListScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh", "Refresh")]

    def __init__(self, client: SealedBidClient, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self._client = client
        self._clock = clock
        self._tenders: dict[str, pb.Tender] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="tenders", cursor_type="row", zebra_stripes=True)
        yield Static("loading tenders…", id="status")
        yield Static(CLOCK_NOTE, id="note")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#tenders", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.action_refresh()
        self.set_interval(1.0, self._tick)

    def action_refresh(self) -> None:
        self.run_worker(self._load, thread=True, group="tenders", exclusive=True)

    def _load(self) -> None:
        try:
            tenders = self._client.list_tenders()
        except ServiceError as exc:
            self.post_message(TendersRefused(refusal_text(exc)))
        else:
            self.post_message(TendersLoaded(tenders))

    @on(TendersLoaded)
    def _show(self, message: TendersLoaded) -> None:
        table = self.query_one("#tenders", DataTable)
        selected = self._selected_id()
        table.clear()
        now = self._clock()
        ordered = sorted(message.tenders, key=lambda t: (t.opening_time.ToDatetime(), t.tender_id))
        self._tenders = {t.tender_id: t for t in ordered}
        for t in ordered:
            policy = t.unlock_policy
            opening = as_datetime(t.opening_time)
            table.add_row(
                t.tender_id,
                t.title,
                state_name(t.state),
                unlock_label(policy.kind, policy.threshold, len(policy.officers)),
                format_time(opening),
                self._countdown(t, now),
                key=t.tender_id,
            )
        if selected in self._tenders:
            table.move_cursor(row=table.get_row_index(selected))
        self.query_one("#status", Static).update(f"{len(ordered)} tenders; Enter: opening view")

    @on(TendersRefused)
    def _refused(self, message: TendersRefused) -> None:
        self.query_one("#status", Static).update(f"refused: {message.text}")

    @on(DataTable.RowSelected, "#tenders")
    def _selected(self, message: DataTable.RowSelected) -> None:
        tender_id = message.row_key.value
        if tender_id is not None:
            self.app.push_screen(OpeningScreen(self._client, tender_id, self._clock))

    def _selected_id(self) -> str | None:
        table = self.query_one("#tenders", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _countdown(self, tender: pb.Tender, now: datetime) -> str:
        if tender.state == pb.TENDER_STATE_OPENED:
            return "opened"
        return countdown(as_datetime(tender.opening_time), now)

    def _tick(self) -> None:
        table = self.query_one("#tenders", DataTable)
        now = self._clock()
        for tender_id, tender in self._tenders.items():
            table.update_cell(tender_id, "countdown", self._countdown(tender, now))
