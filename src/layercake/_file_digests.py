"""Remembered sha256 digests of build-context files, across builds.

A context file whose device, inode, size, modification and change times are
what they were when it was last hashed is not read again. The table lives
in the store (``cache/file-digests.sqlite``), so a rebuild from a new
process, the CLI's case, skips unchanged files too. sqlite (in the standard
library) gives indexed look-ups and safe concurrent writers without a file
format of our own.

A file changed twice within one tick of the file system's clock would keep
its times; like git, we do not remember a digest for a file modified in the
last few seconds, so such a change is always read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path

__all__ = ["FileDigests"]

logger = logging.getLogger(__name__)

_RACY_SECONDS = 2.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    device INTEGER, inode INTEGER, size INTEGER, mtime INTEGER, ctime INTEGER,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (device, inode)
)
"""

Key = tuple[int, int, int, int, int]


def _key(info: os.stat_result) -> Key:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class FileDigests:
    """The remembered digests in one store; ``None`` path keeps them in memory."""

    def __init__(self, path: Path | None) -> None:
        self._memory: dict[Key, str] = {}
        self._pending: list[tuple[Key, str]] = []
        self._db: sqlite3.Connection | None = None
        if path is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
                self._db.execute(_SCHEMA)

    def get(self, info: os.stat_result) -> str | None:
        """The digest remembered for a file in exactly this state, if any."""
        key = _key(info)
        known = self._memory.get(key)
        if known is not None or self._db is None:
            return known
        try:
            row = self._db.execute(
                "SELECT sha256 FROM digests WHERE device=? AND inode=? AND size=?"
                " AND mtime=? AND ctime=?",
                key,
            ).fetchone()
        except sqlite3.Error as error:
            logger.warning("file digest cache unreadable: %s", error)
            return None
        return row[0] if row else None

    def put(self, info: os.stat_result, sha256: str) -> None:
        """Remember a file's digest (written to the store by :meth:`flush`)."""
        key = _key(info)
        self._memory[key] = sha256
        if time.time() - info.st_mtime > _RACY_SECONDS:
            self._pending.append((key, sha256))

    def flush(self) -> None:
        """Write what :meth:`put` remembered since the last flush."""
        if self._db is None or not self._pending:
            return
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)",
                    [(*key, sha256) for key, sha256 in self._pending],
                )
        except sqlite3.Error as error:
            logger.warning("file digest cache not written: %s", error)
        self._pending.clear()

    def close(self) -> None:
        """Flush and close the table."""
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None
