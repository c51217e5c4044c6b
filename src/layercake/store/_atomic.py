"""Crash-safe file replacement: write a temp file, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from layercake.errors import StoreError

from ._leftovers import temp_prefix

__all__ = ["fsync_directory", "output_file", "replace_file"]


def fsync_directory(path: Path) -> None:
    """Flush a directory entry change (a rename) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, *, temp_dir: Path) -> None:
    """Atomically make ``path`` hold ``data``.

    The bytes go to a temp file in ``temp_dir`` (same file system), are
    fsynced, then renamed over ``path``; a reader sees the old or the new
    content, never a mix, and a crash leaves at most a stray temp file.
    """
    fd, temp = tempfile.mkstemp(dir=temp_dir, prefix=temp_prefix(f".{path.name}"))
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_directory(path.parent)


@contextlib.contextmanager
def output_file(path: Path, *, buffering: int = -1) -> Iterator[IO[bytes]]:
    """Write a user's output file (an archive, an export) all or nothing.

    Yields a file beside ``path``; when the block ends it is fsynced, made
    mode 0644 and renamed to ``path``. If the block fails, the temp file
    goes and ``path`` is untouched.

    Raises:
        StoreError: the file cannot be created or written (the message
            names ``path`` and the reason).
    """
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    except OSError as exc:
        raise StoreError(
            f"cannot write {path}: {exc.strerror or exc}", path=str(path)
        ) from exc
    try:
        with os.fdopen(fd, "wb", buffering=buffering) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise StoreError(
            f"cannot write {path}: {exc.strerror or exc}", path=str(path)
        ) from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
