"""The opening-room console, driven with Textual's pilot against the real service: the
tender list and its countdown, the opening view before the opening time (a refusal, and
nothing about the bids), a whole opening, events rendered as the stream delivers them;
and who may watch (operators and observers, nobody else).

Set SEALED_BID_SCREENSHOT=docs/images/console-opening.svg to refresh the screenshot in
the docs from the rendered-events test."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from textual.pilot import Pilot
from textual.widgets import DataTable, Log, Static

from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.console import ConsoleApp
from sealed_bid.console.opening_view import NOT_PRESENTED as NO
from sealed_bid.console.opening_view import PRESENTED as YES
from sealed_bid.console.opening_view import OpeningScreen
from sealed_bid.crypto.share_envelope import open_share
from sealed_bid.devpki import OFFICERS
from sealed_bid.domain.shares import ShareRecord
from sealed_bid.service.opening_events import (
    BidOpenedEvent,
    FinishedEvent,
    SharePresentedEvent,
    TimeProvenEvent,
)
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service, new_tender, seal_for

pytestmark = [pytest.mark.server, pytest.mark.token]
_quorum_ids = itertools.count(1)

SIZE = (150, 30)
WAIT_SECONDS = 30.0


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def until(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            app = pilot.app
            shown = (
                log_text(app) if isinstance(app, ConsoleApp) and app.screen.query("#log") else ""
            )
            raise AssertionError(f"timed out waiting for {what}; the log pane:\n{shown}")
        await pilot.pause(0.05)


def opening_screen(app: ConsoleApp) -> OpeningScreen:
    screen = app.screen
    assert isinstance(screen, OpeningScreen)
    return screen


def table(app: ConsoleApp, selector: str) -> DataTable[Any]:
    return app.screen.query_one(selector, DataTable)


def text(app: ConsoleApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def log_text(app: ConsoleApp) -> str:
    return "\n".join(app.screen.query_one("#log", Log).lines)


def rows(app: ConsoleApp, selector: str) -> list[list[str]]:
    t = table(app, selector)
    return [[str(c) for c in t.get_row_at(i)] for i in range(t.row_count)]


@pytest.fixture
def moved_clock(service: Service) -> Iterator[Callable[[timedelta], None]]:
    """Move the shared ManualClock; put it back afterwards."""
    moved: list[timedelta] = []

    def move(delta: timedelta) -> None:
        service.clock.advance(delta)
        moved.append(delta)

    yield move
    for delta in moved:
        service.clock.advance(-delta)


def submit(service: Service, tender: pb.Tender, bidder: str, workdir: Path) -> str:
    sealed = seal_for(service, tender, bidder, workdir)
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    return result.receipt.content.bid_id


def quorum_tender(service: Service) -> pb.Tender:
    """2 of the 3 dev officers; opens 1 h 30 min from now."""
    now = service.clock.now()
    return service.operator.create_tender(
        f"CQ-{next(_quorum_ids):04d}",
        "Bridge maintenance, quorum opening",
        now + timedelta(hours=1),
        now + timedelta(hours=1, minutes=30),
        ["dev-bidder-ca"],
        quorum_threshold=2,
        officer_certificates=tuple(
            x509.load_pem_x509_certificate(
                service.pki.officers[name].cert.read_bytes()
            ).public_bytes(serialization.Encoding.DER)
            for name in OFFICERS
        ),
    )


def officer_client(service: Service, name: str) -> SealedBidClient:
    files = service.pki.officers[name]
    return SealedBidClient(
        f"127.0.0.1:{service.server.operator_port}",
        service.pki.platform_root.cert.read_bytes(),
        files.key.read_bytes(),
        files.cert.read_bytes(),
    )


def officer_subject(n: str) -> str:
    return f"CN=Officer {n},OU=opening-officer,O=Sealed Bid Dev"


def no_watchers(service: Service, tender_id: str) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while service.app.context.events.subscriber_count(tender_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- the tender list ------------------------------------------------------------------
def test_the_tender_list_shows_a_new_tender_with_its_unlock_kind_and_a_live_countdown(
    service: Service, moved_clock: Callable[[timedelta], None]
) -> None:
    tender = new_tender(service)  # opens 1 h 30 min from now
    tid = tender.tender_id

    async def scenario() -> None:
        app = ConsoleApp(service.operator, clock=service.clock.now)
        async with app.run_test(size=SIZE) as pilot:
            tenders = table(app, "#tenders")
            await until(pilot, lambda: tid in {k.value for k in tenders.rows}, "the tender")
            row = [str(c) for c in tenders.get_row(tid)]
            assert row[:4] == [tid, "Road resurfacing, lot 1", "accepting", "scheduled"]
            assert row[5] == "in 01:30:00"
            moved_clock(timedelta(minutes=20, seconds=5))
            await until(
                pilot,
                lambda: str(tenders.get_cell(tid, "countdown")) == "in 01:09:55",
                "the countdown to follow the clock",
            )
            assert "this machine's clock" in text(app, "#note")
            assert "TSA" in text(app, "#note")
            # Enter on the tender opens its opening view.
            tenders.focus()
            tenders.move_cursor(row=tenders.get_row_index(tid))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, OpeningScreen), "the view")
            assert opening_screen(app).tender_id == tid
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, OpeningScreen), "going back")

    run(scenario)
    assert no_watchers(service, tid), "the console's stream outlived its view"


# --- before the opening time ----------------------------------------------------------
def test_before_the_opening_time_o_is_refused_and_the_view_shows_nothing_of_the_bids(
    service: Service, tmp_path: Path
) -> None:
    tender = new_tender(service)
    tid = tender.tender_id
    submit(service, tender, "alpha", tmp_path / "a")
    submit(service, tender, "beta", tmp_path / "b")
    companies = [service.pki.bidders[b].company for b in ("alpha", "beta")]

    async def scenario() -> None:
        app = ConsoleApp(service.operator, clock=service.clock.now, tender_id=tid)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: f"watching {tid}" in log_text(app), "the snapshot")
            assert text(app, "#clock").endswith("in 01:30:00")
            assert text(app, "#tsa") == "TSA time: not proven yet"
            await pilot.press("o")
            await until(pilot, lambda: "NOT_YET_OPEN" in log_text(app), "the refusal")
            await pilot.pause(0.2)
            assert table(app, "#bids").row_count == 0
            assert text(app, "#record") == "record: not yet"
            screen_text = app.export_screenshot()
            for company in companies:
                assert company not in screen_text and company not in log_text(app)
            assert "2 bids" not in screen_text and "bids: 2" not in screen_text
        assert service.app.context.token.private_key_uses.get(tid, 0) == 0

    run(scenario)


# --- a whole opening from the console -------------------------------------------------
def test_a_whole_opening_driven_from_the_console(
    service: Service, tmp_path: Path, moved_clock: Callable[[timedelta], None]
) -> None:
    tender = new_tender(service)
    tid = tender.tender_id
    bid_ids = {submit(service, tender, b, tmp_path / b) for b in ("alpha", "beta")}
    moved_clock(timedelta(hours=2))

    async def scenario() -> None:
        app = ConsoleApp(service.operator, clock=service.clock.now, tender_id=tid)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: f"watching {tid}" in log_text(app), "the snapshot")
            await pilot.press("o")
            await until(
                pilot,
                lambda: "opening finished" in log_text(app),
                "the Finished event on the stream",
            )
            screen = opening_screen(app)
            # The rows came from BidOpened events, not only from the OpenTender answer.
            assert "bid 1/2" in log_text(app) and "bid 2/2" in log_text(app)
            got = {row[1]: row for row in rows(app, "#bids")}
            assert set(got) == bid_ids
            assert {row[3] for row in got.values()} == {"OPENED"}
            assert {row[0] for row in got.values()} == {"1/2", "2/2"}
            companies = {service.pki.bidders[b].company for b in ("alpha", "beta")}
            assert {row[2] for row in got.values()} == companies
            record = service.operator.get_record(tid)
            assert screen.opening.record is not None
            assert screen.opening.record.sha256 == record.record_sha256
            assert record.record_sha256 in text(app, "#record")
            assert "opened" in text(app, "#tender")

    run(scenario)


# --- events as the stream delivers them -----------------------------------------------
def test_the_view_renders_events_published_by_the_service(service: Service, tmp_path: Path) -> None:
    tender = quorum_tender(service)
    tid = tender.tender_id
    events = service.app.context.events
    now = service.clock.now()
    record_json = json.dumps(
        {
            "tender_id": tid,
            "bids": [
                {"bid_id": "B-0001", "status": "OPENED"},
                {"bid_id": "B-0002", "status": "DECRYPTION_FAILED"},
            ],
            "not_opened": [{"bid_id": "B-0000", "status": "REPLACED"}],
        }
    )

    async def scenario() -> None:
        app = ConsoleApp(service.operator, clock=service.clock.now, tender_id=tid)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: f"watching {tid}" in log_text(app), "the snapshot")
            assert events.subscriber_count(tid) == 1
            assert text(app, "#shares") == "unlock quorum 2/3 · shares 0/2"
            events.publish(tid, now, SharePresentedEvent(1, officer_subject("One"), 1, 2))
            events.publish(tid, now, SharePresentedEvent(3, officer_subject("Three"), 2, 2))
            await until(pilot, lambda: "shares 2/2" in text(app, "#shares"), "the shares")
            assert rows(app, "#officers") == [
                ["1", YES, officer_subject("One")],
                ["2", NO, officer_subject("Two")],
                ["3", YES, officer_subject("Three")],
            ]
            events.publish(tid, now, TimeProvenEvent(now + timedelta(seconds=2), "ab" * 32))
            expected_tsa = (now + timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%SZ")
            await until(pilot, lambda: expected_tsa in text(app, "#tsa"), "the TSA time")
            events.publish(tid, now, BidOpenedEvent("B-0001", "OPENED", 1, 2, "Alpha Roads Ltd"))
            events.publish(
                tid, now, BidOpenedEvent("B-0002", "DECRYPTION_FAILED", 2, 2, "Beta Build Co")
            )
            await until(pilot, lambda: table(app, "#bids").row_count == 2, "two bid rows")
            assert rows(app, "#bids") == [
                ["1/2", "B-0001", "Alpha Roads Ltd", "OPENED"],
                ["2/2", "B-0002", "Beta Build Co", "DECRYPTION_FAILED"],
            ]
            events.publish(tid, now, FinishedEvent(record_json, "5e" * 32))
            await until(pilot, lambda: opening_screen(app).opening.finished, "the record")
            assert text(app, "#record") == (
                f"record sha256 {'5e' * 32} · 2 bids in the record, 1 opened,"
                " 1 replaced or withdrawn"
            )
            assert "opened" in text(app, "#tender")
            await pilot.pause(0.1)
            app.save_screenshot("console-opening.svg", str(tmp_path))
            target = os.environ.get("SEALED_BID_SCREENSHOT")
            if target:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                app.save_screenshot(Path(target).name, str(Path(target).parent))
            # Watching again replays what the service saw: the same view, rebuilt.
            await pilot.press("r")
            await until(
                pilot, lambda: log_text(app).count(f"watching {tid}") == 2, "a new snapshot"
            )
            await until(pilot, lambda: opening_screen(app).opening.finished, "the replay")
            assert len(rows(app, "#bids")) == 2
            assert [row[1] for row in rows(app, "#officers")] == [YES, NO, YES]
            assert expected_tsa in text(app, "#tsa")
            assert events.subscriber_count(tid) == 1
        assert (tmp_path / "console-opening.svg").read_text().startswith("<svg")

    run(scenario)
    assert no_watchers(service, tid)


def test_the_view_shows_the_officers_whose_shares_the_service_holds(
    service: Service, tmp_path: Path, moved_clock: Callable[[timedelta], None]
) -> None:
    tender = quorum_tender(service)
    tid = tender.tender_id
    submit(service, tender, "gamma", tmp_path)
    moved_clock(timedelta(hours=1, minutes=30, seconds=1))
    with officer_client(service, "officer-1") as officer:
        key = serialization.load_pem_private_key(
            service.pki.officers["officer-1"].key.read_bytes(), password=None
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        share = open_share(officer.get_officer_share(tid).sealed_share, key)
        assert officer.present_share(tid, share).presented == 1

    async def scenario() -> None:
        app = ConsoleApp(service.operator, clock=service.clock.now, tender_id=tid)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: f"watching {tid}" in log_text(app), "the snapshot")
            assert rows(app, "#officers") == [
                ["1", YES, officer_subject("One")],
                ["2", NO, officer_subject("Two")],
                ["3", NO, officer_subject("Three")],
            ]
            assert text(app, "#shares") == "unlock quorum 2/3 · shares 1/2"
            assert text(app, "#clock").endswith("· due")
            assert table(app, "#bids").row_count == 0
            secret = ShareRecord.from_bytes(share).value
            shown = app.export_screenshot() + log_text(app)
            assert secret.hex() not in shown and base64.b64encode(secret).decode() not in shown

    run(scenario)


# --- who may watch --------------------------------------------------------------------
def test_an_observer_may_watch_and_its_console_cannot_open(
    service: Service, moved_clock: Callable[[timedelta], None]
) -> None:
    tender = new_tender(service)
    tid = tender.tender_id
    with service.observer.watch_opening(tid) as stream:
        first = next(stream)
    assert first.WhichOneof("event") == "snapshot"
    snapshot = first.snapshot
    assert (snapshot.tender_id, snapshot.state) == (tid, pb.TENDER_STATE_ACCEPTING)
    assert snapshot.unlock_kind == "scheduled" and not snapshot.presented_indices
    assert snapshot.opening_time == tender.opening_time
    moved_clock(timedelta(hours=2))

    async def scenario() -> None:
        app = ConsoleApp(service.observer, clock=service.clock.now, tender_id=tid)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: f"watching {tid}" in log_text(app), "the snapshot")
            await pilot.press("o")
            await until(pilot, lambda: "OPERATOR_REQUIRED" in log_text(app), "the refusal")

    run(scenario)
    assert service.app.context.token.private_key_uses.get(tid, 0) == 0


def _refusal(client: SealedBidClient, tender_id: str) -> ServiceError:
    with pytest.raises(ServiceError) as refused, client.watch_opening(tender_id) as stream:
        next(stream)
    return refused.value


def test_a_bidder_on_the_public_port_cannot_watch(service: Service) -> None:
    tid = new_tender(service).tender_id
    assert _refusal(service.bidder, tid).status == "UNIMPLEMENTED"


def test_a_certificate_without_the_operator_or_observer_role_cannot_watch(
    service: Service,
) -> None:
    tid = new_tender(service).tender_id
    officer = service.pki.officers["officer-1"]
    client = SealedBidClient(
        f"127.0.0.1:{service.server.operator_port}",
        service.pki.platform_root.cert.read_bytes(),
        officer.key.read_bytes(),
        officer.cert.read_bytes(),
    )
    with client:
        refused = _refusal(client, tid)
    assert (refused.code, refused.status) == ("OPERATOR_REQUIRED", "PERMISSION_DENIED")
    assert service.app.context.events.subscriber_count(tid) == 0


def test_watching_an_unknown_tender_is_refused(service: Service) -> None:
    refused = _refusal(service.operator, "T-does-not-exist")
    assert (refused.code, refused.status) == ("TENDER_NOT_FOUND", "NOT_FOUND")
