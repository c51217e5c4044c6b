"""Re-hash every blob and unpacked layer of a store; take damaged ones out."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import attrs

from layercake.errors import StoreError

from ._digest import Digest
from ._directory import StoreDirectory
from ._leftovers import temp_prefix
from ._models import Descriptor, ImageConfig, Manifest
from ._pack import pack_directory
from ._space import container_images, reach

__all__ = ["VerifyReport", "verify"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


@attrs.frozen
class VerifyReport:
    """What :func:`verify` checked and found.

    Attributes:
        blobs_checked: blobs re-hashed.
        layers_checked: unpacked layers compared with their blobs.
        problems: one sentence per damaged or missing item, sorted.
    """

    blobs_checked: int
    layers_checked: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether nothing was found damaged or missing."""
        return not self.problems


class _Hasher:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.hash.update(data)
        return len(data)


def verify(store: StoreDirectory) -> VerifyReport:
    """Check every blob against its name and every unpacked layer against its blob.

    A damaged blob is moved to ``tmp/`` (so it is never served again; prune
    deletes it), and a damaged unpacked layer is removed (it is unpacked
    again from its blob when needed). Blobs an image needs but the store
    lacks are reported too.
    """
    problems: list[str] = []
    blobs = store.blob_digests()
    for digest in blobs:
        actual = _hash_file(store.blob_path(digest))
        if actual is not None and actual != digest:
            moved = _quarantine(store, digest)
            problems.append(
                f"blob {digest} is damaged: its content hashes to {actual} "
                f"(moved to {moved})"
            )

    layers: dict[Digest, Descriptor] = {}
    roots = [d.digest for _, d in store.tags()] + [d.digest for d in store.untagged()]
    roots += [d for _, d, _ in store.cache_entries()]
    roots += list(container_images(store).values())
    missing: dict[Digest, set[Digest]] = {}
    for root in dict.fromkeys(roots):
        for needed in reach(store, root).blobs:
            if not store.has_blob(needed):
                missing.setdefault(needed, set()).add(root)
        layers.update(_layers_of(store, root))
    for needed, users in missing.items():
        problems.append(
            f"blob {needed} is missing; {len(users)} manifest(s) need it: "
            + ", ".join(str(user) for user in sorted(users))
        )

    checked = 0
    for path in sorted(store.layers_dir.iterdir()):
        try:
            diff_id = Digest.parse(f"sha256:{path.name}")
        except StoreError:
            continue
        layer = layers.get(diff_id)
        if layer is None or not store.has_blob(layer.digest):
            continue
        checked += 1
        if not _same_tree(store, path, layer, diff_id):
            store.remove_unpacked(diff_id)
            problems.append(
                f"unpacked layer {diff_id} differs from its blob (removed; it is "
                "unpacked again when needed)"
            )

    report = VerifyReport(len(blobs), checked, tuple(sorted(set(problems))))
    for problem in report.problems:
        logger.warning("verify: %s", problem)
    return report


def _hash_file(path: Path) -> Digest | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return Digest("sha256", digest.hexdigest())


def _quarantine(store: StoreDirectory, digest: Digest) -> Path:
    target = Path(
        tempfile.mkdtemp(prefix=temp_prefix("damaged"), dir=store.root / "tmp")
    )
    moved = target / digest.hex
    os.rename(store.blob_path(digest), moved)
    return moved


def _layers_of(store: StoreDirectory, manifest: Digest) -> dict[Digest, Descriptor]:
    try:
        parsed = store.read_json(Manifest, manifest)
        config = store.read_json(ImageConfig, parsed.config.digest)
    except StoreError:
        return {}
    if len(config.rootfs.diff_ids) != len(parsed.layers):
        return {}
    return dict(zip(config.rootfs.diff_ids, parsed.layers, strict=True))


def _same_tree(
    store: StoreDirectory, path: Path, layer: Descriptor, diff_id: Digest
) -> bool:
    """Unpack the blob afresh and compare both trees packed the same way."""
    staging = store.tmp_dir("verify-")
    try:
        try:
            store.extract_owned(layer, diff_id, staging)
        except StoreError:
            # The blob itself is bad; the blob check reports it.
            return True
        if store.mapped_root is None:
            return _tree_digest(staging) == _tree_digest(path)
        # Files of subordinate ids may be unreadable to the user: compare as
        # root of the user namespace that owns them.
        mapped = store.mapped_root(
            lambda: (_tree_digest(staging) == _tree_digest(path)).to_bytes()
        )
        return mapped == b"\x01"
    finally:
        store.remove_tree(staging)


def _tree_digest(path: Path) -> str:
    hasher = _Hasher()
    try:
        pack_directory(path, hasher)
    except (StoreError, OSError):
        return ""
    return hasher.hash.hexdigest()
