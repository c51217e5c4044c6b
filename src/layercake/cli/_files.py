"""Archives on stdin and stdout, as docker save/load/import/export allow."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from layercake.errors import LayercakeError

if TYPE_CHECKING:
    from layercake import Store

__all__ = ["input_path", "output_path"]

_CHUNK = 1 << 20


@contextmanager
def output_path(output: str | None, store: Store, verb: str) -> Iterator[Path]:
    """The file to write: ``output``, or a temporary one copied to stdout.

    Raises:
        LayercakeError: no ``-o`` and stdout is a terminal (docker refuses
            that too).
    """
    if output is not None:
        yield Path(output)
        return
    if sys.stdout.isatty():
        raise LayercakeError(
            f"{verb}: refusing to write an archive to a terminal; use -o"
        )
    directory = store._directory.tmp_dir("stdout-")
    try:
        path = directory / "archive.tar"
        yield path
        sys.stdout.flush()
        with open(path, "rb") as archive:
            shutil.copyfileobj(archive, sys.stdout.buffer, _CHUNK)
        sys.stdout.buffer.flush()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def input_path(given: str | None, store: Store) -> Iterator[Path]:
    """The file to read: ``given``, or stdin saved to a temporary file.

    Archives are read twice (index, then blobs), so a pipe is saved first.
    """
    if given is not None:
        yield Path(given)
        return
    directory = store._directory.tmp_dir("stdin-")
    try:
        path = directory / "archive.tar"
        with open(path, "wb") as archive:
            shutil.copyfileobj(sys.stdin.buffer, archive, _CHUNK)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)
