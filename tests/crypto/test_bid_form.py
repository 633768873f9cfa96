"""bid.json: one strict reading, one canonical writing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealed_bid.domain.bid_form import BidForm
from sealed_bid.domain.ids import TenderId
from sealed_bid.errors import MalformedPackage

VALID: dict[str, Any] = {
    "format": "sealed-bid/bid-form/v1",
    "tender_id": "T-2026-001",
    "bidder_name": "Acme",
    "price": "1234567.89",
    "currency": "EUR",
    "duration_days": 180,
    "fields": {"lot": "2"},
}


def encoded(**changes: Any) -> bytes:
    document = {**VALID, **changes}
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def test_a_valid_form_parses_with_a_decimal_price() -> None:
    form = BidForm.parse(encoded())
    assert form.price == Decimal("1234567.89")
    assert form.tender_id == "T-2026-001"
    assert dict(form.fields) == {"lot": "2"}


def test_fields_cannot_be_changed_after_parsing() -> None:
    form = BidForm.parse(encoded())
    with pytest.raises(TypeError):
        form.fields["lot"] = "3"  # type: ignore[index]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (encoded(extra="x"), "unknown keys: extra"),
        (encoded(fields=...), "lacks keys: fields"),
        (encoded(format="sealed-bid/bid-form/v2"), "format"),
        (encoded(price=1234567.89), "number"),
        (encoded(price=1234567), "price must be a string"),
        (encoded(price="1e3"), "plain non-negative decimal"),
        (encoded(price="-1"), "plain non-negative decimal"),
        (encoded(price="01.5"), "plain non-negative decimal"),
        (encoded(price="1.23456"), "plain non-negative decimal"),
        (encoded(price=" 1"), "plain non-negative decimal"),
        (encoded(price="1,5"), "plain non-negative decimal"),
        (encoded(currency="eur"), "ISO 4217"),
        (encoded(currency="EURO"), "ISO 4217"),
        (encoded(duration_days="180"), "duration_days must be an integer"),
        (encoded(duration_days=True), "duration_days must be an integer"),
        (encoded(duration_days=0), "duration_days must be"),
        (encoded(tender_id="../etc"), "tender_id"),
        (encoded(bidder_name=""), "bidder_name"),
        (encoded(bidder_name="A\x00B"), "bidder_name"),
        (encoded(fields={"lot": 2}), "object of strings"),
        (encoded(fields=["lot"]), "object of strings"),
        (b'{"format": "a", "format": "b"}', "repeats the key 'format'"),
        (b"[]", "must be a JSON object"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (encoded(bidder_name="\ud800"), "bidder_name"),
        (b'{"price": NaN}', "NaN"),
    ],
)
def test_malformed_forms_are_refused_with_a_precise_message(document: bytes, message: str) -> None:
    with pytest.raises(MalformedPackage, match=message):
        BidForm.parse(document)


names = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=40
).filter(lambda s: s.strip())
prices = st.builds(
    lambda whole, frac: Decimal(f"{whole}{frac}"),
    st.integers(min_value=0, max_value=10**15),
    st.sampled_from(["", ".5", ".05", ".50", ".123", ".0001"]),
)
forms = st.builds(
    BidForm,
    tender_id=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z").map(TenderId),
    bidder_name=names,
    price=prices,
    currency=st.from_regex(r"\A[A-Z]{3}\Z"),
    duration_days=st.integers(min_value=1, max_value=36_500),
    fields=st.dictionaries(names, st.text(st.characters(blacklist_categories=["Cs"])), max_size=5),
)


@given(forms)
def test_to_json_then_parse_gives_the_same_form(form: BidForm) -> None:
    data = form.to_json()
    again = BidForm.parse(data)
    assert again == form
    assert str(again.price) == str(form.price)
    assert again.to_json() == data
