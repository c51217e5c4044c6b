"""The build cache index: cache key -> manifest digest, one file per key."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from layercake.errors import StoreCorrupted, StoreError

from ._atomic import replace_file
from ._digest import Digest

__all__ = ["BuildCache"]

_KEY = re.compile(r"[0-9a-f]{1,128}")


class BuildCache:
    """Maps a build step's cache key to the manifest that step produced.

    Each key is a file ``cache/<key>`` holding the digest text, written by
    rename so a reader sees an old value, a new one, or none.
    """

    def __init__(self, directory: Path, temp_dir: Path) -> None:
        self._directory = directory
        self._temp_dir = temp_dir

    def get(self, key: str) -> Digest | None:
        """Return the manifest digest stored for ``key``, or ``None``.

        Raises:
            StoreError: ``key`` is not lowercase hex.
            StoreCorrupted: the entry exists but does not hold a digest.
        """
        path = self._path(key)
        try:
            text = path.read_text("ascii").strip()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            text = "<binary>"
        try:
            return Digest.parse(text)
        except StoreError:
            raise StoreCorrupted(
                f"corrupt build cache entry {key}: {text!r} is not a digest",
                path=str(path),
            ) from None

    def put(self, key: str, manifest: Digest) -> None:
        """Record ``manifest`` for ``key``, replacing any previous value.

        Raises:
            StoreError: ``key`` is not lowercase hex.
        """
        data = f"{manifest}\n".encode("ascii")
        replace_file(self._path(key), data, temp_dir=self._temp_dir)

    def entries(self) -> list[tuple[str, Digest, float]]:
        """Return (key, manifest digest, mtime) of every readable entry, sorted."""
        found = []
        for path in sorted(self._directory.iterdir()):
            if not _KEY.fullmatch(path.name):
                continue
            try:
                digest = self.get(path.name)
                mtime = path.stat().st_mtime
            except (StoreCorrupted, FileNotFoundError):
                continue
            if digest is not None:
                found.append((path.name, digest, mtime))
        return found

    def remove(self, key: str) -> None:
        """Remove the entry for ``key`` if there is one.

        Raises:
            StoreError: ``key`` is not lowercase hex.
        """
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def _path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise StoreError(f"invalid build cache key {key!r}: expected lowercase hex")
        return self._directory / key
