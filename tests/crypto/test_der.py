"""der.py reads exactly DER's TLV framing and refuses everything BER adds."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from asn1crypto import core, parser
from hypothesis import given
from hypothesis import strategies as st

from sealed_bid.crypto import der
from sealed_bid.errors import EnvelopeNotDer


@dataclass(frozen=True)
class Node:
    tag_class: int
    tag_number: int
    value: bytes | tuple[Node, ...]


def encode(node: Node) -> bytes:
    if isinstance(node.value, bytes):
        return bytes(parser.emit(node.tag_class, 0, node.tag_number, node.value))
    contents = b"".join(encode(child) for child in node.value)
    return bytes(parser.emit(node.tag_class, 1, node.tag_number, contents))


tag_numbers = st.integers(min_value=1, max_value=30)
classes = st.integers(min_value=0, max_value=3)
leaves = st.builds(Node, classes, tag_numbers, st.binary(max_size=300))
trees = st.recursive(
    leaves,
    lambda kids: st.builds(Node, classes, tag_numbers, st.lists(kids, max_size=5).map(tuple)),
    max_leaves=20,
)


def assert_walk_matches(f: io.BytesIO, tlv: der.Tlv, node: Node) -> None:
    assert tlv.tag_class == node.tag_class
    assert tlv.tag_number == node.tag_number
    if isinstance(node.value, bytes):
        assert not tlv.constructed
        assert der.read_value(f, tlv, 10_000) == node.value
    else:
        assert tlv.constructed
        kids = der.child_list(f, tlv, max_children=100)
        assert len(kids) == len(node.value)
        for kid, child in zip(kids, node.value, strict=True):
            assert_walk_matches(f, kid, child)


@given(trees)
def test_walk_agrees_with_asn1crypto_encoding(node: Node) -> None:
    data = encode(node)
    f = io.BytesIO(data)
    root = der.read_root(f)
    class_, method, tag, header, contents, _trailer = parser.parse(data, strict=True)
    assert (root.tag_class, int(root.constructed), root.tag_number) == (class_, method, tag)
    assert root.header_length == len(header)
    assert root.length == len(contents)
    assert_walk_matches(f, root, node)
    der.check_der_tree(f, root)


@given(st.binary(max_size=40))
def test_whatever_der_accepts_asn1crypto_reads_identically(data: bytes) -> None:
    try:
        root = der.read_root(io.BytesIO(data))
    except EnvelopeNotDer:
        return
    *_, header, contents, _trailer = parser.parse(data, strict=True)
    assert root.tag == data[0]
    assert (root.header_length, root.length) == (len(header), len(contents))


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_encoded_lengths_are_minimal_and_read_back(length: int) -> None:
    header = der.encode_header(der.TAG_OCTET_STRING, length)
    tlv = der.parse_header(header, 0, len(header) + length)
    assert (tlv.header_length, tlv.length) == (len(header), length)
    short = core.OctetString(b"\x00" * min(length, 1000)).dump()
    if length <= 1000:
        assert der.encode_header(der.TAG_OCTET_STRING, length) == short[: len(header)]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (bytes.fromhex("3080 0400 0000"), "indefinite"),
        (bytes.fromhex("04 81 05") + b"hello", "non-minimal"),
        (bytes.fromhex("04 82 0005") + b"hello", "non-minimal"),
        (bytes.fromhex("04 82 0080") + b"x" * 128, "non-minimal"),
        (bytes.fromhex("1f 22 01 00"), "high-tag"),
        (bytes.fromhex("04 05") + b"hell", "truncated"),
        (bytes.fromhex("30 03 04 05 00"), "truncated"),
        (bytes.fromhex("04 89 010000000000000000"), "too long"),
        (bytes.fromhex("04 00 00"), "trailing"),
        (b"", "truncated"),
    ],
)
def test_ber_and_broken_framing_is_refused_with_ENVELOPE_NOT_DER(data: bytes, why: str) -> None:
    with pytest.raises(EnvelopeNotDer, match=why):
        f = io.BytesIO(data)
        der.check_der_tree(f, der.read_root(f))


def test_children_must_fill_their_parent_exactly() -> None:
    # A SEQUENCE of length 3 holding a 2-byte element and one stray byte.
    data = bytes.fromhex("30 03 0400 05")
    f = io.BytesIO(data)
    with pytest.raises(EnvelopeNotDer, match="truncated"):
        der.check_der_tree(f, der.read_root(f))


def test_reading_a_value_over_its_cap_is_refused() -> None:
    data = core.OctetString(b"x" * 100).dump()
    f = io.BytesIO(data)
    with pytest.raises(EnvelopeNotDer, match="exceeds"):
        der.read_value(f, der.read_root(f), 50)
