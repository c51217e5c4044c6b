"""Tags: ``index.json`` entries named by ``org.opencontainers.image.ref.name``."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from ._atomic import replace_file
from ._models import Descriptor, Index, from_json, to_json

__all__ = ["REF_NAME", "Tags"]

#: The annotation that names a manifest in an OCI layout's index.
REF_NAME = "org.opencontainers.image.ref.name"


class Tags:
    """Reads and updates the tags in an OCI layout's ``index.json``.

    Updates take an exclusive ``flock`` on the layout directory itself, so
    concurrent processes serialise their read-modify-write cycles, and the new
    file replaces the old by rename, so readers never see a partial index.
    """

    def __init__(self, root: Path, temp_dir: Path) -> None:
        self._root = root
        self._path = root / "index.json"
        self._temp_dir = temp_dir

    def read(self) -> Index:
        """Return the current index.

        Raises:
            StoreCorrupted: ``index.json`` is not a valid image index.
        """
        return from_json(Index, self._path.read_bytes())

    def set(self, name: str, manifest: Descriptor) -> None:
        """Point ``name`` at ``manifest``, replacing any entry of that name."""
        annotations = {**manifest.annotations, REF_NAME: name}
        entry = attrs.evolve(manifest, annotations=annotations)

        def change(entries: list[Descriptor]) -> bool:
            entries[:] = [e for e in entries if e.annotations.get(REF_NAME) != name]
            entries.append(entry)
            return True

        self._update(change)

    def set_many(self, pairs: list[tuple[str, Descriptor]]) -> None:
        """Point each name at its manifest, all in one index update."""
        if not pairs:
            return
        names = {name for name, _ in pairs}

        def change(entries: list[Descriptor]) -> bool:
            entries[:] = [
                e for e in entries if e.annotations.get(REF_NAME) not in names
            ]
            for name, manifest in pairs:
                annotations = {**manifest.annotations, REF_NAME: name}
                entries.append(attrs.evolve(manifest, annotations=annotations))
            return True

        self._update(change)

    def resolve(self, name: str) -> Descriptor | None:
        """Return the descriptor tagged ``name`` (without the name annotation)."""
        for tag, descriptor in self.all():
            if tag == name:
                return descriptor
        return None

    def remove(self, name: str) -> bool:
        """Remove the entry named ``name``; return whether there was one."""

        def change(entries: list[Descriptor]) -> bool:
            kept = [e for e in entries if e.annotations.get(REF_NAME) != name]
            removed = len(kept) != len(entries)
            entries[:] = kept
            return removed

        return self._update(change)

    def all(self) -> list[tuple[str, Descriptor]]:
        """Return every (name, descriptor) pair, sorted by name."""
        found = []
        for entry in self.read().manifests:
            name = entry.annotations.get(REF_NAME)
            if name is None:
                continue
            rest = {k: v for k, v in entry.annotations.items() if k != REF_NAME}
            found.append((name, attrs.evolve(entry, annotations=rest)))
        return sorted(found, key=lambda pair: pair[0])

    def _update(self, change: Callable[[list[Descriptor]], bool]) -> bool:
        with self._locked():
            index = self.read()
            entries = list(index.manifests)
            changed = change(entries)
            if changed:
                updated = attrs.evolve(index, manifests=entries)
                replace_file(self._path, to_json(updated), temp_dir=self._temp_dir)
            return changed

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
