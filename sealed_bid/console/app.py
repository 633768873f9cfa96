"""``ConsoleApp``: the opening-room operator console, a Textual application that is a gRPC
client like any other (it may run on another machine than the service).

It owns the screens and the quit key; it is given a connected ``SealedBidClient`` (an
operator's, or an observer's for a read-only view) and a clock for the countdowns. It
never holds key material, shares or PINs, and never decides anything the service does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from sealed_bid.client import SealedBidClient
from sealed_bid.console.opening_view import OpeningScreen
from sealed_bid.console.tender_list import TenderListScreen


def system_clock() -> datetime:
    return datetime.now(UTC)


class ConsoleApp(App[None]):
    TITLE = "Sealed Bid · opening room"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    def __init__(
        self,
        client: SealedBidClient,
        clock: Callable[[], datetime] = system_clock,
        tender_id: str | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.clock = clock
        self._start_tender = tender_id

    def get_default_screen(self) -> Screen[None]:
        return TenderListScreen(self.client, self.clock)

    def on_mount(self) -> None:
        if self._start_tender:
            self.push_screen(OpeningScreen(self.client, self._start_tender, self.clock))
