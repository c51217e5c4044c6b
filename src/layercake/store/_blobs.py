"""Content-addressed blobs under ``blobs/sha256``, written atomically."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from layercake.errors import BlobNotFound, DigestMismatch, StoreError

from ._atomic import fsync_directory
from ._digest import Digest
from ._leftovers import temp_prefix
from ._spooled_file import SpooledFile

__all__ = ["BlobWriter", "Blobs"]

logger = logging.getLogger(__name__)

_FULL = (errno.ENOSPC, errno.EDQUOT)


class BlobWriter:
    """Receives a blob's bytes; hashes and counts them as they are written.

    Only valid inside :meth:`Blobs.writer`'s ``with`` block for writing;
    :attr:`digest` and :attr:`size` are set once the block has ended. Bytes
    are hashed in the caller's thread; past a blob's first 16 MiB, lent
    buffers (:meth:`take_buffer`) are copied into the file by a second one
    (see :class:`SpooledFile`), so a write error may surface at a later call
    or when the block ends.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._hash = hashlib.sha256()
        self._spool = SpooledFile(fd, self._hash.update)
        self._size = 0
        self._digest: Digest | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` to the blob; returns the number of bytes written.

        Raises:
            OSError: writing an earlier part of the blob failed.
        """
        self._spool.write(data)
        self._size += len(data)
        return len(data)

    def take_buffer(self) -> memoryview:
        """Lend an empty buffer to fill with the blob's next bytes.

        Filling it in place spares the copy :meth:`write` makes. Give it
        back with :meth:`put_buffer` and touch it no more.

        Raises:
            OSError: writing an earlier part of the blob failed.
        """
        return self._spool.take()

    def put_buffer(self, buffer: memoryview, length: int) -> None:
        """Append the first ``length`` bytes of a buffer from :meth:`take_buffer`.

        Raises:
            OSError: writing an earlier part of the blob failed.
        """
        self._spool.put(buffer, length)
        self._size += length

    def tell(self) -> int:
        """Return the number of bytes written so far."""
        return self._size

    @property
    def digest(self) -> Digest:
        """The digest of the finished blob.

        Raises:
            StoreError: the blob is not finished yet.
        """
        if self._digest is None:
            raise StoreError("blob digest read before the blob was finished")
        return self._digest

    @property
    def size(self) -> int:
        """The number of bytes written."""
        return self._size

    def _finish(self) -> Digest:
        self._spool.close()
        os.fsync(self._fd)
        self._digest = Digest("sha256", self._hash.hexdigest())
        return self._digest


class Blobs:
    """The ``blobs`` folder of an OCI layout, with verified writes."""

    def __init__(self, directory: Path, temp_dir: Path) -> None:
        self._directory = directory
        self._temp_dir = temp_dir

    def path(self, digest: Digest) -> Path:
        """Return where the blob with ``digest`` lives (it may not exist)."""
        return self._directory / digest.algorithm / digest.hex

    def has(self, digest: Digest) -> bool:
        """Return whether the blob is present."""
        return self.path(digest).is_file()

    @contextlib.contextmanager
    def writer(self, *, expected: Digest | None = None) -> Iterator[BlobWriter]:
        """Write a blob through a :class:`BlobWriter`.

        The bytes go to a temp file in the store; on a clean exit they are
        fsynced, checked against ``expected`` and renamed into place. If the
        block raises, or the digest is wrong, the temp file is removed and no
        blob appears.

        Raises:
            DigestMismatch: the content does not hash to ``expected``.
            StoreError: the store's file system is full.
        """
        fd, temp = tempfile.mkstemp(dir=self._temp_dir, prefix=temp_prefix("blob"))
        try:
            writer = BlobWriter(fd)
            try:
                yield writer
                digest = writer._finish()
            finally:
                writer._spool.abandon()
            if expected is not None and digest != expected:
                raise DigestMismatch(str(expected), str(digest), path=temp)
            os.chmod(temp, 0o644)
            target = self.path(digest)
            os.replace(temp, target)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            if isinstance(exc, OSError) and exc.errno in _FULL:
                raise StoreError(
                    f"cannot write a blob: the store's file system is full "
                    f"({self._directory})",
                    path=str(self._directory),
                ) from exc
            raise
        fsync_directory(target.parent)
        logger.debug("wrote blob %s (%d bytes)", digest, writer.size)

    def write(self, data: bytes, *, expected: Digest | None = None) -> Digest:
        """Store ``data`` as a blob and return its digest.

        Raises:
            DigestMismatch: ``data`` does not hash to ``expected``.
        """
        with self.writer(expected=expected) as writer:
            writer.write(data)
        return writer.digest

    def open(self, digest: Digest) -> BinaryIO:
        """Open the blob for reading (not verified; see :meth:`read`).

        Raises:
            BlobNotFound: the blob is not in the store.
        """
        path = self.path(digest)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(
                f"blob not found: {digest} ({path})", digest=str(digest), path=str(path)
            ) from None

    def read(self, digest: Digest) -> bytes:
        """Return the blob's bytes after checking they hash to ``digest``.

        Raises:
            BlobNotFound: the blob is not in the store.
            DigestMismatch: the file's content does not match its name.
        """
        with self.open(digest) as file:
            data = file.read()
        actual = Digest.of_bytes(data)
        if actual != digest:
            raise DigestMismatch(str(digest), str(actual), path=str(self.path(digest)))
        return data
