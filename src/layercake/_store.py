"""The public ``Store``: where a user's images, layers and containers live."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import platformdirs

from layercake._image import Image
from layercake.errors import ImageNotFound, InvalidReference
from layercake.store import (
    ContainerConfig,
    Descriptor,
    Digest,
    Manifest,
    Reference,
    StoreDirectory,
)
from layercake.store._archive_load import load_archive
from layercake.store._archive_save import (
    ArchiveFormat,
    Compression,
    SavedImage,
    save_archive,
)
from layercake.store._import import import_rootfs

__all__ = ["Store", "default_store_path"]

logger = logging.getLogger(__name__)

_ID_PREFIX_MIN = 4


def default_store_path() -> Path:
    """The store used when none is named: ``$LAYERCAKE_STORE`` or the user data dir."""
    configured = os.environ.get("LAYERCAKE_STORE")
    if configured:
        return Path(configured)
    return Path(platformdirs.user_data_dir("layercake"))


def tag_name(reference: str) -> str:
    """The name a tag is stored under: Docker's short ("familiar") form.

    Raises:
        InvalidReference: the text is not a valid image reference.
    """
    return Reference.parse(reference).familiar


class Store:
    """An image store on disk: an OCI image layout plus unpacked layers.

    Opening a directory that holds no store creates one there. Other tools
    read it as an OCI layout (``skopeo inspect oci:PATH:TAG``).

    Args:
        path: the store's directory; by default ``$LAYERCAKE_STORE`` or the
            platform's user data directory for "layercake".
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self._directory = StoreDirectory(self.path)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def image(self, reference: str) -> Image:
        """Return the image a tag, an image id or an id prefix names.

        Raises:
            ImageNotFound: nothing in the store has that name or id.
        """
        try:
            descriptor = self._directory.resolve_tag(tag_name(reference))
        except InvalidReference:
            descriptor = None
        if descriptor is not None:
            return self._load(descriptor.digest)

        image = self._by_id(reference)
        if image is None:
            raise ImageNotFound(reference)
        return image

    def images(self) -> list[Image]:
        """Every tagged image, once each, sorted by its first tag."""
        seen: dict[Digest, Image] = {}
        for _name, descriptor in self._directory.tags():
            if descriptor.digest not in seen:
                seen[descriptor.digest] = self._load(descriptor.digest)
        return list(seen.values())

    def save(
        self,
        images: Sequence[Image | str],
        path: str | os.PathLike[str],
        *,
        format: ArchiveFormat = "docker",
        compression: Compression = "gzip",
    ) -> None:
        """Write several images into one archive, as ``docker save`` does.

        An image given as a tag is saved with that tag; one given by id has
        no tag in the archive; an ``Image`` object carries all its tags.

        Args:
            images: ``Image`` objects, tags or image ids (at least one).
            path: the archive file to write; replaced only once complete.
            format: ``"docker"`` (``docker load`` and ``podman load`` read
                it) or ``"oci"`` (a tarred OCI image layout).
            compression: ``"gzip"`` (layers compressed while saving) or
                ``"none"`` (layers as stored).

        Raises:
            ValueError: no images, or an unknown format or compression.
            ImageNotFound: a tag or id names no image.
            BlobNotFound: the store lost a blob of an image.
            DigestMismatch: a blob in the store is damaged.
            StoreError: the archive cannot be written.
        """
        if not images:
            raise ValueError("nothing to save: no images given")
        tags: dict[Digest, list[str]] = {}
        for item in images:
            image = self.image(item) if isinstance(item, str) else item
            names = tags.setdefault(image.digest, [])
            if isinstance(item, Image):
                names.extend(item.tags)
            elif self._is_tag(item):
                names.append(tag_name(item))
        saved = [
            SavedImage(digest, tuple(dict.fromkeys(names)))
            for digest, names in tags.items()
        ]
        save_archive(
            self._directory, saved, Path(path), format=format, compression=compression
        )

    def load(self, path: str | os.PathLike[str]) -> list[Image]:
        """Load every image of an archive; return them in archive order.

        Reads ``docker save`` archives (classic and OCI layouts, gzip or
        not) and OCI archives. Every blob is checked against its digest;
        tags are set only when all images are stored.

        Args:
            path: the archive file.

        Returns:
            The loaded images, in the order the archive lists them.

        Raises:
            StoreError: the file cannot be read.
            StoreCorrupted: it is not an image archive.
            DigestMismatch: a blob in it is damaged.
        """
        loaded = load_archive(self._directory, Path(path))
        return [self._load(image.manifest.digest) for image in loaded]

    def import_rootfs(
        self,
        tar_path: str | os.PathLike[str],
        *,
        tag: str | None = None,
        changes: ContainerConfig | None = None,
        **config: Any,
    ) -> Image:
        """Make a one-layer image from a root file system tarball.

        Like ``docker import``: the tarball (plain, gzip, bzip2, xz or zstd)
        becomes the only layer, stored uncompressed.

        Args:
            tar_path: the tarball holding the file system.
            tag: a tag for the new image, if any.
            changes: the run defaults (``Cmd``, ``Env``...) to start from.
            **config: ``ContainerConfig`` fields that override ``changes``,
                e.g. ``cmd=["/bin/sh"]``, ``env=["A=1"]``, ``working_dir="/"``.

        Returns:
            The new image.

        Raises:
            TypeError: a keyword is not a ``ContainerConfig`` field.
            InvalidReference: ``tag`` is not a valid reference.
            StoreError: the tarball cannot be read.
            StoreCorrupted: it is not a tar archive.
            UnsafeArchiveEntry: an entry would escape the file system.
        """
        if tag is not None:
            tag_name(tag)
        run_config = attrs.evolve(changes or ContainerConfig(), **config)
        manifest = import_rootfs(self._directory, Path(tar_path), run_config)
        if tag is not None:
            self._tag(tag, manifest)
        return self._load(manifest.digest)

    def _is_tag(self, text: str) -> bool:
        try:
            return self._directory.resolve_tag(tag_name(text)) is not None
        except InvalidReference:
            return False

    def _by_id(self, text: str) -> Image | None:
        wanted = text.removeprefix("sha256:").lower()
        if len(wanted) < _ID_PREFIX_MIN or not all(
            c in "0123456789abcdef" for c in wanted
        ):
            return None
        matches = {
            image.digest: image
            for image in self.images()
            if image.id.removeprefix("sha256:").startswith(wanted)
        }
        if len(matches) == 1:
            return next(iter(matches.values()))
        return None

    def _load(self, manifest_digest: Digest) -> Image:
        manifest = self._directory.read_json(Manifest, manifest_digest)
        return Image(self, manifest_digest, manifest)

    def _tag(self, name: str, manifest: Descriptor) -> str:
        stored = tag_name(name)
        self._directory.set_tag(stored, manifest)
        logger.info("tagged %s as %s", manifest.digest, stored)
        return stored
