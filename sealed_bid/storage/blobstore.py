"""A content-addressed file store: each blob lives at ``root/ab/cd/<sha256 hex>``.

Owns getting bytes durably onto disk under their digest. Blobs are written as a stream
into ``root/tmp`` while being hashed, then fsynced and linked into place, so a file under
its final name is always complete and its name is always its content's SHA-256. It must
never leave a partial file under a final name, never overwrite a stored blob, and never
interpret the bytes (envelopes stay encrypted; signatures are opaque here).

Temporary files are ``flock``-ed by their writer; opening a store removes the ones no
live writer holds (left by a crash), so several processes may share one root.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NewType

BlobDigest = NewType("BlobDigest", str)
"""Lower-case hex SHA-256 of a blob's bytes."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TMP_PREFIX = "incoming-"


def parse_blob_digest(value: str) -> BlobDigest:
    """Refuses anything but 64 lower-case hex characters, so a digest can never name a
    path outside the store."""
    # fullmatch: "$" would accept a trailing newline.
    if not _HEX64.fullmatch(value):
        raise ValueError("a blob digest is 64 lower-case hex characters")
    return BlobDigest(value)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IncomingBlob:
    """A blob being written. ``write`` chunks, then ``commit`` (returns the digest) or
    ``abort`` (deletes). As a context manager it aborts on exception and on leaving
    the block uncommitted."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=store.tmp_dir)
        # Held until commit/abort: tells a store opened meanwhile that this file is live.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._tmp_path = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def tmp_path(self) -> Path:
        return self._tmp_path

    def hexdigest(self) -> str:
        """SHA-256 hex of the bytes written so far."""
        return self._hash.hexdigest()

    def write(self, chunk: bytes) -> None:
        if self._done:
            raise ValueError("blob already committed or aborted")
        self._file.write(chunk)
        self._hash.update(chunk)
        self._size += len(chunk)

    def flush(self) -> None:
        """Hand buffered bytes to the OS so ``tmp_path`` can be read by path."""
        self._file.flush()

    def commit(self) -> BlobDigest:
        """Make the blob durable under its digest. If that content is stored already the
        existing file is kept and this copy discarded."""
        if self._done:
            raise ValueError("blob already committed or aborted")
        digest = BlobDigest(self._hash.hexdigest())
        final = self._store.path(digest)
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)
            # link, not rename: it fails instead of replacing an existing blob, so a
            # stored (already fsynced) blob is never touched.
            with contextlib.suppress(FileExistsError):
                os.link(self._tmp_path, final)
            _fsync_dir(final.parent)
        except BaseException:
            self.abort()
            raise
        self._finish()
        return digest

    def abort(self) -> None:
        """Discard what was written. Safe to call more than once."""
        if not self._done:
            self._finish()

    def _finish(self) -> None:
        self._done = True
        with contextlib.suppress(FileNotFoundError):
            self._tmp_path.unlink()
        # Closing drops the flock; unlinking first leaves no window in which a cleaner
        # could see an unlocked file that is still in use.
        self._file.close()

    def __enter__(self) -> IncomingBlob:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.removed_stale = self._remove_stale_tmp()
        """How many abandoned temporary files opening the store removed."""

    def _remove_stale_tmp(self) -> int:
        removed = 0
        for entry in self.tmp_dir.iterdir():
            if not entry.name.startswith(_TMP_PREFIX) or not entry.is_file():
                continue
            try:
                fd = os.open(entry, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    continue  # a live writer holds it
                os.close(fd)
                raise
            try:
                entry.unlink(missing_ok=True)
                removed += 1
            finally:
                os.close(fd)
        return removed

    def begin(self) -> IncomingBlob:
        """Start writing a blob into a temporary file."""
        return IncomingBlob(self)

    def put_bytes(self, data: bytes) -> BlobDigest:
        with self.begin() as blob:
            blob.write(data)
            return blob.commit()

    def path(self, digest: str) -> Path:
        d = parse_blob_digest(digest)
        return self.root / d[0:2] / d[2:4] / d

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        """The blob for reading; raises ``FileNotFoundError`` if it is not stored."""
        return self.path(digest).open("rb")

    def delete(self, digest: str) -> bool:
        """Remove a blob; True if it existed. Only for blobs no row references: identical
        content is stored once, so deleting it deletes it for every reference."""
        target = self.path(digest)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(target.parent)
        return True
