"""The content-key release statement: canonical bytes, strict parsing, and the key never
in a repr or an error message."""

from __future__ import annotations

import json

import pytest

from sealed_bid.domain.ids import BidId, EnvelopeDigest, TenderId
from sealed_bid.domain.key_release import KeyRelease
from sealed_bid.errors import StatementInvalid

SHA = "ab" * 32
KEY = bytes(range(32))


def _release(key: bytes = KEY) -> KeyRelease:
    return KeyRelease(
        TenderId("T-1"), BidId("bid-0123456789abcdef01234567"), EnvelopeDigest(SHA), key
    )


def test_a_release_is_canonical_json_and_parses_back() -> None:
    release = _release()
    assert (
        release.to_bytes()
        == (
            '{"bid_id":"bid-0123456789abcdef01234567","content_key":"'
            + KEY.hex()
            + '","envelope_sha256":"'
            + SHA
            + '","format":"sealed-bid/content-key-release/v1","tender_id":"T-1"}'
        ).encode()
    )
    assert KeyRelease.parse(release.to_bytes()) == release
    spaced = (
        b'{\n  "format": "sealed-bid/content-key-release/v1",\n  "tender_id": "T-1",\n'
        b'  "bid_id": "bid-0123456789abcdef01234567",\n  "envelope_sha256": "'
        + SHA.encode()
        + b'",\n  "content_key": "'
        + KEY.hex().encode()
        + b'"\n}\n'
    )
    assert KeyRelease.parse(spaced) == release


@pytest.mark.parametrize("length", [16, 24, 32])
def test_aes_key_sizes_are_accepted(length: int) -> None:
    release = _release(bytes(length))
    assert KeyRelease.parse(release.to_bytes()).content_key == bytes(length)


def test_the_key_is_not_in_the_repr() -> None:
    assert KEY.hex() not in repr(_release())
    assert "content_key" not in repr(_release())


def _statement(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "format": "sealed-bid/content-key-release/v1",
        "tender_id": "T-1",
        "bid_id": "bid-0123456789abcdef01234567",
        "envelope_sha256": SHA,
        "content_key": KEY.hex(),
    }
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v is not None}).encode()


SECRET_LOOKING = "c0ffee" * 10 + "abcd"  # 64 characters, but not lower-case hex


@pytest.mark.parametrize(
    "data",
    [
        _statement(format="sealed-bid/content-key-release/v2"),
        _statement(content_key=None),
        _statement(extra="x"),
        _statement(content_key=KEY.hex().upper()),
        _statement(content_key=KEY.hex()[:-2]),
        _statement(content_key=(bytes(20)).hex()),
        _statement(content_key=SECRET_LOOKING.replace("a", "g")),
        _statement(content_key=7),
        _statement(envelope_sha256=SHA.upper()),
        _statement(envelope_sha256=SHA[:-1]),
        _statement(bid_id=""),
        _statement(bid_id="../bids/x"),
        _statement(bid_id=None),
        _statement(tender_id="../etc"),
        _statement(tender_id=1),
        b'["sealed-bid/content-key-release/v1"]',
        b"\xff",
        b"{" + b" " * 5000 + b"}",
        _statement()[:-1] + b',"content_key":"' + KEY.hex().encode() + b'"}',
    ],
    ids=[
        "format",
        "missing-key",
        "extra-key",
        "upper-case-hex",
        "short-hex",
        "20-byte-key",
        "not-hex",
        "number",
        "digest-upper",
        "digest-short",
        "empty-bid-id",
        "bid-id-path",
        "no-bid-id",
        "tender-id-path",
        "tender-id-number",
        "array",
        "not-utf8",
        "too-large",
        "duplicate-key",
    ],
)
def test_a_malformed_release_is_refused_without_echoing_the_key(data: bytes) -> None:
    with pytest.raises(StatementInvalid) as refused:
        KeyRelease.parse(data)
    message = str(refused.value)
    assert KEY.hex() not in message and KEY.hex().upper() not in message
    assert SECRET_LOOKING.replace("a", "g") not in message


def test_a_release_cannot_be_built_with_a_bad_field() -> None:
    with pytest.raises(StatementInvalid):
        _release(bytes(20))
    with pytest.raises(StatementInvalid):
        KeyRelease(TenderId("T-1"), BidId("bid-1"), EnvelopeDigest("00"), KEY)
