"""Bidders at the opening, on the public port: a bidder watches its own tender's opening
and confirms or objects to the record within the tender's window, each request signed
with the certificate it bid with. A signer without a bid learns nothing (NOT_A_BIDDER,
the same words whether or not anybody bid); every refusal changes nothing; responses
travel beside the record, in the operator's stream and in the audit log."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from textual.pilot import Pilot
from textual.widgets import Log

from sealed_bid.api.bidder_servicer import MAX_BIDDER_WATCH_STREAMS
from sealed_bid.cli.common import load_signer
from sealed_bid.cli.main import build_parser, main
from sealed_bid.cli.record_respond import respond
from sealed_bid.client import ServiceError
from sealed_bid.client.client import OpeningStream
from sealed_bid.console import ConsoleApp
from sealed_bid.crypto.package import build_package
from sealed_bid.crypto.seal import SealedBid, seal_bid
from sealed_bid.crypto.signed_data import sign_attached
from sealed_bid.crypto.signer import Signer
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.ids import BidId, TenderId
from sealed_bid.domain.opening_response import ResponseStatement, Verdict, WatchRequest
from sealed_bid.domain.withdrawal import WithdrawalStatement
from sealed_bid.storage.db import unit_of_work
from sealed_bid.storage.models import AuditEntry
from sealed_bid.v1 import sealed_bid_pb2 as pb
from tests.e2e.conftest import Service, seal_for
from tests.e2e.support import assert_refused, new_dev_bidder

pytestmark = [pytest.mark.usefixtures("clock_restored"), pytest.mark.token, pytest.mark.server]

_ids = itertools.count(1)
WINDOW = timedelta(minutes=10)
STREAM_SECONDS = 30.0


# --- Helpers ------------------------------------------------------------------------------
def _signer(service: Service, bidder: str) -> Signer:
    files = service.pki.bidders[bidder]
    return load_signer(files.key, files.cert)


def _create(service: Service, window: timedelta = WINDOW) -> pb.Tender:
    now = service.clock.now()
    return service.operator.create_tender(
        f"R-{next(_ids):04d}",
        "Street lighting, lot 2",
        now + timedelta(minutes=5),
        now + timedelta(minutes=10),
        ["dev-bidder-ca"],
        response_window_seconds=int(window.total_seconds()),
    )


def _seal_with(
    service: Service, tender: pb.Tender, signer: Signer, company: str, workdir: Path
) -> SealedBid:
    form = BidForm(
        tender_id=TenderId(tender.tender_id),
        bidder_name=company,
        price=Decimal("2500000.00"),
        currency="CNY",
        duration_days=90,
        fields={},
    )
    workdir.mkdir(parents=True, exist_ok=True)
    package = workdir / "package.zip"
    with package.open("wb") as f:
        build_package(form, {}, f)
    return seal_bid(
        package,
        signer,
        tender.tender_certificate,
        workdir,
        oaep_hash="sha1",
        signing_time=service.clock.now(),
    )


def _submit(service: Service, tender: pb.Tender, sealed: SealedBid) -> str:
    result = service.bidder.submit_bid(
        tender.tender_id, sealed.envelope_path, sealed.outer_signature_der
    )
    return result.receipt.content.bid_id


def _past_opening(service: Service, tender: pb.Tender) -> None:
    service.clock.set(tender.opening_time.ToDatetime(tzinfo=UTC) + timedelta(seconds=1))


def _watch_request(service: Service, signer: Signer, tender_id: str) -> bytes:
    content = WatchRequest(TenderId(tender_id)).to_bytes()
    return sign_attached(signer, content, service.clock.now())


def _statement(
    service: Service,
    signer: Signer,
    tender_id: str,
    record_sha256: str,
    verdict: Verdict = "confirm",
    text: str = "",
) -> bytes:
    content = ResponseStatement(TenderId(tender_id), record_sha256, verdict, text).to_bytes()
    return sign_attached(signer, content, service.clock.now())


def _read_until(
    stream: OpeningStream, done: Callable[[pb.OpeningEvent], bool]
) -> list[pb.OpeningEvent]:
    """Events up to and including the first one ``done`` accepts; the stream is cancelled
    (and the test fails) if that takes more than STREAM_SECONDS."""
    timer = threading.Timer(STREAM_SECONDS, stream.cancel)
    timer.start()
    events: list[pb.OpeningEvent] = []
    try:
        for event in stream:
            events.append(event)
            if done(event):
                return events
    finally:
        timer.cancel()
    raise AssertionError(f"the stream ended first: {[e.WhichOneof('event') for e in events]}")


def _kind(name: str) -> Callable[[pb.OpeningEvent], bool]:
    return lambda event: event.WhichOneof("event") == name


def _responses(service: Service, tender_id: str) -> list[pb.OpeningResponse]:
    return list(service.bidder.get_record(tender_id).responses)


def _refused(
    service: Service, tender_id: str, call: Callable[[], object], code: str, status: str
) -> ServiceError:
    """``assert_refused``, and no response was stored either (when there is a record)."""
    try:
        before = _responses(service, tender_id)
    except ServiceError:
        before = []
    error = assert_refused(service, tender_id, call, code, status)
    if before:
        assert _responses(service, tender_id) == before
    return error


def _audit(service: Service, tender_id: str, event: str) -> list[AuditEntry]:
    with unit_of_work(service.app.context.engine, read_only=True) as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.tender_id == tender_id, AuditEntry.event == event)
                .order_by(AuditEntry.seq)
            )
        )


# --- One opened tender: alpha and beta opened, gamma withdrew, epsilon renews -----------
@dataclass(frozen=True)
class Opened:
    tender: pb.Tender
    bids: dict[str, str]
    """Bidder name -> bid id (gamma's is withdrawn)."""
    record: pb.OpeningRecord
    epsilon_renewed: Signer
    """A second certificate of the same bidder (same issuer and subject) as epsilon's bid."""

    @property
    def tender_id(self) -> str:
        return self.tender.tender_id


@pytest.fixture(scope="module")
def opened(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Opened]:
    saved = service.clock.now()
    work = tmp_path_factory.mktemp("responses")
    tender = _create(service)
    bids = {
        name: _submit(service, tender, seal_for(service, tender, name, work / name))
        for name in ("alpha", "beta", "gamma")
    }
    epsilon = new_dev_bidder(service, "Epsilon Road Works Ltd")
    bids["epsilon"] = _submit(
        service, tender, _seal_with(service, tender, epsilon, "Epsilon Road Works Ltd", work / "e")
    )
    withdrawal = WithdrawalStatement(TenderId(tender.tender_id), BidId(bids["gamma"])).to_bytes()
    service.bidder.withdraw_bid(
        sign_attached(
            _signer(service, "gamma"), withdrawal, service.clock.now() + timedelta(seconds=1)
        )
    )
    _past_opening(service, tender)
    record = service.operator.open_tender(tender.tender_id)
    yield Opened(tender, bids, record, new_dev_bidder(service, "Epsilon Road Works Ltd"))
    service.clock.set(saved)


# --- Watching as a bidder -----------------------------------------------------------------
def test_a_bidder_watches_its_own_tender_through_the_opening_and_its_response(
    service: Service, tmp_path: Path
) -> None:
    tender = _create(service)
    tid = tender.tender_id
    bid = _submit(service, tender, seal_for(service, tender, "alpha", tmp_path))
    alpha = _signer(service, "alpha")
    with service.bidder.watch_as_bidder(_watch_request(service, alpha, tid)) as stream:
        first = next(stream)
        assert first.WhichOneof("event") == "snapshot" and first.seq == 0
        assert (first.snapshot.tender_id, first.snapshot.state) == (
            tid,
            pb.TENDER_STATE_ACCEPTING,
        )
        assert first.snapshot.unlock_kind == "scheduled"
        _past_opening(service, tender)
        record = service.operator.open_tender(tid)
        events = _read_until(stream, _kind("finished"))
        assert [e.WhichOneof("event") for e in events] == ["time_proven", "bid_opened", "finished"]
        opened = events[1].bid_opened
        assert (opened.bid_id, opened.status, opened.position, opened.total) == (
            bid,
            "OPENED",
            1,
            1,
        )
        assert opened.bidder == service.pki.bidders["alpha"].company
        assert events[2].finished.record.record_sha256 == record.record_sha256
        # Its own confirmation comes back on its stream.
        service.bidder.respond_to_record(_statement(service, alpha, tid, record.record_sha256))
        (response,) = _read_until(stream, _kind("response"))
    assert (response.response.bid_id, response.response.verdict) == (bid, "confirm")
    assert response.seq == events[-1].seq + 1


def test_a_signer_without_a_bid_is_NOT_A_BIDDER_whether_or_not_others_bid(
    service: Service, tmp_path: Path
) -> None:
    with_bids, without = _create(service), _create(service)
    _submit(service, with_bids, seal_for(service, with_bids, "alpha", tmp_path))
    gamma = _signer(service, "gamma")
    messages = []
    for tender in (with_bids, without):
        request = _watch_request(service, gamma, tender.tender_id)
        refused = _refused(
            service,
            tender.tender_id,
            lambda: next(service.bidder.watch_as_bidder(request)),  # noqa: B023
            "NOT_A_BIDDER",
            "PERMISSION_DENIED",
        )
        messages.append(refused.message.replace(tender.tender_id, "<tender>"))
        assert service.app.context.events.subscriber_count(tender.tender_id) == 0
    assert messages[0] == messages[1]
    assert service.pki.bidders["alpha"].company not in messages[0]


@pytest.mark.parametrize(
    ("signer", "code"), [("revoked", "SIGNER_REVOKED"), ("untrusted", "SIGNER_UNTRUSTED")]
)
def test_a_bad_signer_gets_its_validation_code(
    service: Service, tmp_path: Path, signer: str, code: str
) -> None:
    tender = _create(service)
    _submit(service, tender, seal_for(service, tender, "alpha", tmp_path))
    request = _watch_request(service, _signer(service, signer), tender.tender_id)
    _refused(
        service,
        tender.tender_id,
        lambda: next(service.bidder.watch_as_bidder(request)),
        code,
        "PERMISSION_DENIED",
    )


def test_a_watch_request_for_an_unknown_tender_or_an_unsigned_one_is_refused(
    service: Service, tmp_path: Path
) -> None:
    tender = _create(service)
    _submit(service, tender, seal_for(service, tender, "alpha", tmp_path))
    alpha = _signer(service, "alpha")
    cases = [
        (_watch_request(service, alpha, "T-no-such"), "TENDER_NOT_FOUND", "NOT_FOUND"),
        (
            WatchRequest(TenderId(tender.tender_id)).to_bytes(),
            "SIGNATURE_MALFORMED",
            "INVALID_ARGUMENT",
        ),
        (b"", "STATEMENT_INVALID", "INVALID_ARGUMENT"),
        (
            sign_attached(
                alpha,
                b'{"format":"sealed-bid/watch-opening/v9","tender_id":"x"}',
                service.clock.now(),
            ),
            "STATEMENT_INVALID",
            "INVALID_ARGUMENT",
        ),
        (
            sign_attached(
                alpha,
                WatchRequest(TenderId(tender.tender_id)).to_bytes(),
                service.clock.now() - timedelta(hours=1),
            ),
            "SIGNING_TIME_INVALID",
            "INVALID_ARGUMENT",
        ),
    ]
    for request, code, status in cases:
        _refused(
            service,
            tender.tender_id,
            lambda: next(service.bidder.watch_as_bidder(request)),  # noqa: B023
            code,
            status,
        )


def test_bidder_streams_are_bounded_and_never_take_the_submission_threads(
    service: Service, tmp_path: Path
) -> None:
    tender = _create(service)
    _submit(service, tender, seal_for(service, tender, "alpha", tmp_path / "a"))
    request = _watch_request(service, _signer(service, "alpha"), tender.tender_id)

    def watch() -> OpeningStream:
        """A stream that delivered its snapshot; retried while streams of earlier tests
        are still being released by the server."""
        deadline = time.monotonic() + STREAM_SECONDS
        while True:
            stream = service.bidder.watch_as_bidder(request)
            try:
                assert next(stream).WhichOneof("event") == "snapshot"
                return stream
            except ServiceError as refused:
                if refused.code != "WATCHERS_BUSY" or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    streams = [watch() for _ in range(MAX_BIDDER_WATCH_STREAMS)]
    try:
        _refused(
            service,
            tender.tender_id,
            lambda: next(service.bidder.watch_as_bidder(request)),
            "WATCHERS_BUSY",
            "RESOURCE_EXHAUSTED",
        )
        # Submissions still have their threads.
        bid = _submit(service, tender, seal_for(service, tender, "beta", tmp_path / "b"))
        assert service.bidder.get_receipt(tender.tender_id, bid).content.bid_id == bid
        streams.pop().cancel()
        streams.append(watch())
    finally:
        for stream in streams:
            stream.cancel()


# --- Responding to the record -------------------------------------------------------------
def test_before_the_opening_a_response_is_RECORD_NOT_FOUND(
    service: Service, tmp_path: Path
) -> None:
    tender = _create(service)
    _submit(service, tender, seal_for(service, tender, "alpha", tmp_path))
    statement = _statement(service, _signer(service, "alpha"), tender.tender_id, "0" * 64)
    _refused(
        service,
        tender.tender_id,
        lambda: service.bidder.respond_to_record(statement),
        "RECORD_NOT_FOUND",
        "NOT_FOUND",
    )


def test_bidders_confirm_and_object_and_the_responses_travel_beside_the_record(
    service: Service, opened: Opened
) -> None:
    tid, sha = opened.tender_id, opened.record.record_sha256
    alpha_statement = _statement(service, _signer(service, "alpha"), tid, sha)
    objection = "Our price was 2 400 000.00, not 2 500 000.00.\nSee our receipt."
    beta_statement = _statement(service, _signer(service, "beta"), tid, sha, "object", objection)
    with service.operator.watch_opening(tid) as stream:
        _read_until(stream, _kind("finished"))  # the opening, replayed
        confirmed = service.bidder.respond_to_record(alpha_statement)
        objected = service.bidder.respond_to_record(beta_statement)
        live = _read_until(stream, lambda e: e.response.bid_id == opened.bids["beta"])
    assert [e.response for e in live if e.WhichOneof("event") == "response"][-2:] == [
        confirmed,
        objected,
    ]
    assert (confirmed.bid_id, confirmed.verdict, confirmed.text) == (
        opened.bids["alpha"],
        "confirm",
        "",
    )
    assert confirmed.bidder == service.pki.bidders["alpha"].company
    assert (objected.bid_id, objected.verdict, objected.text) == (
        opened.bids["beta"],
        "object",
        objection,
    )
    assert objected.signed_statement == beta_statement
    assert confirmed.response_id != objected.response_id
    # The record itself is unchanged; the responses come with it, in arrival order.
    record = service.bidder.get_record(tid)
    assert (record.record_json, record.record_sha256) == (
        opened.record.record_json,
        opened.record.record_sha256,
    )
    mine = [
        r
        for r in record.responses
        if r.response_id in {confirmed.response_id, objected.response_id}
    ]
    assert mine == [confirmed, objected]
    opened_at = json.loads(record.record_json)["opened_at"]
    closes = record.responses_close_at.ToDatetime(tzinfo=UTC)
    assert closes == datetime.fromisoformat(opened_at) + WINDOW
    assert not record.HasField("key_destroyed_at")
    # Each response is an audit entry: the verdict and the statement's digest, no text.
    entries = {e.bid_id: json.loads(e.fields_json) for e in _audit(service, tid, "record.response")}
    assert entries[opened.bids["beta"]] == {
        "verdict": "object",
        "statement_sha256": hashlib.sha256(beta_statement).hexdigest(),
    }
    assert entries[opened.bids["alpha"]]["verdict"] == "confirm"


def test_a_bidder_may_confirm_and_later_object_and_a_resent_statement_counts_once(
    service: Service, opened: Opened
) -> None:
    tid, sha = opened.tender_id, opened.record.record_sha256
    before = len(_responses(service, tid))
    alpha = _signer(service, "alpha")
    service.clock.advance(timedelta(seconds=5))  # not the statement an earlier test sent
    first = service.bidder.respond_to_record(_statement(service, alpha, tid, sha))
    service.clock.advance(timedelta(seconds=5))
    second_statement = _statement(service, alpha, tid, sha, "object", "Lot 2 was read as lot 1.")
    second = service.bidder.respond_to_record(second_statement)
    audit_head = len(_audit(service, tid, "record.response"))
    again = service.bidder.respond_to_record(second_statement)
    assert again == second
    assert len(_audit(service, tid, "record.response")) == audit_head
    after = _responses(service, tid)
    assert len(after) == before + 2
    assert after[-2:] == [first, second]


def test_a_renewed_certificate_of_the_same_bidder_may_respond(
    service: Service, opened: Opened
) -> None:
    statement = _statement(
        service, opened.epsilon_renewed, opened.tender_id, opened.record.record_sha256
    )
    response = service.bidder.respond_to_record(statement)
    assert (response.bid_id, response.bidder) == (opened.bids["epsilon"], "Epsilon Road Works Ltd")


@pytest.mark.parametrize("who", ["gamma", "delta"], ids=["withdrew", "never-bid"])
def test_a_signer_without_an_opened_bid_is_NOT_A_BIDDER(
    service: Service, opened: Opened, who: str
) -> None:
    statement = _statement(
        service, _signer(service, who), opened.tender_id, opened.record.record_sha256
    )
    _refused(
        service,
        opened.tender_id,
        lambda: service.bidder.respond_to_record(statement),
        "NOT_A_BIDDER",
        "PERMISSION_DENIED",
    )


def test_a_response_to_another_record_is_RECORD_MISMATCH(service: Service, opened: Opened) -> None:
    wrong = hashlib.sha256(b"another record").hexdigest()
    statement = _statement(service, _signer(service, "alpha"), opened.tender_id, wrong)
    _refused(
        service,
        opened.tender_id,
        lambda: service.bidder.respond_to_record(statement),
        "RECORD_MISMATCH",
        "INVALID_ARGUMENT",
    )


@pytest.mark.parametrize(
    "content",
    [
        b'{"format":"sealed-bid/opening-response/v1","tender_id":"%s","record_sha256":"%s",'
        b'"verdict":"object","text":"  "}',
        b'{"format":"sealed-bid/opening-response/v1","tender_id":"%s","record_sha256":"%s",'
        b'"verdict":"accept","text":""}',
        b'{"format":"sealed-bid/opening-response/v1","tender_id":"%s","record_sha256":"%s",'
        b'"verdict":"confirm"}',
        b'{"format":"sealed-bid/opening-response/v1","tender_id":"%s","record_sha256":"%s",'
        b'"verdict":"object","text":"\\u001b[2J"}',
        b'{"format":"sealed-bid/opening-response/v1","tender_id":"%s","record_sha256":"%s",'
        b'"verdict":"object","text":"' + b"x" * 2001 + b'"}',
    ],
    ids=["objection-without-text", "unknown-verdict", "missing-text", "control-chars", "long"],
)
def test_a_malformed_response_is_STATEMENT_INVALID(
    service: Service, opened: Opened, content: bytes
) -> None:
    filled = content % (opened.tender_id.encode(), opened.record.record_sha256.encode())
    statement = sign_attached(_signer(service, "alpha"), filled, service.clock.now())
    _refused(
        service,
        opened.tender_id,
        lambda: service.bidder.respond_to_record(statement),
        "STATEMENT_INVALID",
        "INVALID_ARGUMENT",
    )


def test_after_the_window_a_response_is_RESPONSE_WINDOW_CLOSED(
    service: Service, opened: Opened
) -> None:
    closes = service.bidder.get_record(opened.tender_id).responses_close_at.ToDatetime(tzinfo=UTC)
    service.clock.set(closes)
    statement = _statement(
        service, _signer(service, "beta"), opened.tender_id, opened.record.record_sha256
    )
    _refused(
        service,
        opened.tender_id,
        lambda: service.bidder.respond_to_record(statement),
        "RESPONSE_WINDOW_CLOSED",
        "FAILED_PRECONDITION",
    )


def test_the_opening_room_console_shows_each_response(service: Service, opened: Opened) -> None:
    tid, sha = opened.tender_id, opened.record.record_sha256
    objection = "Works must start before 1 May; the record omits it."

    async def scenario() -> None:
        app = ConsoleApp(service.observer, clock=service.clock.now, tender_id=tid)
        async with app.run_test(size=(150, 30)) as pilot:
            await _until(pilot, app, lambda: "opening finished" in _log(app))
            service.clock.advance(timedelta(seconds=30))
            statement = _statement(service, _signer(service, "beta"), tid, sha, "object", objection)
            service.bidder.respond_to_record(statement)
            beta = service.pki.bidders["beta"].company
            await _until(pilot, app, lambda: f"{beta} objects: {objection}" in _log(app))

    asyncio.run(scenario())


def _log(app: ConsoleApp) -> str:
    return "\n".join(app.screen.query_one("#log", Log).lines) if app.screen.query("#log") else ""


async def _until(pilot: Pilot[None], app: ConsoleApp, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STREAM_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out; the log pane:\n" + _log(app)
        await pilot.pause(0.05)


def test_the_cli_signs_the_record_it_fetched_and_shows_the_responses(
    service: Service, opened: Opened, capsys: pytest.CaptureFixture[str]
) -> None:
    beta = _signer(service, "beta")
    response = respond(
        service.bidder,
        opened.tender_id,
        "object",
        "The opening\nstarted late.",
        beta,
        service.clock.now(),
    )
    assert (response.bid_id, response.verdict) == (opened.bids["beta"], "object")
    connection = [
        *("--address", f"127.0.0.1:{service.server.public_port}"),
        *("--ca-file", str(service.pki.platform_root.cert)),
    ]
    assert main(["record", "show", opened.tender_id, *connection]) == 0
    shown = capsys.readouterr().out
    beta_company = service.pki.bidders["beta"].company
    assert f"{beta_company} objects: The opening started late.  ({response.bid_id})" in shown
    assert f"{service.pki.bidders['alpha'].company} confirms" in shown
    assert "responses until " in shown and "tender key destroyed" not in shown
    args = build_parser().parse_args(
        [
            *("record", "respond", "--tender", "T-1", "--verdict", "confirm"),
            *("--key", "k.pem", "--cert", "c.pem"),
        ]
    )
    assert (args.tender, args.verdict, args.text, args.record_sha256) == (
        "T-1",
        "confirm",
        "",
        None,
    )
