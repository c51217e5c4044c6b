"""Read image archives into a store: ``docker save`` layouts and OCI archives.

Three layouts are understood: Docker's classic one (``manifest.json`` with
``<id>/layer.tar`` files), the OCI layout current Docker writes beside its
``manifest.json``, and a plain tarred OCI image layout (``index.json``). The
archive is read in place (tar member offsets, no extraction); each layer is
decompressed into an uncompressed blob while both its archive digest and its
diff id are checked. Tags are written last, all in one index update, so a
failed load leaves no image visible, only unreferenced blobs that ``prune``
removes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import attrs

from layercake.errors import (
    DigestMismatch,
    InvalidReference,
    StoreCorrupted,
    StoreError,
)

from ._digest import Digest
from ._directory import StoreDirectory
from ._index import REF_NAME
from ._media import MediaType
from ._models import Descriptor, ImageConfig, Index, Manifest, from_json, host_platform
from ._reference import Reference
from ._unpack import HashingReader, decompressed

__all__ = ["LoadedImage", "load_archive"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_MAX_JSON = 64 << 20
_CONTAINERD_NAME = "io.containerd.image.name"


@attrs.frozen
class LoadedImage:
    """An image a load wrote: its manifest's descriptor and its tags."""

    manifest: Descriptor
    tags: tuple[str, ...]


def load_archive(store: StoreDirectory, path: Path) -> list[LoadedImage]:
    """Load every image of the archive at ``path`` into ``store``.

    Returns the images in archive order. Tags named in the archive are set
    (replacing existing tags of those names) only after every image is
    complete.

    Raises:
        StoreError: the file cannot be read.
        StoreCorrupted: it is not an image archive, or its JSON is malformed.
        DigestMismatch: a blob does not match its digest or diff id.
    """
    with _open(path) as archive:
        if archive.has("manifest.json"):
            loaded = list(_DockerLoader(store, archive).load())
        elif archive.has("index.json"):
            loaded = list(_OciLoader(store, archive).load())
        else:
            raise StoreCorrupted(
                f"not an image archive: {path} has neither manifest.json "
                "nor index.json",
                path=str(path),
            )

    store.set_tags([(tag, image.manifest) for image in loaded for tag in image.tags])
    for image in loaded:
        if not image.tags:
            store.add_untagged(image.manifest)
    logger.info("loaded %d image(s) from %s", len(loaded), path)
    return loaded


class _Archive:
    def __init__(self, path: Path, tar: tarfile.TarFile) -> None:
        self.path = path
        self._tar = tar
        self._members: dict[str, tarfile.TarInfo] = {}
        for info in tar.getmembers():
            self._members[_normal(info.name)] = info

    def has(self, name: str) -> bool:
        return _normal(name) in self._members

    def size(self, name: str) -> int | None:
        info = self._members.get(_normal(name))
        return info.size if info is not None and info.isfile() else None

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        info = self._members.get(_normal(name))
        if info is None:
            raise StoreCorrupted(
                f"invalid image archive {self.path}: {name} is missing",
                path=str(self.path),
            )
        try:
            file = self._tar.extractfile(info)
        except (KeyError, tarfile.TarError) as exc:
            raise StoreCorrupted(
                f"invalid image archive {self.path}: cannot read {name} ({exc})",
                path=str(self.path),
            ) from exc
        if file is None:
            raise StoreCorrupted(
                f"invalid image archive {self.path}: {name} is not a file",
                path=str(self.path),
            )
        with file:
            yield file

    def read(self, name: str) -> bytes:
        with self.open(name) as file:
            data = file.read(_MAX_JSON + 1)
        if len(data) > _MAX_JSON:
            raise StoreCorrupted(
                f"invalid image archive {self.path}: {name} is too large",
                path=str(self.path),
            )
        return data

    def where(self, name: str) -> str:
        return f"{self.path}:{name}"


