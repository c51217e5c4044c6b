"""Why a build step missed the cache: what changed since it was last built.

A step's cache key is a hash, which cannot say what changed. So the builder
also records, per step of a Dockerfile (its file, stage and line), the
material the key was made of. On a miss it compares the new material with
the recorded one and names the difference: the parent image, the
instruction, a build argument, or the step's sources. The records live in
the store (``cache/steps.sqlite``) so the answer survives across processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path

__all__ = ["StepHistory", "explain_miss"]

logger = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS steps (slot TEXT PRIMARY KEY, material TEXT)"

Material = Mapping[str, object]


def explain_miss(before: Material | None, now: Material) -> str:
    """One sentence saying why ``now`` misses the cache, given ``before``."""
    if before is None:
        return "this step has not been built before"
    if before.get("parent") != now.get("parent"):
        return "an earlier step changed, so this step starts from a new image"
    if before.get("instruction") != now.get("instruction"):
        return "the instruction changed"
    old_args = before.get("args") or {}
    new_args = now.get("args") or {}
    assert isinstance(old_args, Mapping) and isinstance(new_args, Mapping)
    changed = sorted(
        name
        for name in set(old_args) | set(new_args)
        if old_args.get(name) != new_args.get(name)
    )
    if changed:
        return f"build arguments changed: {', '.join(changed)}"
    if before.get("sources") != now.get("sources"):
        return "the files it reads changed"
    return "its cache entry is gone (pruned, or its blobs were removed)"


class StepHistory:
    """The last cache-key material of each step, by Dockerfile position."""

    def __init__(self, path: Path | None) -> None:
        self._db: sqlite3.Connection | None = None
        if path is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
                self._db.execute(_SCHEMA)

    @staticmethod
    def slot(dockerfile: str | None, stage: int, line: int, text: str) -> str:
        """The identity of a step: its file and position (text for inline ones)."""
        where = dockerfile if dockerfile is not None else f"<text>{text}"
        return hashlib.sha256(f"{where}\0{stage}\0{line}".encode()).hexdigest()

    def last(self, slot: str) -> Material | None:
        """The material recorded for ``slot``, or ``None``."""
        if self._db is None:
            return None
        try:
            row = self._db.execute(
                "SELECT material FROM steps WHERE slot=?", (slot,)
            ).fetchone()
        except sqlite3.Error as error:
            logger.warning("step history unreadable: %s", error)
            return None
        return json.loads(row[0]) if row else None

    def record(self, slot: str, material: Material) -> None:
        """Remember ``material`` as the last build of ``slot``."""
        if self._db is None:
            return
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO steps VALUES (?, ?)",
                (slot, json.dumps(material, sort_keys=True)),
            )
        except sqlite3.Error as error:
            logger.warning("step history not written: %s", error)

    def close(self) -> None:
        """Close the table."""
        if self._db is not None:
            self._db.close()
            self._db = None
