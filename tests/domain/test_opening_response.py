"""The statements bidders sign at the opening: canonical bytes, strict parsing."""

from __future__ import annotations

import pytest

from sealed_bid.domain.ids import TenderId
from sealed_bid.domain.opening_response import (
    MAX_TEXT_CHARS,
    ResponseStatement,
    WatchRequest,
    describe_response,
)
from sealed_bid.errors import StatementInvalid

SHA = "ab" * 32


def test_statements_are_canonical_json_and_parse_back() -> None:
    watch = WatchRequest(TenderId("T-1"))
    assert watch.to_bytes() == b'{"format":"sealed-bid/watch-opening/v1","tender_id":"T-1"}'
    assert WatchRequest.parse(watch.to_bytes()) == watch
    response = ResponseStatement(TenderId("T-1"), SHA, "object", "Prix erroné\n(voir reçu)")
    assert (
        response.to_bytes()
        == (
            '{"format":"sealed-bid/opening-response/v1","record_sha256":"'
            + SHA
            + '","tender_id":"T-1","text":"Prix erroné\\n(voir reçu)","verdict":"object"}'
        ).encode()
    )
    assert ResponseStatement.parse(response.to_bytes()) == response
    # Any layout a person writes by hand.
    spaced = b'{ "tender_id": "T-1", "format": "sealed-bid/watch-opening/v1" }\n'
    assert WatchRequest.parse(spaced) == watch


@pytest.mark.parametrize(
    "data",
    [
        b'{"format":"sealed-bid/watch-opening/v1"}',
        b'{"format":"sealed-bid/watch-opening/v1","tender_id":"T-1","extra":1}',
        b'{"format":"sealed-bid/opening-response/v1","tender_id":"T-1"}',
        b'{"format":"sealed-bid/watch-opening/v1","tender_id":"../etc"}',
        b'{"format":"sealed-bid/watch-opening/v1","tender_id":7}',
        b'["sealed-bid/watch-opening/v1"]',
        b"\xff",
    ],
)
def test_a_malformed_watch_request_is_refused(data: bytes) -> None:
    with pytest.raises(StatementInvalid):
        WatchRequest.parse(data)


@pytest.mark.parametrize(
    ("digest", "verdict", "text"),
    [
        (SHA.upper(), "confirm", ""),
        (SHA[:-1], "confirm", ""),
        (SHA, "reject", ""),
        (SHA, "object", ""),
        (SHA, "object", " \n\t"),
        (SHA, "confirm", "x" * (MAX_TEXT_CHARS + 1)),
        (SHA, "object", "bell\x07"),
        (SHA, "object", "escape\x1b[2J"),
    ],
)
def test_a_response_must_name_a_digest_a_verdict_and_say_why_it_objects(
    digest: str, verdict: str, text: str
) -> None:
    with pytest.raises(StatementInvalid):
        ResponseStatement(TenderId("T-1"), digest, verdict, text)  # type: ignore[arg-type]


def test_the_longest_text_and_an_empty_confirmation_are_fine() -> None:
    ResponseStatement(TenderId("T-1"), SHA, "object", "x" * MAX_TEXT_CHARS)
    ResponseStatement(TenderId("T-1"), SHA, "confirm")


def test_a_response_reads_as_one_line() -> None:
    assert describe_response("Alpha Co.", "bid-1", "confirm", "") == "Alpha Co. confirms"
    assert describe_response("", "bid-1", "object", "late\n  start") == (
        "the bidder of bid-1 objects: late start"
    )
