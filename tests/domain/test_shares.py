"""PIN share records: canonical bytes, strict parsing, commitments, split and combine."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealed_bid.domain.canonical import canonical_json
from sealed_bid.domain.shares import (
    SHARE_FORMAT,
    ShareRecord,
    combine_pin,
    new_pin,
    split_pin,
)
from sealed_bid.errors import QuorumNotMet, ShareInvalid

TENDER = "KF-2026-001"
VALUE = bytes.fromhex("00ff10a5") * 16


def record(**overrides: object) -> ShareRecord:
    fields: dict[str, object] = {
        "tender_id": TENDER,
        "index": 2,
        "threshold": 2,
        "total": 3,
        "value": VALUE,
    }
    fields.update(overrides)
    return ShareRecord(**fields)  # type: ignore[arg-type]


def raw(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = json.loads(record().to_bytes())
    fields.update(overrides)
    return fields


def test_new_pin_is_64_lower_case_hex_and_fresh() -> None:
    pins = {new_pin() for _ in range(8)}
    assert len(pins) == 8
    assert all(re.fullmatch(r"[0-9a-f]{64}", pin) for pin in pins)


def test_to_bytes_is_canonical_json() -> None:
    assert SHARE_FORMAT == "sealed-bid/pin-share/v1"
    assert record().to_bytes() == (
        b'{"format":"sealed-bid/pin-share/v1","index":2,"tender_id":"KF-2026-001",'
        b'"threshold":2,"total":3,"value":"' + VALUE.hex().encode() + b'"}'
    )


def test_round_trip() -> None:
    assert ShareRecord.from_bytes(record().to_bytes()) == record()


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe",
        b"not json",
        b"[]",
        canonical_json(raw(extra=1)),
        canonical_json({k: v for k, v in raw().items() if k != "total"}),
        canonical_json(raw(format="sealed-bid/pin-share/v2")),
        canonical_json(raw(tender_id="../etc")),
        canonical_json(raw(tender_id=7)),
        canonical_json(raw(index="2")),
        canonical_json(raw(index=True)),
        canonical_json(raw(index=2.0)),
        canonical_json(raw(index=0)),
        canonical_json(raw(index=4)),
        canonical_json(raw(threshold=1)),
        canonical_json(raw(threshold=4)),
        canonical_json(raw(total=256, threshold=2)),
        canonical_json(raw(value="")),
        canonical_json(raw(value="ABCD")),
        canonical_json(raw(value="abc")),
        canonical_json(raw(value="zz")),
        canonical_json(raw(value=["00"])),
        canonical_json(raw(value="00" * 256)),
        json.dumps(raw()).encode(),  # not compact
        record().to_bytes() + b"\n",
        b"{" + b'"index":1,' + record().to_bytes()[1:],  # a duplicate key
        b" " * 5000,
    ],
)
def test_from_bytes_refuses_anything_but_a_canonical_share(data: bytes) -> None:
    with pytest.raises(ShareInvalid):
        ShareRecord.from_bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        canonical_json(raw(index=0)),
        canonical_json(raw(value=VALUE.hex().upper())),
        canonical_json(raw(value=VALUE.hex() + "0")),
        json.dumps(raw(), indent=2).encode(),
        canonical_json(raw(extra=VALUE.hex())),
    ],
)
def test_refusals_never_echo_the_value(data: bytes) -> None:
    with pytest.raises(ShareInvalid) as caught:
        ShareRecord.from_bytes(data)
    message = str(caught.value)
    for fragment in (VALUE.hex(), VALUE.hex().upper(), VALUE.hex()[:8]):
        assert fragment not in message
    assert caught.value.code == "SHARE_INVALID"


def test_repr_hides_the_value() -> None:
    assert VALUE.hex() not in repr(record())
    assert repr(VALUE) not in repr(record())


def test_commitment_is_the_domain_separated_sha256() -> None:
    expected = hashlib.sha256(
        b"sealed-bid/pin-share-commitment/v1\0" + TENDER.encode() + b"\0" + b"2\0" + VALUE
    ).hexdigest()
    assert record().commitment() == expected


def test_commitment_binds_tender_index_and_value() -> None:
    base = record().commitment()
    assert record(tender_id="KF-2026-002").commitment() != base
    assert record(index=3).commitment() != base
    assert record(value=VALUE[:-1] + b"\x00").commitment() != base


def test_check_commitment() -> None:
    share = record()
    share.check_commitment(share.commitment())
    with pytest.raises(ShareInvalid) as caught:
        share.check_commitment(record(value=VALUE[::-1]).commitment())
    assert VALUE.hex() not in str(caught.value)
    with pytest.raises(ValueError):
        share.check_commitment("not a digest")


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 7).flatmap(lambda n: st.tuples(st.integers(2, n), st.just(n))), st.data())
def test_split_then_combine_any_quorum(
    threshold_total: tuple[int, int], data: st.DataObject
) -> None:
    threshold, total = threshold_total
    pin = new_pin().encode("ascii")
    records = split_pin(TENDER, pin, threshold, total)
    assert [(r.tender_id, r.index, r.threshold, r.total) for r in records] == [
        (TENDER, i, threshold, total) for i in range(1, total + 1)
    ]
    assert all(ShareRecord.from_bytes(r.to_bytes()) == r for r in records)
    size = data.draw(st.integers(threshold, total))
    quorum = data.draw(st.permutations(records))[:size]
    assert combine_pin(quorum) == pin


def test_combine_pin_below_threshold_is_QUORUM_NOT_MET() -> None:
    records = split_pin(TENDER, new_pin().encode(), 3, 5)
    with pytest.raises(QuorumNotMet):
        combine_pin(records[:2])
    with pytest.raises(QuorumNotMet):
        combine_pin([])


def test_combine_pin_refuses_mixed_or_repeated_shares() -> None:
    pin = new_pin().encode()
    records = split_pin(TENDER, pin, 2, 3)
    other_tender = split_pin("KF-2026-002", pin, 2, 3)
    other_policy = split_pin(TENDER, pin, 3, 3)
    with pytest.raises(ShareInvalid, match="different tenders"):
        combine_pin([records[0], other_tender[1]])
    with pytest.raises(ShareInvalid, match="threshold or total"):
        combine_pin([records[0], other_policy[1], other_policy[2]])
    with pytest.raises(ShareInvalid, match="twice"):
        combine_pin([records[0], records[0]])
    with pytest.raises(ShareInvalid, match="length"):
        combine_pin([records[0], record(index=2, value=b"\x01")])


def test_a_wrong_share_is_caught_by_its_commitment_not_by_combining() -> None:
    pin = new_pin().encode()
    records = split_pin(TENDER, pin, 2, 3)
    commitments = {r.index: r.commitment() for r in records}
    tampered = record(index=2, threshold=2, total=3, value=bytes(len(pin)))
    assert combine_pin([records[0], tampered]) != pin
    with pytest.raises(ShareInvalid):
        tampered.check_commitment(commitments[tampered.index])


@pytest.mark.parametrize(("threshold", "total"), [(1, 3), (4, 3), (2, 256)])
def test_split_pin_refuses_impossible_quorums(threshold: int, total: int) -> None:
    with pytest.raises(ValueError):
        split_pin(TENDER, b"1234", threshold, total)


def test_split_pin_refuses_an_empty_or_oversized_pin_and_a_bad_tender_id() -> None:
    with pytest.raises(ValueError):
        split_pin(TENDER, b"", 2, 3)
    with pytest.raises(ValueError):
        split_pin(TENDER, b"x" * 256, 2, 3)
    with pytest.raises(ValueError):
        split_pin("bad id!", b"1234", 2, 3)