@contextmanager
def _open(path: Path) -> Iterator[_Archive]:
    with contextlib.ExitStack() as stack:
        tar = _open_tar(path, stack)
        try:
            yield _Archive(path, tar)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise StoreError(f"cannot load {path}: {exc}", path=str(path)) from exc
            raise StoreCorrupted(
                f"invalid image archive {path}: {exc}", path=str(path)
            ) from exc


def _open_tar(path: Path, stack: contextlib.ExitStack) -> tarfile.TarFile:
    try:
        return stack.enter_context(tarfile.open(path, "r:*"))
    except OSError as exc:
        raise StoreError(
            f"cannot read archive {path}: {exc.strerror}", path=str(path)
        ) from exc
    except tarfile.TarError as exc:
        raise StoreCorrupted(
            f"not an image archive: {path} is not a tar file ({exc})", path=str(path)
        ) from exc


def _normal(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


class _Loader:
    def __init__(self, store: StoreDirectory, archive: _Archive) -> None:
        self._store = store
        self._archive = archive

    def _check_size(self, name: str, declared: int | None) -> None:
        """Refuse a member whose size is not the one its descriptor declares."""
        actual = self._archive.size(name)
        if declared is not None and actual is not None and actual != declared:
            path = str(self._archive.path)
            raise StoreCorrupted(
                f"invalid image archive {path}: {name} is {actual} bytes, "
                f"its descriptor says {declared}",
                path=path,
            )

    def _json(
        self, name: str, expected: Digest | None = None, size: int | None = None
    ) -> tuple[bytes, Any]:
        self._check_size(name, size)
        data = self._archive.read(name)
        if expected is not None:
            actual = Digest.of_bytes(data)
            if actual != expected:
                raise DigestMismatch(
                    str(expected), str(actual), path=self._archive.where(name)
                )
        try:
            return data, json.loads(data)
        except ValueError as exc:
            raise StoreCorrupted(
                f"invalid image archive {self._archive.path}: {name} is not JSON",
                path=str(self._archive.path),
            ) from exc

    def _image(
        self,
        config_name: str,
        config_digest: Digest | None,
        layer_names: list[tuple[str, Digest | None]],
        sizes: tuple[int | None, list[int | None]] | None = None,
    ) -> Descriptor:
        """Store one image's config and layers; return its new manifest's descriptor.

        ``sizes`` are the config's and the layers' declared sizes, when the
        archive declares them (OCI descriptors do).
        """
        config_size, layer_sizes = sizes or (None, [None] * len(layer_names))
        data, _ = self._json(config_name, config_digest, config_size)
        config_digest = Digest.of_bytes(data)
        config = from_json(ImageConfig, data, digest=config_digest)
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(layer_names):
            raise StoreCorrupted(
                f"invalid image archive {self._archive.path}: config {config_digest} "
                f"lists {len(diff_ids)} layers, the manifest {len(layer_names)}",
                path=str(self._archive.path),
            )

        for (name, _digest), size in zip(layer_names, layer_sizes, strict=True):
            self._check_size(name, size)
        layers = tuple(
            self._layer(name, raw_digest, diff_id)
            for (name, raw_digest), diff_id in zip(layer_names, diff_ids, strict=True)
        )
        self._store.write_blob(data, expected=config_digest)
        config_descriptor = Descriptor(MediaType.OCI_CONFIG, config_digest, len(data))
        return self._store.write_json(
            Manifest(config=config_descriptor, layers=layers), MediaType.OCI_MANIFEST
        )

    def _layer(
        self, name: str, raw_digest: Digest | None, diff_id: Digest
    ) -> Descriptor:
        """Store a layer uncompressed, checking its archive digest and diff id."""
        target = self._store.blob_path(diff_id)
        if self._store.has_blob(diff_id):
            return Descriptor(MediaType.OCI_LAYER, diff_id, target.stat().st_size)

        where = self._archive.where(name)
        with self._archive.open(name) as member:
            raw = HashingReader(member)
            try:
                limit = self._store.layer_size_limit()
                refusal = self._store.layer_refusal(f"{diff_id} ({where})", limit)
                with self._store.blob_writer(expected=diff_id) as writer:
                    with decompressed(raw) as plain:  # type: ignore[arg-type]
                        while chunk := plain.read(_CHUNK):
                            writer.write(chunk)
                            if writer.size > limit:
                                raise StoreError(refusal)
                    actual_raw = raw.drain()
                    if raw_digest is not None and actual_raw != raw_digest:
                        raise DigestMismatch(
                            str(raw_digest), str(actual_raw), path=where
                        )
            except DigestMismatch as exc:
                if exc.expected == str(diff_id):
                    raise DigestMismatch(exc.expected, exc.actual, path=where) from None
                raise
        return Descriptor(MediaType.OCI_LAYER, diff_id, writer.size)


class _DockerLoader(_Loader):
    def load(self) -> Iterator[LoadedImage]:
        _, entries = self._json("manifest.json")
        if not isinstance(entries, list):
            raise self._malformed("manifest.json is not a list")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise self._malformed("a manifest.json entry has no Config")
            layers = entry.get("Layers") or []
            if not isinstance(layers, list) or not all(
                isinstance(x, str) for x in layers
            ):
                raise self._malformed("a manifest.json entry has bad Layers")
            config_name = entry["Config"]
            manifest = self._image(
                config_name,
                _blob_digest(config_name),
                [(name, _blob_digest(name)) for name in layers],
            )
            tags = tuple(_tag(self._archive, t) for t in entry.get("RepoTags") or [])
            yield LoadedImage(manifest, tags)

    def _malformed(self, reason: str) -> StoreCorrupted:
        path = str(self._archive.path)
        return StoreCorrupted(f"invalid image archive {path}: {reason}", path=path)


class _OciLoader(_Loader):
    def load(self) -> Iterator[LoadedImage]:
        data, _ = self._json("index.json")
        index = from_json(Index, data)
        for entry in index.manifests:
            manifest = self._resolve(entry)
            stored = self._image(
                _blob_name(manifest.config.digest),
                manifest.config.digest,
                [(_blob_name(layer.digest), layer.digest) for layer in manifest.layers],
                (manifest.config.size, [layer.size for layer in manifest.layers]),
            )
            name = entry.annotations.get(_CONTAINERD_NAME) or entry.annotations.get(
                REF_NAME
            )
            tags = (_tag(self._archive, name),) if name else ()
            yield LoadedImage(stored, tags)

    def _resolve(self, entry: Descriptor) -> Manifest:
        """Follow indexes down to the manifest for this machine's platform."""
        for _depth in range(8):
            data, _ = self._json(_blob_name(entry.digest), entry.digest, entry.size)
            if entry.media_type not in MediaType.INDEXES:
                return from_json(Manifest, data, digest=entry.digest)
            nested = from_json(Index, data, digest=entry.digest).manifests
            entry = _for_platform(nested, self._archive)
        raise StoreCorrupted(
            f"invalid image archive {self._archive.path}: indexes nested too deep",
            path=str(self._archive.path),
        )


def _for_platform(entries: tuple[Descriptor, ...], archive: _Archive) -> Descriptor:
    host = host_platform()
    for entry in entries:
        platform = entry.platform
        if platform is None or (
            platform.os == host.os and platform.architecture == host.architecture
        ):
            return entry
    raise StoreCorrupted(
        f"invalid image archive {archive.path}: no image for "
        f"{host.os}/{host.architecture}",
        path=str(archive.path),
    )


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _blob_digest(name: str) -> Digest | None:
    """The digest a ``blobs/<alg>/<hex>`` member name promises, if it is one."""
    parts = _normal(name).split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        try:
            return Digest.parse(f"{parts[1]}:{parts[2]}")
        except StoreError:
            return None
    return None


def _tag(archive: _Archive, name: str) -> str:
    try:
        return Reference.parse(name).familiar
    except InvalidReference as exc:
        raise StoreCorrupted(
            f"invalid image archive {archive.path}: bad tag {name!r} ({exc.reason})",
            path=str(archive.path),
        ) from exc
