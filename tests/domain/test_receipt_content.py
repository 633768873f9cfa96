from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealed_bid.domain.ids import BidId, EnvelopeDigest, TenderId
from sealed_bid.domain.receipt import ReceiptContent
from sealed_bid.domain.withdrawal import WithdrawalStatement
from sealed_bid.errors import ReceiptInvalid, StatementInvalid


def content(**kw: object) -> ReceiptContent:
    values: dict[str, object] = {
        "kind": "bid",
        "tender_id": TenderId("T-1"),
        "bid_id": BidId("bid-1"),
        "envelope_sha256": EnvelopeDigest("ab" * 32),
        "size": 10,
        "received_at": datetime(2026, 11, 25, 9, 0, 1, 5, tzinfo=UTC),
        "log_sequence": 7,
    }
    values.update(kw)
    return ReceiptContent(**values)  # type: ignore[arg-type]


@given(
    size=st.integers(min_value=0, max_value=2**40),
    seq=st.integers(min_value=1, max_value=2**40),
    micro=st.integers(min_value=0, max_value=999_999),
)
def test_receipt_content_round_trips_canonically(size: int, seq: int, micro: int) -> None:
    original = content(
        size=size, log_sequence=seq, received_at=datetime(2026, 1, 1, microsecond=micro, tzinfo=UTC)
    )
    assert ReceiptContent.from_bytes(original.to_bytes()) == original


def test_non_canonical_receipt_bytes_are_refused() -> None:
    data = content().to_bytes().replace(b",", b", ", 1)
    with pytest.raises(ReceiptInvalid, match="canonical"):
        ReceiptContent.from_bytes(data)


def test_receipt_with_an_extra_field_is_refused() -> None:
    data = content().to_bytes()[:-1] + b',"zz":1}'
    with pytest.raises(ReceiptInvalid):
        ReceiptContent.from_bytes(data)


def test_withdrawal_statement_accepts_any_json_layout_with_exactly_its_keys() -> None:
    text = b'{ "bid_id": "bid-9",\n "tender_id": "T-1", "format": "sealed-bid/withdrawal/v1" }'
    assert WithdrawalStatement.parse(text) == WithdrawalStatement(TenderId("T-1"), BidId("bid-9"))


@pytest.mark.parametrize(
    "text",
    [
        b"not json",
        b'{"format": "sealed-bid/withdrawal/v1", "tender_id": "T-1"}',
        b'{"format": "other", "tender_id": "T-1", "bid_id": "b"}',
        b'{"format": "sealed-bid/withdrawal/v1", "tender_id": "T 1", "bid_id": "b"}',
        b'{"format": "sealed-bid/withdrawal/v1", "tender_id": 1, "bid_id": "b"}',
        b"[]",
        b"x" * 5000,
    ],
)
def test_malformed_withdrawal_statements_are_refused(text: bytes) -> None:
    with pytest.raises(StatementInvalid):
        WithdrawalStatement.parse(text)
