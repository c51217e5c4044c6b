"""Crash-safe file replacement: write a temp file, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["fsync_directory", "replace_file"]


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
    fd, temp = tempfile.mkstemp(dir=temp_dir, prefix=f".{path.name}-")
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
