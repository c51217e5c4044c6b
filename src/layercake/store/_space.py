"""What uses which blob: reachability, pruning and disk usage of a store.

Roots are the images in ``index.json`` (tagged or dangling), the manifests
build cache entries point at, and the manifest each container records in
``containers/<id>/image``. A blob or unpacked layer no root reaches is
garbage; prune removes it once it is older than a grace period, because a
build or load that is still running writes blobs before the manifest that
will reference them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import attrs

from layercake.errors import StoreError

from ._digest import Digest
from ._directory import StoreDirectory
from ._leftovers import sweep_dead

__all__ = [
    "DiskUsage",
    "PruneReport",
    "Reach",
    "container_images",
    "disk_usage",
    "prune",
    "reach",
    "tree_size",
]

logger = logging.getLogger(__name__)

_MAX_MANIFEST = 4 << 20
_MAX_DEPTH = 8


@attrs.frozen
class Reach:
    """The blobs and unpacked layers (by diff id) one manifest needs."""

    blobs: frozenset[Digest]
    diff_ids: frozenset[Digest]


@attrs.frozen
class PruneReport:
    """What :func:`prune` removed.

    Attributes:
        images_deleted: manifest digests of the dangling images removed.
        cache_entries_deleted: build cache entries removed.
        image_ids_deleted: image ids (config digests) of the dangling images
            removed, in the order of ``images_deleted``.
        cache_space_deleted: bytes of the blobs that only the removed cache
            entries needed; they are freed now, or by a later prune once
            they are older than its grace.
        blobs_deleted: blobs removed.
        layers_deleted: unpacked layers removed.
        tmp_entries_deleted: leftovers removed from ``tmp/``.
        space_reclaimed: bytes freed, counting each file once.
    """

    images_deleted: tuple[str, ...] = ()
    cache_entries_deleted: int = 0
    blobs_deleted: int = 0
    layers_deleted: int = 0
    tmp_entries_deleted: int = 0
    space_reclaimed: int = 0
    image_ids_deleted: tuple[str, ...] = ()
    cache_space_deleted: int = 0


@attrs.frozen
class DiskUsage:
    """Space a store uses, in bytes, by what uses it (see ``Store.df``).

    Attributes:
        images: number of images (tagged and dangling).
        images_size: blobs the images need, each counted once.
        shared_size: the part of ``images_size`` two or more images need.
        layers: number of unpacked layers.
        layers_size: size of the unpacked layers.
        containers: number of containers.
        containers_size: size of their directories (writable layers, logs).
        cache_entries: number of build cache entries.
        cache_size: blobs only the build cache needs.
        unreferenced_size: blobs nothing needs (prune frees them).
        tmp_size: temp files and leftovers in ``tmp/``.
    """

    images: int
    images_size: int
    shared_size: int
    layers: int
    layers_size: int
    containers: int
    containers_size: int
    cache_entries: int
    cache_size: int
    unreferenced_size: int
    tmp_size: int


def reach(store: StoreDirectory, manifest: Digest) -> Reach:
    """Return the blobs and diff ids ``manifest`` needs (indexes followed).

    Missing or unreadable blobs are left out rather than raised: a damaged
    image must not stop a prune from keeping what the others need.
    """
    blobs: set[Digest] = set()
    diff_ids: set[Digest] = set()
    _walk(store, manifest, blobs, diff_ids, 0)
    return Reach(frozenset(blobs), frozenset(diff_ids))


def _walk(
    store: StoreDirectory,
    digest: Digest,
    blobs: set[Digest],
    diff_ids: set[Digest],
    depth: int,
) -> None:
    blobs.add(digest)
    document = _json(store, digest)
    if not isinstance(document, dict) or depth > _MAX_DEPTH:
        return
    for child in _digests(document.get("manifests")):
        _walk(store, child, blobs, diff_ids, depth + 1)
    config = _digests([document.get("config")])
    blobs.update(config)
    blobs.update(_digests(document.get("layers")))
    for config_digest in config:
        config_json = _json(store, config_digest)
        if isinstance(config_json, dict) and isinstance(
            config_json.get("rootfs"), dict
        ):
            for text in config_json["rootfs"].get("diff_ids") or []:
                with contextlib.suppress(StoreError, AttributeError, TypeError):
                    diff_ids.add(Digest.parse(text))


def _json(store: StoreDirectory, digest: Digest) -> object:
    path = store.blob_path(digest)
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_MANIFEST)
        return json.loads(data)
    except (OSError, ValueError):
        return None


def _digests(entries: object) -> list[Digest]:
    found = []
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                with contextlib.suppress(StoreError):
                    found.append(Digest.parse(entry["digest"]))
    return found


def container_images(store: StoreDirectory) -> dict[str, Digest]:
    """Return container id -> the manifest digest it recorded using."""
    found = {}
    for directory in sorted(store.containers_dir.iterdir()):
        try:
            text = (directory / "image").read_text("ascii").strip()
            found[directory.name] = Digest.parse(text)
        except (OSError, UnicodeDecodeError, StoreError):
            continue
    return found


def _image_roots(store: StoreDirectory) -> list[Digest]:
    digests = [d.digest for _, d in store.tags()] + [d.digest for d in store.untagged()]
    return list(dict.fromkeys(digests))


def prune(
    store: StoreDirectory,
    *,
    dangling: bool,
    cache_older_than: float | None,
    grace: float,
    cache_max_size: int | None = None,
) -> PruneReport:
    """Remove dangling images, old cache entries, garbage blobs and layers.

    See ``Store.prune`` for the arguments.
    """
    now = time.time()
    in_use = set(container_images(store).values())
    deleted: list[str] = []
    image_ids: list[str] = []
    if dangling:
        for descriptor in store.untagged():
            if descriptor.digest not in in_use:
                image_ids.append(_image_id(store, descriptor.digest))
                store.remove_image(descriptor.digest)
                deleted.append(str(descriptor.digest))

    doomed = _doomed_cache(store, now, cache_older_than, cache_max_size)
    cache_blobs: set[Digest] = set()
    for key, digest in doomed:
        cache_blobs |= reach(store, digest).blobs
        store.cache_remove(key)
    cache_deleted = len(doomed)

    roots = (
        _image_roots(store) + [d for _, d, _ in store.cache_entries()] + list(in_use)
    )
    blobs: set[Digest] = set()
    diff_ids: set[Digest] = set()
    for root in roots:
        found = reach(store, root)
        blobs |= found.blobs
        diff_ids |= found.diff_ids
    cache_space = sum(
        _file_size(store.blob_path(digest)) for digest in cache_blobs - blobs
    )

    reclaimed = 0
    blobs_deleted = 0
    for digest in store.blob_digests():
        path = store.blob_path(digest)
        if digest in blobs or not _older(path, now - grace):
            continue
        reclaimed += _file_size(path)
        store.remove_blob(digest)
        blobs_deleted += 1

    layers_deleted = 0
    for path in sorted(store.layers_dir.iterdir()):
        try:
            diff_id = Digest.parse(f"sha256:{path.name}")
        except StoreError:
            continue
        if diff_id in diff_ids or not _older(path, now - grace):
            continue
        reclaimed += tree_size(path)
        store.remove_unpacked(diff_id)
        layers_deleted += 1

    # Leftovers of exited processes go at once. The rest, a live process's
    # included, wait out the grace: a reused pid must not pin a leftover.
    tmp_deleted, freed = sweep_dead(store.root / "tmp")
    reclaimed += freed
    for path in sorted((store.root / "tmp").iterdir()):
        if not _older(path, now - grace):
            continue
        reclaimed += tree_size(path)
        _remove(path)
        tmp_deleted += 1

    report = PruneReport(
        images_deleted=tuple(deleted),
        image_ids_deleted=tuple(image_ids),
        cache_space_deleted=cache_space,
        cache_entries_deleted=cache_deleted,
        blobs_deleted=blobs_deleted,
        layers_deleted=layers_deleted,
        tmp_entries_deleted=tmp_deleted,
        space_reclaimed=reclaimed,
    )
    logger.info("pruned %s", report)
    return report


def disk_usage(store: StoreDirectory) -> DiskUsage:
    """Measure what the store's images, layers, containers and cache use."""
    images = _image_roots(store)
    per_image = [reach(store, image).blobs for image in images]
    counts = Counter(blob for blobs in per_image for blob in blobs)
    cache = store.cache_entries()
    cache_blobs: set[Digest] = set()
    for _key, digest, _mtime in cache:
        cache_blobs |= reach(store, digest).blobs
    for digest in container_images(store).values():
        cache_blobs |= reach(store, digest).blobs

    sizes = {d: _file_size(store.blob_path(d)) for d in store.blob_digests()}
    layer_dirs = [p for p in store.layers_dir.iterdir() if p.is_dir()]
    containers = [p for p in store.containers_dir.iterdir() if p.is_dir()]
    return DiskUsage(
        images=len(images),
        images_size=_sum(sizes, counts),
        shared_size=_sum(sizes, (d for d, n in counts.items() if n > 1)),
        layers=len(layer_dirs),
        layers_size=sum(tree_size(p) for p in layer_dirs),
        containers=len(containers),
        containers_size=sum(tree_size(p) for p in containers),
        cache_entries=len(cache),
        cache_size=_sum(sizes, cache_blobs - set(counts)),
        unreferenced_size=_sum(sizes, set(sizes) - set(counts) - cache_blobs),
        tmp_size=tree_size(store.root / "tmp"),
    )


