"""Tags: ``index.json`` entries named by ``org.opencontainers.image.ref.name``."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from ..errors import StoreCorrupted
from ._atomic import replace_file
from ._digest import Digest
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
            StoreCorrupted: ``index.json`` is not a valid image index; the
                message names the file.
        """
        try:
            return from_json(Index, self._path.read_bytes())
        except StoreCorrupted as error:
            path = str(self._path)
            raise StoreCorrupted(f"{path}: {error}", path=path) from None

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

    def untagged(self) -> list[Descriptor]:
        """Return the entries without a name (dangling images), in index order."""
        return [e for e in self.read().manifests if REF_NAME not in e.annotations]

    def add_untagged(self, manifest: Descriptor) -> None:
        """Record ``manifest`` as an image even if no tag names it."""

        def change(entries: list[Descriptor]) -> bool:
            if any(e.digest == manifest.digest for e in entries):
                return False
            entries.append(attrs.evolve(manifest, annotations={}))
            return True

        self._update(change)

    def remove_image(self, digest: Digest) -> list[str]:
        """Drop every entry of ``digest``; return the names it had, sorted."""
        names: list[str] = []

        def change(entries: list[Descriptor]) -> bool:
            names.extend(
                e.annotations[REF_NAME]
                for e in entries
                if e.digest == digest and REF_NAME in e.annotations
            )
            kept = [e for e in entries if e.digest != digest]
            changed = len(kept) != len(entries)
            entries[:] = kept
            return changed

        self._update(change, keep_dropped=False)
        return sorted(names)

    def _update(
        self,
        change: Callable[[list[Descriptor]], bool],
        *,
        keep_dropped: bool = True,
    ) -> bool:
        with self._locked():
            index = self.read()
            entries = list(index.manifests)
            changed = change(entries)
            if changed:
                if keep_dropped:
                    entries = _keep_dropped(index.manifests, entries)
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


def _keep_dropped(
    before: tuple[Descriptor, ...], after: list[Descriptor]
) -> list[Descriptor]:
    """Keep images whose last tag went as unnamed entries; drop stale ones.

    A manifest that lost its last name stays in the index without one, as
    a dangling image (Docker's ``<none>:<none>``), until removed or pruned;
    an unnamed entry whose manifest got a name again is dropped.
    """
    named = {e.digest for e in after if REF_NAME in e.annotations}
    kept = [e for e in after if REF_NAME in e.annotations or e.digest not in named]
    present = {e.digest for e in kept}
    for entry in before:
        if entry.digest not in present:
            kept.append(attrs.evolve(entry, annotations={}))
            present.add(entry.digest)
    return kept
