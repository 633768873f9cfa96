"""The content-addressed blob store."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealed_bid.storage.blobstore import BlobStore


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_blob_is_stored_under_its_sha256_in_two_levels_of_directories(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put_bytes(b"sealed envelope")
    expected = hashlib.sha256(b"sealed envelope").hexdigest()
    assert digest == expected
    assert store.path(digest) == tmp_path / expected[:2] / expected[2:4] / expected
    with store.open(digest) as f:
        assert f.read() == b"sealed envelope"
    assert store.exists(digest)


def test_streamed_chunks_are_hashed_and_counted_as_they_are_written(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with store.begin() as blob:
        for chunk in (b"a" * 1000, b"b" * 10, b""):
            blob.write(chunk)
        assert blob.size == 1010
        assert blob.hexdigest() == hashlib.sha256(b"a" * 1000 + b"b" * 10).hexdigest()
        digest = blob.commit()
    assert store.path(digest).read_bytes() == b"a" * 1000 + b"b" * 10


def test_the_same_content_is_stored_once_and_the_first_copy_kept(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    first = store.put_bytes(b"same")
    inode = store.path(first).stat().st_ino
    second = store.put_bytes(b"same")
    assert first == second
    assert store.path(second).stat().st_ino == inode
    assert _files_under(tmp_path) == [store.path(first)]


def test_an_aborted_blob_leaves_nothing_behind(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    blob = store.begin()
    blob.write(b"half an envelope")
    assert blob.tmp_path.exists()
    blob.abort()
    assert _files_under(tmp_path) == []
    assert not store.exists(hashlib.sha256(b"half an envelope").hexdigest())


def test_an_exception_inside_the_block_aborts_the_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)

    class StreamBroke(Exception):
        pass

    with pytest.raises(StreamBroke), store.begin() as blob:
        blob.write(b"partial")
        raise StreamBroke
    assert _files_under(tmp_path) == []


def test_leaving_the_block_without_commit_aborts_the_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with store.begin() as blob:
        blob.write(b"never committed")
    assert _files_under(tmp_path) == []


def test_a_finished_blob_refuses_further_writes_and_commits(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    blob = store.begin()
    blob.write(b"x")
    blob.commit()
    with pytest.raises(ValueError, match="already"):
        blob.write(b"y")
    with pytest.raises(ValueError, match="already"):
        blob.commit()
    blob.abort()  # harmless after commit
    assert store.exists(hashlib.sha256(b"x").hexdigest())


def test_opening_the_store_removes_temporary_files_left_by_a_crash(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    leftover = tmp_path / "tmp" / "incoming-crashed"
    leftover.write_bytes(b"partial upload")
    store = BlobStore(tmp_path)
    assert not leftover.exists()
    assert store.removed_stale == 1


def test_opening_the_store_keeps_the_temporary_file_of_a_live_writer(tmp_path: Path) -> None:
    writer_store = BlobStore(tmp_path)
    blob = writer_store.begin()
    blob.write(b"still arriving")
    other = BlobStore(tmp_path)  # e.g. a second process starting up
    assert other.removed_stale == 0
    assert blob.tmp_path.exists()
    digest = blob.commit()
    assert other.open(digest).read() == b"still arriving"


def test_a_digest_that_is_not_64_lower_case_hex_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31, "ab" * 32 + "\n"):
        with pytest.raises(ValueError, match="64 lower-case hex"):
            store.path(bad)


def test_a_missing_blob_cannot_be_opened(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(FileNotFoundError):
        store.open("0" * 64)
    assert not store.exists("0" * 64)


def test_a_deleted_blob_is_gone(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put_bytes(b"rejected submission")
    assert store.delete(digest) is True
    assert not store.exists(digest)
    assert store.delete(digest) is False


def test_a_committed_blob_is_never_visible_with_partial_content(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    blob = store.begin()
    blob.write(b"first half ")
    # Before commit nothing exists under any final name, only in tmp/.
    assert [p.parent.name for p in _files_under(tmp_path)] == ["tmp"]
    blob.write(b"second half")
    digest = blob.commit()
    assert store.path(digest).read_bytes() == b"first half second half"
    assert os.listdir(store.tmp_dir) == []


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_the_digest_is_the_sha256_of_the_concatenated_chunks(chunks: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = BlobStore(Path(root))
        with store.begin() as blob:
            for chunk in chunks:
                blob.write(chunk)
            digest = blob.commit()
        assert digest == hashlib.sha256(b"".join(chunks)).hexdigest()
        assert store.path(digest).read_bytes() == b"".join(chunks)