def _sum(sizes: dict[Digest, int], digests: Iterable[Digest]) -> int:
    return sum(sizes.get(d, 0) for d in set(digests))


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(top.st_mode):
        return top.st_size if stat.S_ISREG(top.st_mode) else 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(os.path.join(root, name))
                if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _image_id(store: StoreDirectory, manifest: Digest) -> str:
    found = _json(store, manifest)
    if isinstance(found, dict) and isinstance(found.get("config"), dict):
        return str(found["config"].get("digest", ""))
    return ""


def _doomed_cache(
    store: StoreDirectory,
    now: float,
    older_than: float | None,
    max_size: int | None,
) -> list[tuple[str, Digest]]:
    """Pick the cache entries to drop: too old, or beyond the size budget.

    For the size budget the newest entries are kept while the blobs they
    need (each counted once) fit in ``max_size`` bytes; from the first
    entry that does not fit, that entry and every older one go.
    """
    entries = sorted(store.cache_entries(), key=lambda e: e[2], reverse=True)
    doomed: list[tuple[str, Digest]] = []
    kept: set[Digest] = set()
    total = 0
    over = False
    for key, digest, mtime in entries:
        if older_than is not None and mtime <= now - older_than:
            doomed.append((key, digest))
            continue
        if max_size is None:
            continue
        if not over:
            new = reach(store, digest).blobs - kept
            size = sum(_file_size(store.blob_path(d)) for d in new)
            if total + size <= max_size:
                kept |= new
                total += size
                continue
            over = True
        doomed.append((key, digest))
    return doomed


def _older(path: Path, cutoff: float) -> bool:
    try:
        return os.lstat(path).st_mtime <= cutoff
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
