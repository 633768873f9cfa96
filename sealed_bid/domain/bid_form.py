"""The bid form (``bid.json`` inside a bid package): its strict parser and its writer.

Pure domain: no I/O, no crypto. It must never guess: unknown or missing keys, wrong JSON
types, duplicate keys, non-canonical prices and floats all raise ``MalformedPackage``
with a message that names the field, because the form is what the opening committee reads
and two readers must never disagree about what a bid says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from sealed_bid.domain.ids import TenderId, parse_tender_id
from sealed_bid.errors import MalformedPackage

FORMAT = "sealed-bid/bid-form/v1"
MAX_FORM_BYTES = 1024 * 1024
MAX_FIELDS = 256
MAX_FIELD_NAME = 128
MAX_FIELD_VALUE = 64 * 1024
MAX_BIDDER_NAME = 512
MAX_DURATION_DAYS = 36_500

_PRICE = re.compile(r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,4})?$")
"""Non-negative, plain decimal notation: no sign, exponent, spaces or leading zeros."""
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_KEYS = ("format", "tender_id", "bidder_name", "price", "currency", "duration_days", "fields")


def _no_surrogates(value: str) -> bool:
    # JSON "\ud800" escapes decode to lone surrogates, which cannot be written as UTF-8.
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _no_controls(value: str) -> bool:
    return _no_surrogates(value) and not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value)


@dataclass(frozen=True)
class BidForm:
    """A parsed, validated bid form."""

    tender_id: TenderId
    bidder_name: str
    price: Decimal
    currency: str
    duration_days: int
    fields: Mapping[str, str]

    def __post_init__(self) -> None:
        _validate(self)
        # Freeze the mapping so that a form cannot change after validation.
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    @classmethod
    def parse(cls, data: bytes) -> BidForm:
        """Parse ``bid.json`` bytes (UTF-8 JSON) strictly."""
        if len(data) > MAX_FORM_BYTES:
            raise MalformedPackage(f"bid.json is larger than {MAX_FORM_BYTES} bytes")
        try:
            text = data.decode("utf-8")
            raw = json.loads(
                text,
                object_pairs_hook=_no_duplicates,
                parse_float=_refuse_float,
                parse_constant=_refuse_constant,
            )
        except UnicodeDecodeError:
            raise MalformedPackage("bid.json is not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise MalformedPackage(f"bid.json is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise MalformedPackage("bid.json must be a JSON object")
        unknown = sorted(set(raw) - set(_KEYS))
        if unknown:
            raise MalformedPackage(f"bid.json has unknown keys: {', '.join(unknown)}")
        missing = [k for k in _KEYS if k not in raw]
        if missing:
            raise MalformedPackage(f"bid.json lacks keys: {', '.join(missing)}")
        if raw["format"] != FORMAT:
            raise MalformedPackage(f"bid.json format must be {FORMAT!r}")
        for key in ("tender_id", "bidder_name", "price", "currency"):
            if not isinstance(raw[key], str):
                raise MalformedPackage(f"bid.json {key} must be a string")
        duration = raw["duration_days"]
        if not isinstance(duration, int) or isinstance(duration, bool):
            raise MalformedPackage("bid.json duration_days must be an integer")
        fields = raw["fields"]
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise MalformedPackage("bid.json fields must be an object of strings")
        if not _PRICE.match(raw["price"]):
            raise MalformedPackage(
                "bid.json price must be a plain non-negative decimal string such as "
                "'1234567.89' (at most 4 decimals, no sign, exponent or leading zeros)"
            )
        try:
            tender_id = parse_tender_id(raw["tender_id"])
        except ValueError:
            raise MalformedPackage("bid.json tender_id is not a valid tender id") from None
        return cls(
            tender_id=tender_id,
            bidder_name=raw["bidder_name"],
            price=Decimal(raw["price"]),
            currency=raw["currency"],
            duration_days=duration,
            fields=fields,
        )

    def to_json(self) -> bytes:
        """The canonical ``bid.json`` bytes (UTF-8, keys in a fixed order)."""
        document: dict[str, Any] = {
            "format": FORMAT,
            "tender_id": self.tender_id,
            "bidder_name": self.bidder_name,
            "price": str(self.price),
            "currency": self.currency,
            "duration_days": self.duration_days,
            "fields": dict(self.fields),
        }
        return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _validate(form: BidForm) -> None:
    try:
        parse_tender_id(form.tender_id)
    except ValueError:
        raise MalformedPackage("tender_id is not a valid tender id") from None
    name = form.bidder_name
    if not name.strip() or len(name) > MAX_BIDDER_NAME or not _no_controls(name):
        raise MalformedPackage(
            f"bidder_name must be 1..{MAX_BIDDER_NAME} characters without control characters"
        )
    if not isinstance(form.price, Decimal) or not _PRICE.match(str(form.price)):
        raise MalformedPackage("price must be a non-negative decimal with at most 4 decimals")
    if not _CURRENCY.match(form.currency):
        raise MalformedPackage("currency must be an ISO 4217 code of three capital letters")
    if not 1 <= form.duration_days <= MAX_DURATION_DAYS:
        raise MalformedPackage(f"duration_days must be 1..{MAX_DURATION_DAYS}")
    if len(form.fields) > MAX_FIELDS:
        raise MalformedPackage(f"at most {MAX_FIELDS} fields are allowed")
    for key, value in form.fields.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise MalformedPackage("fields must map strings to strings")
        if not key or len(key) > MAX_FIELD_NAME or not _no_controls(key):
            raise MalformedPackage(
                f"field names must be 1..{MAX_FIELD_NAME} characters without control characters"
            )
        if len(value) > MAX_FIELD_VALUE or not _no_surrogates(value):
            raise MalformedPackage(
                f"field {key!r} must be valid Unicode of at most {MAX_FIELD_VALUE} characters"
            )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedPackage(f"bid.json repeats the key {key!r}")
        result[key] = value
    return result


def _refuse_float(text: str) -> Any:
    raise MalformedPackage(f"bid.json contains the number {text}; prices are strings")


def _refuse_constant(text: str) -> Any:
    raise MalformedPackage(f"bid.json contains {text}, which is not JSON")
