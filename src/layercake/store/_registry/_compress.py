"""Gzip versions of uncompressed layers, made once and remembered.

``push(..., compression="gzip")`` needs a gzip blob for each uncompressed
layer. Like pigz, a layer is cut into 4 MiB blocks compressed on all cores
(zlib releases the GIL) and written in order as consecutive gzip members,
which every gzip reader (Go's included) reads as one stream. A block whose
first 64 KiB shrinks by less than 10% is stored rather than deflated, which is what
makes random or already-compressed data cheap. The output depends only on
the input, so the same layer always gets the same digest. The result is
recorded in ``cache/registry-gzip.json`` (uncompressed digest ->
gzip digest and size), so pushing the same layer again does not compress it
again. The record is a hint: an entry whose blob is gone is made anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from layercake.errors import DigestMismatch, StoreError

from .._digest import Digest
from .._directory import StoreDirectory
from .._leftovers import temp_prefix
from .._media import MediaType
from .._models import Descriptor

__all__ = ["GZIP_LEVEL", "gzip_layers"]

logger = logging.getLogger(__name__)

#: The zlib level used: the fastest, since pushing must not wait on the CPU
#: (level 6 costs about 3.5x the time for 10-15% smaller layers).
GZIP_LEVEL = 1
#: A block whose probe shrinks less than this is stored, not deflated.
_WORTH_DEFLATING = 0.9
_FILE = "registry-gzip.json"
_BLOCK = 4 << 20
_PROBE = 64 << 10
_WORKERS = max(2, os.cpu_count() or 1)
_lock = threading.Lock()


def gzip_layers(
    directory: StoreDirectory, layers: tuple[Descriptor, ...]
) -> list[Descriptor]:
    """Return ``layers`` with each uncompressed OCI layer replaced by gzip.

    Other layers are returned unchanged.

    Raises:
        BlobNotFound: a layer blob is missing from the store.
        DigestMismatch: a layer blob no longer hashes to its digest.
    """
    path = directory.root / "cache" / _FILE
    known = _read(path)
    work = [layer for layer in layers if layer.media_type == MediaType.OCI_LAYER]
    done = {layer.digest: _one(directory, layer, known) for layer in work}
    fresh = {str(k): [str(v.digest), v.size] for k, v in done.items()}
    if any(known.get(k) != v for k, v in fresh.items()):
        with _lock:
            _write(path, directory.root / "tmp", {**_read(path), **fresh})
    return [done.get(layer.digest, layer) for layer in layers]


def _one(
    directory: StoreDirectory, layer: Descriptor, known: dict[str, list[object]]
) -> Descriptor:
    entry = known.get(str(layer.digest))
    if entry is not None:
        try:
            digest: Digest | None = Digest.parse(str(entry[0]))
        except (StoreError, IndexError, KeyError, TypeError):
            digest = None
        if digest is not None and directory.has_blob(digest):
            size = directory.blob_path(digest).stat().st_size
            return _gzip_descriptor(layer, digest, size)

    plain = hashlib.sha256()
    with (
        directory.open_blob(layer.digest) as source,
        directory.blob_writer() as writer,
        ThreadPoolExecutor(max_workers=_WORKERS) as pool,
    ):
        while True:
            blocks = [source.read(_BLOCK) for _ in range(_WORKERS * 2)]
            blocks = [block for block in blocks if block]
            if not blocks:
                break
            for block in blocks:
                plain.update(block)
            for member in pool.map(_member, blocks):
                writer.write(member)
        # A damaged stored layer must not become a valid-looking gzip blob.
        actual = Digest("sha256", plain.hexdigest())
        if actual != layer.digest:
            raise DigestMismatch(
                str(layer.digest),
                str(actual),
                path=str(directory.blob_path(layer.digest)),
            )
    logger.info("compressed layer %s into %s", layer.digest, writer.digest)
    return _gzip_descriptor(layer, writer.digest, writer.size)


def _member(block: bytes) -> bytes:
    probe = block[:_PROBE]
    level = GZIP_LEVEL
    if len(zlib.compress(probe, 1)) > len(probe) * _WORTH_DEFLATING:
        level = 0
    # wbits=31 writes a gzip member with mtime 0 and no file name.
    return zlib.compress(block, level, wbits=31)


def _gzip_descriptor(layer: Descriptor, digest: Digest, size: int) -> Descriptor:
    return attrs.evolve(
        layer, media_type=MediaType.OCI_LAYER_GZIP, digest=digest, size=size
    )


def _read(path: Path) -> dict[str, list[object]]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, temp_dir: Path, data: dict[str, list[object]]) -> None:
    fd, temp = tempfile.mkstemp(dir=temp_dir, prefix=temp_prefix("gzip"))
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(data, file, sort_keys=True)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
