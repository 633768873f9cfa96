"""Bid packages: written by us, read in place, and hostile ZIPs refused."""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from pathlib import Path

import pytest

from sealed_bid.crypto.package import FileSlice, PackageLimits, build_package, read_package
from sealed_bid.domain.bid_form import BidForm
from sealed_bid.errors import MalformedPackage


def hostile_zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]], form: BidForm) -> io.BytesIO:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicates we want
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("bid.json", form.to_json())
            for name, data in entries:
                archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_package_round_trips_form_and_document_digests(
    package_path: Path, form: BidForm, documents: dict[str, Path]
) -> None:
    with package_path.open("rb") as f:
        opened = read_package(f)
    assert opened.form == form
    assert [(d.name, d.size, d.sha256) for d in opened.documents] == [
        (name, path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        for name, path in documents.items()
    ]


def test_building_twice_gives_identical_bytes(form: BidForm, documents: dict[str, Path]) -> None:
    first, second = io.BytesIO(), io.BytesIO()
    build_package(form, documents, first)
    build_package(form, documents, second)
    assert first.getvalue() == second.getvalue()


def test_a_package_is_read_in_place_inside_a_larger_file(
    package_path: Path, form: BidForm, tmp_path: Path
) -> None:
    container = tmp_path / "container.bin"
    data = package_path.read_bytes()
    container.write_bytes(b"H" * 1000 + data + b"T" * 500)
    with FileSlice(container, 1000, len(data)) as view:
        assert view.seek(0, io.SEEK_END) == len(data)
        view.seek(0)
        assert read_package(view).form == form


def test_file_slice_never_reads_past_its_end(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    with FileSlice(path, 2, 5) as view:
        assert view.read() == b"23456"
        view.seek(-2, io.SEEK_END)
        assert view.read(10) == b"56"
        assert view.read(1) == b""
    with pytest.raises(ValueError, match="past the end"):
        FileSlice(path, 8, 5)


@pytest.mark.parametrize(
    "name", ["../escape.pdf", "/etc/passwd", "a/../../b", "dir\\x.pdf", "C:x.pdf", "a//b", "./a"]
)
def test_dangerous_entry_names_are_MALFORMED_PACKAGE(name: str, form: BidForm) -> None:
    with pytest.raises(MalformedPackage, match="entry name"):
        read_package(hostile_zip([(name, b"x")], form))


def test_building_with_a_dangerous_name_is_refused(form: BidForm, package_path: Path) -> None:
    with pytest.raises(MalformedPackage, match="entry name"):
        build_package(form, {"../x.pdf": package_path}, io.BytesIO())
    with pytest.raises(MalformedPackage, match="unique"):
        build_package(form, {"BID.JSON": package_path}, io.BytesIO())


def test_missing_bid_json_is_MALFORMED_PACKAGE() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("offer.pdf", b"%PDF")
    with pytest.raises(MalformedPackage, match=r"no bid\.json"):
        read_package(buffer)


def test_duplicate_names_are_MALFORMED_PACKAGE(form: BidForm) -> None:
    with pytest.raises(MalformedPackage, match="twice"):
        read_package(hostile_zip([("a.pdf", b"1"), ("A.pdf", b"2")], form))
    with pytest.raises(MalformedPackage, match="twice"):
        read_package(hostile_zip([("bid.json", b"{}")], form))


def test_entry_count_limit_is_enforced_at_its_edge(form: BidForm) -> None:
    package = hostile_zip([(f"d{i}.txt", b"x") for i in range(9)], form)  # 10 entries
    assert len(read_package(package, PackageLimits(max_entries=10)).documents) == 9
    with pytest.raises(MalformedPackage, match="at most 9"):
        read_package(package, PackageLimits(max_entries=9))


def test_total_size_limit_is_enforced_at_its_edge(form: BidForm) -> None:
    package = hostile_zip([("d.bin", b"x" * 1000)], form)
    total = 1000 + len(form.to_json())
    read_package(package, PackageLimits(max_total_bytes=total))
    with pytest.raises(MalformedPackage, match="more than"):
        read_package(package, PackageLimits(max_total_bytes=total - 1))


def test_a_zip_bomb_is_MALFORMED_PACKAGE(form: BidForm) -> None:
    with pytest.raises(MalformedPackage, match="suspiciously"):
        read_package(hostile_zip([("bomb.bin", b"\x00" * (4 * 1024 * 1024))], form))


def test_symlinks_and_encrypted_entries_are_MALFORMED_PACKAGE(form: BidForm) -> None:
    link = zipfile.ZipInfo("link.pdf")
    link.external_attr = 0o120777 << 16
    with pytest.raises(MalformedPackage, match="symbolic link"):
        read_package(hostile_zip([(link, b"/etc/passwd")], form))
    package = hostile_zip([("secret.pdf", b"x")], form)
    data = bytearray(package.getvalue())
    # Set the "encrypted" flag in the central directory entry of secret.pdf.
    central = data.rindex(b"PK\x01\x02")
    data[central + 8] |= 0x01
    with pytest.raises(MalformedPackage, match="encrypted"):
        read_package(io.BytesIO(bytes(data)))


def test_an_invalid_form_is_MALFORMED_PACKAGE() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bid.json", b'{"format": "other"}')
    with pytest.raises(MalformedPackage, match=r"bid\.json"):
        read_package(buffer)


def test_a_corrupted_document_is_MALFORMED_PACKAGE(form: BidForm) -> None:
    package = hostile_zip([("d.txt", b"hello world " * 100)], form)
    data = bytearray(package.getvalue())
    data[data.index(b"d.txt") + 40] ^= 0xFF  # inside the deflated data of d.txt
    with pytest.raises(MalformedPackage):
        read_package(io.BytesIO(bytes(data)))


def test_not_a_zip_is_MALFORMED_PACKAGE() -> None:
    with pytest.raises(MalformedPackage, match="not a valid ZIP"):
        read_package(io.BytesIO(b"just some bytes"))
