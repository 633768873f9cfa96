"""Driving the console without a terminal: the demo runs a whole opening through it and
prints what the opening room would have seen. Uses Textual's own headless test driver;
the console is exactly the one `sealed-bid console` starts."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable

from rich.console import Console

from sealed_bid.client import SealedBidClient
from sealed_bid.console.app import ConsoleApp
from sealed_bid.console.opening_view import OpeningScreen

SCREEN_SIZE = (118, 40)


def screen_text(app: ConsoleApp) -> str:
    """The current screen as plain text (what ``export_screenshot`` draws, without SVG)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


def open_through_console(
    client: SealedBidClient,
    tender_id: str,
    *,
    before_open: Callable[[], None] = lambda: None,
    timeout_seconds: float = 120.0,
) -> str:
    """Open ``tender_id`` by pressing ``o`` in the console's opening view (after
    ``before_open`` ran, e.g. officers presenting shares), wait until the view shows the
    record, and return the final screen as text."""

    async def drive() -> str:
        app = ConsoleApp(client, tender_id=tender_id)
        async with app.run_test(size=SCREEN_SIZE) as pilot:
            await pilot.pause(0.3)
            await asyncio.to_thread(before_open)
            await pilot.pause(0.3)
            await pilot.press("o")
            deadline = time.monotonic() + timeout_seconds
            while not _finished(app):
                if time.monotonic() > deadline:
                    raise TimeoutError("the console did not show the finished opening")
                await pilot.pause(0.1)
            await pilot.pause(0.3)
            return screen_text(app)

    return asyncio.run(drive())


def _finished(app: ConsoleApp) -> bool:
    screen = app.screen
    return isinstance(screen, OpeningScreen) and screen.opening.finished
