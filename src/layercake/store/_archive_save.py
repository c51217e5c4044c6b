"""Write images to a tar archive: ``docker save``'s layout or an OCI archive.

Both formats hold an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/...``); the docker format adds ``manifest.json`` as current
Docker does, so ``docker load`` and ``podman load`` read it. Layers are
gzip-compressed while the archive is written (several at once, each into a
temp file in the store), because the store keeps them uncompressed.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Literal

import attrs

from layercake.errors import DigestMismatch, StoreError

from ._atomic import output_file
from ._digest import Digest
from ._directory import StoreDirectory
from ._index import REF_NAME
from ._media import MediaType
from ._models import Descriptor, Index, Manifest, to_json
from ._progress import ProgressCallback, TransferProgress
from ._reference import Reference

__all__ = ["ArchiveFormat", "Compression", "SavedImage", "save_archive"]

logger = logging.getLogger(__name__)

ArchiveFormat = Literal["docker", "oci"]
Compression = Literal["gzip", "zstd", "none"]

_CHUNK = 1 << 20
# Level 6 is gzip's own default: most of level 9's ratio at a third the time.
_GZIP_LEVEL = 6
_UNCOMPRESSED = frozenset(
    {MediaType.OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar"}
)
_CONTAINERD_NAME = "io.containerd.image.name"


@attrs.frozen
class SavedImage:
    """One image to write into an archive, with the tags it carries there."""

    manifest: Digest
    tags: tuple[str, ...] = ()


@attrs.frozen
class _Blob:
    descriptor: Descriptor
    source: Path
    temporary: bool


def save_archive(
    store: StoreDirectory,
    images: Sequence[SavedImage],
    path: Path,
    *,
    format: ArchiveFormat = "docker",
    compression: Compression = "gzip",
    on_progress: ProgressCallback | None = None,
) -> None:
    """Write ``images`` from ``store`` into the tar archive ``path``.

    ``on_progress`` hears how far each layer has come, from worker threads.

    The archive appears at ``path`` only when complete (written beside it,
    then renamed). Every blob is re-hashed while it is copied; a damaged one
    stops the save.

    Raises:
        ValueError: an unknown format or compression.
        BlobNotFound: a blob of an image is missing from the store.
        DigestMismatch: a blob in the store is damaged.
        StoreError: the archive cannot be written (the message says why).
    """
    if format not in ("docker", "oci"):
        raise ValueError(f"unknown archive format {format!r}: use 'docker' or 'oci'")
    if compression not in ("gzip", "zstd", "none"):
        raise ValueError(
            f"unknown compression {compression!r}: use 'gzip', 'zstd' or 'none'"
        )

    path = Path(path).absolute()
    staging = store.tmp_dir("save-")
    try:
        with output_file(path) as out:
            writer = _Writer(store, out, staging, format, compression)
            writer.progress = on_progress
            writer.reference = str(path)
            writer.write(images)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("saved %d image(s) to %s", len(images), path)


class _Writer:
    def __init__(
        self,
        store: StoreDirectory,
        out: IO[bytes],
        staging: Path,
        format: ArchiveFormat,
        compression: Compression,
    ) -> None:
        self._store = store
        self._out = out
        self._staging = staging
        self._format = format
        self._compression = compression
        self._written: set[str] = set()
        self.progress: ProgressCallback | None = None
        self.reference = ""

    def _report(self, layer: Descriptor, done: int) -> None:
        if self.progress is not None:
            self.progress(
                TransferProgress(layer.digest, layer.size, done, self.reference)
            )

    def write(self, images: Sequence[SavedImage]) -> None:
        with tarfile.open(
            fileobj=self._out, mode="w|", format=tarfile.PAX_FORMAT
        ) as self._tar:
            self._write(images)

    def _write(self, images: Sequence[SavedImage]) -> None:
        self._add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        manifests = [self._store.read_json(Manifest, i.manifest) for i in images]
        layers = {
            layer.digest: layer for manifest in manifests for layer in manifest.layers
        }
        converted = self._layers(list(layers.values()))

        index_entries: list[Descriptor] = []
        docker_entries: list[dict[str, object]] = []
        for image, manifest in zip(images, manifests, strict=True):
            self._add_blob(
                self._store.blob_path(manifest.config.digest), manifest.config
            )
            new_layers = tuple(converted[layer.digest] for layer in manifest.layers)
            written = attrs.evolve(manifest, layers=new_layers)
            data = to_json(written)
            descriptor = Descriptor(
                media_type=written.media_type,
                digest=Digest.of_bytes(data),
                size=len(data),
            )
            self._add_bytes(_blob_name(descriptor.digest), data)
            index_entries.extend(self._index_entries(descriptor, image.tags))
            docker_entries.append(
                {
                    "Config": _blob_name(manifest.config.digest),
                    "RepoTags": list(image.tags) or None,
                    "Layers": [_blob_name(layer.digest) for layer in new_layers],
                }
            )

        self._add_bytes("index.json", to_json(Index(manifests=tuple(index_entries))))
        if self._format == "docker":
            self._add_bytes("manifest.json", json.dumps(docker_entries).encode())

    def _index_entries(
        self, descriptor: Descriptor, tags: tuple[str, ...]
    ) -> Iterator[Descriptor]:
        if not tags:
            yield descriptor
        for tag in tags:
            if self._format == "docker":
                # Current Docker names the image in full and the tag alone.
                reference = Reference.parse(tag)
                annotations = {
                    _CONTAINERD_NAME: f"{reference.repository}:{reference.tag}",
                    REF_NAME: reference.tag or "latest",
                }
            else:
                annotations = {REF_NAME: tag}
            yield attrs.evolve(descriptor, annotations=annotations)

    def _layers(self, layers: list[Descriptor]) -> dict[Digest, Descriptor]:
        """Add every layer blob, compressing in worker threads when asked."""
        if self._compression == "none":
            for layer in layers:
                self._report(layer, 0)
                self._add_blob(self._store.blob_path(layer.digest), layer)
                self._report(layer, layer.size)
            return {layer.digest: layer for layer in layers}
        for layer in layers:
            self._report(layer, 0)

        converted: dict[Digest, Descriptor] = {}
        workers = max(1, min(len(layers), os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(self._compressed, layer) for layer in layers]
            try:
                for layer, future in zip(layers, futures, strict=True):
                    blob = future.result()
                    self._add_blob(
                        blob.source, blob.descriptor, verify=not blob.temporary
                    )
                    if blob.temporary:
                        os.unlink(blob.source)
                    converted[layer.digest] = blob.descriptor
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return converted

    def _compressed(self, layer: Descriptor) -> _Blob:
        source = self._store.blob_path(layer.digest)
        if layer.media_type not in _UNCOMPRESSED:
            self._report(layer, layer.size)
            return _Blob(layer, source, temporary=False)

        target = self._staging / layer.digest.hex
        if self._compression == "zstd":
            return self._zstd(layer, source, target)
        plain_hash = hashlib.sha256()
        with self._store.open_blob(layer.digest) as blob, open(target, "wb") as raw:
            hashing = _HashingWriter(raw)
            with gzip.GzipFile(
                filename="",
                mode="wb",
                fileobj=hashing,
                compresslevel=_GZIP_LEVEL,
                mtime=0,
            ) as gz:
                done = 0
                while chunk := blob.read(_CHUNK):
                    plain_hash.update(chunk)
                    gz.write(chunk)
                    done += len(chunk)
                    self._report(layer, done)
        actual = Digest("sha256", plain_hash.hexdigest())
        if actual != layer.digest:
            raise DigestMismatch(str(layer.digest), str(actual), path=str(source))
        descriptor = Descriptor(
            media_type=MediaType.OCI_LAYER_GZIP,
            digest=hashing.digest(),
            size=hashing.size,
        )
        return _Blob(descriptor, target, temporary=True)

    def _zstd(self, layer: Descriptor, source: Path, target: Path) -> _Blob:
        """Compress with the zstd program (the standard library has no zstd)."""
        plain_hash = hashlib.sha256()
        with open(target, "wb") as raw:
            try:
                child = subprocess.Popen(
                    ["zstd", "-q", "-3", "-c"], stdin=subprocess.PIPE, stdout=raw
                )
            except FileNotFoundError:
                raise StoreError(
                    "cannot write zstd layers: the zstd program is missing"
                ) from None
            assert child.stdin is not None
            try:
                with self._store.open_blob(layer.digest) as blob:
                    while chunk := blob.read(_CHUNK):
                        plain_hash.update(chunk)
                        child.stdin.write(chunk)
                child.stdin.close()
            finally:
                code = child.wait()
        if code != 0:
            raise StoreError(f"zstd failed with exit code {code} on {source}")
        self._report(layer, layer.size)
        actual = Digest("sha256", plain_hash.hexdigest())
        if actual != layer.digest:
            raise DigestMismatch(str(layer.digest), str(actual), path=str(source))
        digest = hashlib.sha256()
        with open(target, "rb") as written:
            while chunk := written.read(_CHUNK):
                digest.update(chunk)
        descriptor = Descriptor(
            media_type=MediaType.OCI_LAYER_ZSTD,
            digest=Digest("sha256", digest.hexdigest()),
            size=target.stat().st_size,
        )
        return _Blob(descriptor, target, temporary=True)

    def _add_bytes(self, name: str, data: bytes) -> None:
        if name in self._written:
            return
        self._written.add(name)
        info = _info(name, len(data))
        self._tar.addfile(info, _BytesReader(data))

    def _add_blob(
        self, source: Path, descriptor: Descriptor, *, verify: bool = True
    ) -> None:
        name = _blob_name(descriptor.digest)
        if name in self._written:
            return
        self._written.add(name)
        with open(source, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            reader = _HashingFile(file)
            self._tar.addfile(_info(name, size), reader)
        if verify and reader.digest() != descriptor.digest:
            raise DigestMismatch(
                str(descriptor.digest), str(reader.digest()), path=str(source)
            )


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._offset + size
        chunk = bytes(self._view[self._offset : end])
        self._offset += len(chunk)
        return chunk


class _HashingFile:
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._hash.update(data)
        return data

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())


class _HashingWriter:
    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())
