"""Which repositories of a registry are known to hold a blob.

Pushing a blob that came from another repository of the same registry can
ask the registry to mount it instead of uploading it again. Pulls and pushes
record ``domain -> digest -> repositories`` in ``cache/registry-sources.json``;
it is a hint only, so a lost update or a stale entry costs an upload, never
correctness, and an unreadable file is treated as empty.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from .._digest import Digest
from .._directory import StoreDirectory
from .._leftovers import temp_prefix

__all__ = ["BlobSources"]

logger = logging.getLogger(__name__)

_FILE = "registry-sources.json"
_MAX_PER_BLOB = 8


class BlobSources:
    """The recorded source repositories of blobs, for one registry domain."""

    def __init__(self, directory: StoreDirectory, domain: str) -> None:
        self._path = directory.root / "cache" / _FILE
        self._temp_dir = directory.root / "tmp"
        self._domain = domain
        self._lock = threading.Lock()

    def repositories(self, digest: Digest) -> list[str]:
        """Return the repositories (paths) recorded as holding ``digest``."""
        entries = self._read().get(self._domain, {}).get(str(digest), [])
        return [e for e in entries if isinstance(e, str)]

    def record(self, digests: list[Digest], repository: str) -> None:
        """Record that ``repository`` holds every blob of ``digests``."""
        with self._lock:
            data = self._read()
            domain = data.setdefault(self._domain, {})
            for digest in digests:
                entries = [e for e in domain.get(str(digest), []) if e != repository]
                domain[str(digest)] = [repository, *entries][:_MAX_PER_BLOB]
            self._write(data)

    def _read(self) -> dict[str, dict[str, list[str]]]:
        try:
            data = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            logger.warning("ignoring unreadable %s", self._path)
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, list[str]]]) -> None:
        fd, temp = tempfile.mkstemp(dir=self._temp_dir, prefix=temp_prefix("sources"))
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(data, file, sort_keys=True)
            os.replace(temp, self._path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
