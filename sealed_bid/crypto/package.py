"""The bid package: a ZIP holding ``bid.json`` (the bid form) and the bid documents.

Owns writing a package (bidder side) and reading one in place after decryption (opening
side), producing the form and a SHA-256 per document. It must never extract files to
disk, never trust names or sizes the ZIP declares (path traversal, zip bombs, duplicate
names, symlinks, encryption are refused with ``MalformedPackage``), and never hold a
document in memory: documents are hashed in fixed chunks.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from sealed_bid.domain.bid_form import MAX_FORM_BYTES, BidForm
from sealed_bid.errors import MalformedPackage

FORM_NAME = "bid.json"
CHUNK_SIZE = 1024 * 1024
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)
"""Entry timestamps are fixed so that the same form and documents give the same bytes."""
_MAX_NAME = 255


@dataclass(frozen=True)
class PackageLimits:
    """What a package may declare before it is refused (the lead may move these into
    ``config.Limits``)."""

    max_entries: int = 1000
    max_total_bytes: int = 4 * 1024 * 1024 * 1024
    """Sum of the declared uncompressed sizes."""
    max_ratio: int = 100
    """Largest uncompressed/compressed ratio for an entry above ``ratio_floor_bytes``."""
    ratio_floor_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class DocumentDigest:
    name: str
    size: int
    sha256: str
    """Lower-case hex."""


@dataclass(frozen=True)
class OpenedPackage:
    form: BidForm
    documents: tuple[DocumentDigest, ...]
    """In the order the ZIP's central directory lists them; ``bid.json`` excluded."""


class _Readable(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def tell(self) -> int: ...


class FileSlice(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes at ``offset`` of a file, so that a
    ZIP inside a decrypted SignedData can be read in place."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        super().__init__()
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        self._file = path.open("rb")
        if offset + length > os.fstat(self._file.fileno()).st_size:
            self._file.close()
            raise ValueError("the slice runs past the end of the file")
        self._offset = offset
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._length + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise OSError("seek before the start of the slice")
        self._position = position
        return position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        available = self._length - self._position
        if available <= 0:
            return 0
        count = min(len(buffer), available)
        self._file.seek(self._offset + self._position)
        data = self._file.read(count)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def _check_name(name: str) -> None:
    """Refuse names that could escape a directory or mean different files on different
    systems."""
    stripped = name[:-1] if name.endswith("/") else name
    if not stripped or len(name) > _MAX_NAME:
        raise MalformedPackage(f"entry name {name!r} is empty or too long")
    if any(ord(c) < 0x20 or c in "\\:\x7f" for c in name):
        raise MalformedPackage(f"entry name {name!r} contains a forbidden character")
    if stripped.startswith("/"):
        raise MalformedPackage(f"entry name {name!r} is absolute")
    for part in stripped.split("/"):
        if part in ("", ".", ".."):
            raise MalformedPackage(f"entry name {name!r} contains an empty, '.' or '..' part")


def build_package(form: BidForm, documents: Mapping[str, Path], dst: IO[bytes]) -> None:
    """Write a package: ``bid.json`` (deflated) then each document stored uncompressed
    (bid documents are PDFs and office files, already compressed), in chunks."""
    names = list(documents)
    for name in names:
        _check_name(name)
        if name.endswith("/"):
            raise MalformedPackage(f"document name {name!r} names a directory")
    folded = [n.casefold() for n in [FORM_NAME, *names]]
    if len(set(folded)) != len(folded):
        raise MalformedPackage("document names must be unique (ignoring case) and not bid.json")
    with zipfile.ZipFile(dst, "w", allowZip64=True) as archive:
        form_info = zipfile.ZipInfo(FORM_NAME, date_time=_FIXED_DATE)
        form_info.compress_type = zipfile.ZIP_DEFLATED
        form_info.external_attr = 0o644 << 16
        archive.writestr(form_info, form.to_json())
        for name in names:
            path = documents[name]
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.file_size = path.stat().st_size
            with path.open("rb") as src, archive.open(info, "w", force_zip64=True) as out:
                while chunk := src.read(CHUNK_SIZE):
                    out.write(chunk)


def _read_form(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> BidForm:
    if info.file_size > MAX_FORM_BYTES:
        raise MalformedPackage(f"bid.json is larger than {MAX_FORM_BYTES} bytes")
    with archive.open(info) as entry:
        data = entry.read(MAX_FORM_BYTES + 1)
    return BidForm.parse(data)


def _digest(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> DocumentDigest:
    digest = hashlib.sha256()
    size = 0
    with archive.open(info) as entry:
        while chunk := entry.read(CHUNK_SIZE):
            size += len(chunk)
            # zipfile stops at the declared size, but never rely on that alone.
            if size > info.file_size:
                raise MalformedPackage(f"entry {info.filename!r} is larger than declared")
            digest.update(chunk)
    if size != info.file_size:
        raise MalformedPackage(f"entry {info.filename!r} is shorter than declared")
    return DocumentDigest(name=info.filename, size=size, sha256=digest.hexdigest())


def _check_entries(
    entries: list[zipfile.ZipInfo], limits: PackageLimits
) -> tuple[zipfile.ZipInfo, list[zipfile.ZipInfo]]:
    if len(entries) > limits.max_entries:
        raise MalformedPackage(
            f"the package has {len(entries)} entries; at most {limits.max_entries} are allowed"
        )
    seen: set[str] = set()
    total = 0
    form: zipfile.ZipInfo | None = None
    files: list[zipfile.ZipInfo] = []
    for info in entries:
        name = info.filename
        _check_name(name)
        if name.casefold() in seen:
            raise MalformedPackage(f"entry name {name!r} appears twice (ignoring case)")
        seen.add(name.casefold())
        if info.flag_bits & 0x1:
            raise MalformedPackage(f"entry {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise MalformedPackage(f"entry {name!r} uses an unsupported compression method")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise MalformedPackage(f"entry {name!r} is a symbolic link")
        if info.is_dir():
            continue
        total += info.file_size
        if total > limits.max_total_bytes:
            raise MalformedPackage(
                f"the package declares more than {limits.max_total_bytes} bytes of content"
            )
        if (
            info.file_size > limits.ratio_floor_bytes
            and info.file_size > info.compress_size * limits.max_ratio
        ):
            raise MalformedPackage(f"entry {name!r} is compressed suspiciously well")
        if name == FORM_NAME:
            form = info
        else:
            files.append(info)
    if form is None:
        raise MalformedPackage("the package has no bid.json at its top level")
    return form, files


def read_package(f: _Readable, limits: PackageLimits | None = None) -> OpenedPackage:
    """Read a package from a seekable file (e.g. a ``FileSlice``): parse the form and
    hash every document, streaming."""
    limits = limits or PackageLimits()
    try:
        with zipfile.ZipFile(f) as archive:
            form_info, files = _check_entries(archive.infolist(), limits)
            form = _read_form(archive, form_info)
            documents = tuple(_digest(archive, info) for info in files)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise MalformedPackage(f"the package is not a valid ZIP: {exc}") from None
    except (ValueError, OSError) as exc:
        raise MalformedPackage(f"the package could not be read: {exc}") from None
    return OpenedPackage(form=form, documents=documents)
