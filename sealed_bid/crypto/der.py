"""A small DER TLV reader over a seekable file, and the header encoder our writers use.

It owns the one question "where does each element start and end?" so that envelopes and
signed packages of hundreds of MiB can be walked by offset, their large OCTET STRINGs
skipped or streamed, and only the small parts handed to asn1crypto.

It must never read more than a TLV header (a few bytes) unless asked for a value
explicitly with a size cap, and never accept BER: indefinite lengths, non-minimal length
encodings, high tag numbers, truncation and trailing bytes all raise ``EnvelopeNotDer``.
(Callers that parse something other than an envelope translate that error.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from sealed_bid.errors import EnvelopeNotDer

CLASS_UNIVERSAL = 0
CLASS_APPLICATION = 1
CLASS_CONTEXT = 2
CLASS_PRIVATE = 3

TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_SEQUENCE = 0x30
TAG_SET = 0x31

_MAX_LENGTH_OCTETS = 8
"""Lengths beyond 2**64 - 1 are absurd for this service; refusing them bounds the header."""


class BinarySink(Protocol):
    """Where the streaming writers put DER: a file, or a wrapper that hashes on the way."""

    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class Tlv:
    """One DER element located in a file: where its header starts, how long it is."""

    offset: int
    tag: int
    """The single identifier octet (class, constructed bit and a tag number below 31)."""
    header_length: int
    length: int

    @property
    def tag_class(self) -> int:
        return self.tag >> 6

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    @property
    def tag_number(self) -> int:
        return self.tag & 0x1F

    @property
    def value_offset(self) -> int:
        return self.offset + self.header_length

    @property
    def end(self) -> int:
        return self.value_offset + self.length

    @property
    def total_length(self) -> int:
        return self.header_length + self.length


def parse_header(header: bytes, offset: int, limit: int) -> Tlv:
    """Decode a TLV header from ``header`` (bytes starting at file ``offset``); the element
    must end at or before ``limit``."""
    if not header:
        raise EnvelopeNotDer("truncated: expected a DER element", offset=offset)
    tag = header[0]
    if tag & 0x1F == 0x1F:
        raise EnvelopeNotDer("high-tag-number form is not used by CMS here", offset=offset)
    if len(header) < 2:
        raise EnvelopeNotDer("truncated DER header", offset=offset)
    first = header[1]
    if first < 0x80:
        header_length, length = 2, first
    elif first == 0x80:
        raise EnvelopeNotDer(
            "indefinite length (BER) is not DER; produce the file without streaming",
            offset=offset,
        )
    else:
        count = first & 0x7F
        if count > _MAX_LENGTH_OCTETS:
            raise EnvelopeNotDer("length field too long", offset=offset)
        if len(header) < 2 + count:
            raise EnvelopeNotDer("truncated DER length", offset=offset)
        octets = header[2 : 2 + count]
        length = int.from_bytes(octets, "big")
        # DER demands the shortest form: no leading zero octet, no long form below 128.
        if octets[0] == 0 or length < 0x80:
            raise EnvelopeNotDer("non-minimal DER length encoding", offset=offset)
        header_length = 2 + count
    tlv = Tlv(offset=offset, tag=tag, header_length=header_length, length=length)
    if tlv.end > limit:
        raise EnvelopeNotDer("truncated: element runs past the end of its container", offset=offset)
    return tlv


def read_tlv(f: BinaryIO, offset: int, limit: int) -> Tlv:
    """Read the TLV header at ``offset``; the element must end at or before ``limit``."""
    if offset >= limit:
        raise EnvelopeNotDer("truncated: expected a DER element", offset=offset)
    f.seek(offset)
    header = f.read(min(2 + _MAX_LENGTH_OCTETS, limit - offset))
    return parse_header(header, offset, limit)


def file_size(f: BinaryIO) -> int:
    position = f.tell()
    size = f.seek(0, 2)
    f.seek(position)
    return size


def read_root(f: BinaryIO, size: int | None = None) -> Tlv:
    """The single top-level element, which must cover the whole file exactly."""
    if size is None:
        size = file_size(f)
    root = read_tlv(f, 0, size)
    if root.end != size:
        raise EnvelopeNotDer(
            f"{size - root.end} trailing bytes after the DER element", offset=root.end
        )
    return root


def children(f: BinaryIO, parent: Tlv) -> Iterator[Tlv]:
    """The elements inside a constructed element; they must fill it exactly."""
    if not parent.constructed:
        raise EnvelopeNotDer("expected a constructed element", offset=parent.offset)
    position = parent.value_offset
    while position < parent.end:
        child = read_tlv(f, position, parent.end)
        yield child
        position = child.end


def child_list(f: BinaryIO, parent: Tlv, max_children: int = 64) -> list[Tlv]:
    """All children of a small constructed element (bounded, to refuse absurd inputs)."""
    result: list[Tlv] = []
    for child in children(f, parent):
        if len(result) >= max_children:
            raise EnvelopeNotDer("too many elements in a structure", offset=parent.offset)
        result.append(child)
    return result


def read_element(f: BinaryIO, tlv: Tlv, max_size: int) -> bytes:
    """The complete encoding (header and value) of a small element."""
    if tlv.total_length > max_size:
        raise EnvelopeNotDer(
            f"element of {tlv.total_length} bytes exceeds the {max_size}-byte limit",
            offset=tlv.offset,
        )
    f.seek(tlv.offset)
    data = f.read(tlv.total_length)
    if len(data) != tlv.total_length:
        raise EnvelopeNotDer("truncated element", offset=tlv.offset)
    return data


def read_value(f: BinaryIO, tlv: Tlv, max_size: int) -> bytes:
    """The value octets of a small element."""
    return read_element(f, tlv, max_size)[tlv.header_length :]


def check_der_tree(f: BinaryIO, tlv: Tlv, skip: frozenset[int] = frozenset()) -> None:
    """Walk every constructed element under ``tlv`` so that a BER length anywhere inside
    is refused; elements whose offset is in ``skip`` (large primitives) are not entered."""
    if tlv.offset in skip or not tlv.constructed:
        return
    for child in children(f, tlv):
        check_der_tree(f, child, skip)


def encode_length(length: int) -> bytes:
    if length < 0:
        raise ValueError("negative DER length")
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def encode_header(tag: int, length: int) -> bytes:
    """The identifier and definite length octets of an element whose value is
    ``length`` bytes long; lets writers emit a header before streaming its value."""
    return bytes([tag]) + encode_length(length)


def encode(tag: int, value: bytes) -> bytes:
    return encode_header(tag, len(value)) + value
