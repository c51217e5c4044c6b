"""The public ``Store``: where a user's images, layers and containers live."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from layercake._image import Image, credentials_of
from layercake._in_thread import in_worker_thread
from layercake._storage import choose_driver, requested_driver
from layercake.errors import (
    ContainerConfigError,
    ContainerError,
    ImageInUse,
    ImageNotFound,
    InvalidReference,
    StoreError,
)
from layercake.store import (
    ContainerConfig,
    Descriptor,
    Digest,
    Manifest,
    Platform,
    Reference,
    StoreDirectory,
)

if TYPE_CHECKING:
    from layercake._container import Container
    from layercake._networks import Network
    from layercake.store._archive_save import ArchiveFormat, Compression
    from layercake.store._registry import TransferProgress
    from layercake.store._space import DiskUsage, PruneReport
    from layercake.store._verify import VerifyReport

__all__ = ["Store", "default_store_path"]

_credentials = credentials_of

logger = logging.getLogger(__name__)

_ID_PREFIX_MIN = 4
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def default_store_path() -> Path:
    """The store used when none is named: ``$LAYERCAKE_STORE`` or the user data dir."""
    configured = os.environ.get("LAYERCAKE_STORE")
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_data_dir("layercake"))


def _id_mapping() -> dict[str, Any]:
    """How an unprivileged user's store gives files the owners of the images.

    Layers are unpacked as the user; with a full id map (subordinate ids)
    their owners are then set inside a user namespace, so files land on
    disk owned by subordinate ids, as podman's rootless storage has them.
    Layers packed from a container record the ids as seen inside it.
    """
    if os.geteuid() == 0:
        return {}
    from layercake import runtime

    idmap = runtime.id_map()
    mapped = {"mapped_root": runtime.as_mapped_root} if idmap.full else {}
    return {**mapped, "owners_inside": idmap.to_inside}


def _looks_like_id(text: str) -> bool:
    hex_part = text.removeprefix("sha256:")
    return bool(hex_part) and all(c in "0123456789abcdef" for c in hex_part)


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
        storage_driver: how containers get their root file system:
            ``"overlay"`` (overlayfs over the unpacked layers), ``"copy"``
            (a copy of the layers, for where overlayfs cannot be mounted) or
            ``"auto"`` (overlay where a test mount works, else copy, logged
            at INFO with the reason); by default
            ``$LAYERCAKE_STORAGE_DRIVER`` or ``"auto"``.

    Raises:
        StoreError: the directory cannot be opened.
        ContainerConfigError: ``storage_driver`` names no driver.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        storage_driver: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        #: The storage driver asked for: "auto", "overlay" or "copy".
        self.storage_driver = requested_driver(storage_driver)
        self._chosen_driver: str | None = None
        try:
            self._directory = StoreDirectory(self.path, **_id_mapping())
        except OSError as error:
            raise StoreError(
                f"cannot open the store at {self.path}: {error.strerror or error}",
                path=str(self.path),
            ) from None

    def _container_driver(self) -> str:
        """The storage driver new containers get (``auto`` decided once)."""
        if self._chosen_driver is None:
            self._chosen_driver = choose_driver(
                self.storage_driver, self._directory.containers_dir
            )
        return self._chosen_driver

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def image(self, reference: str) -> Image:
        """Return the image a tag, an image id or an id prefix names.

        A digest reference (``name@sha256:...``) or a full ``sha256:...``
        that is no image id names the stored image whose manifest has that
        digest.

        Raises:
            InvalidReference: the text is neither an id nor a valid name.
            ImageNotFound: nothing in the store has that name or id.
        """
        try:
            parsed: Reference | None = Reference.parse(reference)
        except InvalidReference:
            parsed = None
        if parsed is not None and parsed.digest is not None:
            image = self._by_manifest(parsed.digest)
            if image is None:
                raise ImageNotFound(reference)
            return image
        if parsed is not None:
            descriptor = self._directory.resolve_tag(parsed.familiar)
            if descriptor is not None:
                return self._load(descriptor.digest)

        image = self._by_id(reference)
        if image is None and reference.startswith("sha256:"):
            with contextlib.suppress(StoreError):
                image = self._by_manifest(Digest.parse(reference))
        if image is None:
            # Neither a name nor an id: say what is wrong with it as a name.
            if not _looks_like_id(reference):
                Reference.parse(reference)
            raise ImageNotFound(reference)
        return image

    def images(
        self, filters: Mapping[str, str | bool | Sequence[str]] | None = None
    ) -> list[Image]:
        """Every image, once each: tagged ones sorted by first tag, then dangling.

        Args:
            filters: Docker's ``images --filter`` keys: ``dangling``
                (``"true"``/``"false"`` or a bool), ``label`` (``"key"`` or
                ``"key=value"``, a list must all match) and ``reference``
                (glob patterns over ``name`` or ``name:tag``, any may match;
                ``*`` stops at ``/``).

        Returns:
            The matching images.

        Raises:
            ValueError: an unknown filter key or a bad ``dangling`` value.
            StoreCorrupted: ``index.json`` cannot be read.
        """
        from layercake.store._filters import ImageFilter

        match = ImageFilter.parse(filters or {})
        seen: dict[Digest, Image] = {}
        for _name, descriptor in self._directory.tags():
            if descriptor.digest not in seen:
                seen[descriptor.digest] = self._load(descriptor.digest)
        for descriptor in self._directory.untagged():
            if descriptor.digest not in seen:
                with contextlib.suppress(StoreError):
                    seen[descriptor.digest] = self._load(descriptor.digest)
        return [
            image
            for image in seen.values()
            if match.matches(image.tags, image.config.config.labels)
        ]

    def untag(self, name: str) -> None:
        """Remove the tag ``name`` (``docker rmi`` of one of several tags).

        The image itself stays; if that was its last tag it becomes
        dangling (listed with no tags) until removed or pruned.

        Args:
            name: the tag, in any form Docker accepts (``busybox`` is
                ``busybox:latest``).

        Raises:
            InvalidReference: ``name`` is not a valid reference.
            ImageNotFound: no tag has that name.
        """
        if not self._directory.remove_tag(tag_name(name)):
            raise ImageNotFound(name)
        logger.info("untagged %s", name)

    def remove(self, reference: str, *, force: bool = False) -> list[str]:
        """Remove an image, as ``docker rmi`` does.

        A tag of an image that has other tags is only untagged. Otherwise
        all its tags go and the image is deleted; its blobs and unpacked
        layers are freed by :meth:`prune` once nothing else uses them.

        Args:
            reference: a tag, an image id or an id prefix.
            force: remove even while containers use the image, or when an
                id names an image with several tags.

        Returns:
            Docker's lines: ``Untagged: NAME`` for each tag removed, then
            ``Deleted: ID`` if the image went.

        Raises:
            ImageNotFound: nothing has that name or id.
            ImageInUse: a container uses the image, or an id names an image
                with several tags, and ``force`` is false.
        """
        image = self.image(reference)
        tags = image.tags
        by_tag = self._is_tag(reference)
        if by_tag and len(tags) > 1:
            self.untag(reference)
            return [f"Untagged: {tag_name(reference)}"]

        from layercake.store._space import container_images

        users = tuple(
            cid
            for cid, digest in container_images(self._directory).items()
            if digest == image.digest
        )
        if users and not force:
            raise ImageInUse(
                f"unable to remove {reference}: container {users[0][:12]} uses "
                f"image {image.short_id} (force to remove anyway)",
                reference=reference,
                container_ids=users,
            )
        if not by_tag and len(tags) > 1 and not force:
            raise ImageInUse(
                f"unable to delete {image.short_id} (must be forced): image is "
                f"referenced in {len(tags)} tags",
                reference=reference,
            )
        names = self._directory.remove_image(image.digest)
        logger.info("removed image %s", image.digest)
        return [f"Untagged: {name}" for name in names] + [f"Deleted: {image.id}"]

    def prune(
        self,
        *,
        dangling: bool = True,
        cache_older_than: float | None = None,
        cache_max_size: int | None = None,
        grace: float = 3600.0,
    ) -> PruneReport:
        """Free space: dangling images, old build cache, unused blobs and layers.

        Nothing an image, a cache entry or a container needs is removed. Blobs,
        unpacked layers and ``tmp/`` leftovers must also be older than
        ``grace``, since a build or load still running may be about to use
        them; but ``tmp/`` leftovers of a process that has exited go at
        once.

        Args:
            dangling: remove images no tag names (unless a container uses one).
            cache_older_than: remove build cache entries at least this many
                seconds old (``0`` for all); ``None`` keeps the cache.
            cache_max_size: keep the newest build cache entries whose blobs
                fit in this many bytes and remove the rest; ``None`` sets
                no size limit.
            grace: seconds an unreferenced file must have existed to go.

        Returns:
            What was removed and the bytes reclaimed.

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        from layercake.store._space import prune

        return prune(
            self._directory,
            dangling=dangling,
            cache_older_than=cache_older_than,
            cache_max_size=cache_max_size,
            grace=grace,
        )

    def df(self) -> DiskUsage:
        """Measure the space used by images, layers, containers and the cache.

        Returns:
            Counts and byte sizes (``docker system df``); blobs two images
            share are counted once in ``images_size`` and again in
            ``shared_size``.

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        from layercake.store._space import disk_usage

        return disk_usage(self._directory)

    def verify(self) -> VerifyReport:
        """Re-hash every blob and compare every unpacked layer with its blob.

        Damaged blobs are moved into ``tmp/`` so they are never served again
        (a later load or pull restores them); damaged unpacked layers are
        removed and unpacked afresh when next needed.

        Returns:
            What was checked and one sentence per problem found.

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        from layercake.store._verify import verify

        return verify(self._directory)

    def save(
        self,
        images: Sequence[Image | str],
        path: str | os.PathLike[str],
        *,
        format: ArchiveFormat = "docker",
        compression: Compression = "gzip",
        on_progress: Callable[[TransferProgress], None] | None = None,
    ) -> None:
        """Write several images into one archive, as ``docker save`` does.

        An image given as a tag is saved with that tag; one given by id has
        no tag in the archive; an ``Image`` object carries all its tags.

        Args:
            images: ``Image`` objects, tags or image ids (at least one).
            path: the archive file to write; replaced only once complete.
            format: ``"docker"`` (``docker load`` and ``podman load`` read
                it) or ``"oci"`` (a tarred OCI image layout).
            compression: ``"gzip"`` (layers compressed while saving),
                ``"zstd"`` (needs the zstd program; not every tool reads it)
                or ``"none"`` (layers as stored).
            on_progress: hears each layer's bytes done, from worker threads.

        Raises:
            ValueError: no images, or an unknown format or compression.
            ImageNotFound: a tag or id names no image.
            BlobNotFound: the store lost a blob of an image.
            DigestMismatch: a blob in the store is damaged.
            StoreError: the archive cannot be written.
        """
        from layercake.store._archive_save import SavedImage, save_archive

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
            self._directory,
            saved,
            Path(path),
            format=format,
            compression=compression,
            on_progress=on_progress,
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
        from layercake.store._archive_load import load_archive

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
        from layercake.store._import import import_rootfs

        manifest = import_rootfs(self._directory, Path(tar_path), run_config)
        if tag is not None:
            self._tag(tag, manifest)
        else:
            self._directory.add_untagged(manifest)
        return self._load(manifest.digest)

    def _is_tag(self, text: str) -> bool:
        try:
            return self._directory.resolve_tag(tag_name(text)) is not None
        except InvalidReference:
            return False

    def pull(
        self,
        reference: str,
        *,
        platform: Platform | str | None = None,
        username: str | None = None,
        password: str | None = None,
        insecure: bool | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        on_progress: Callable[[TransferProgress], None] | None = None,
    ) -> Image:
        """Fetch an image from its registry and tag it here.

        Args:
            reference: e.g. ``busybox`` (``docker.io/library/busybox:latest``),
                ``localhost:5000/team/app:1.2`` or ``name@sha256:...``.
            platform: which image of a multi-platform index, as a
                :class:`Platform` or ``"os/arch[/variant]"``; this machine's
                by default.
            username, password: credentials; by default those ``login``
                stored in the Docker config file, if any.
            insecure: allow plain HTTP; by default only for localhost.
            ca_file: another certificate authority to trust.
            on_progress: called with each layer's bytes done, from download
                threads.

        Raises:
            InvalidReference: not a valid image reference.
            ValueError: ``platform`` is not ``"os/arch[/variant]"``.
            ManifestUnknown: the registry has no such tag or digest, or no
                image for the platform.
            RegistryUnauthorized: credentials are needed or were refused.
            RegistryError: any other refusal or failure; nothing is stored.
        """
        # The HTTP client is imported only by commands that reach a registry.
        from layercake.store import _registry as registry

        descriptor = registry.pull(
            self._directory,
            reference,
            platform=Platform.parse(platform)
            if isinstance(platform, str)
            else platform,
            credentials=_credentials(username, password),
            insecure=insecure,
            ca_file=Path(ca_file) if ca_file is not None else None,
            on_progress=on_progress,
        )
        return self._load(descriptor.digest)

    apull = in_worker_thread(
        pull,
        """:meth:`pull` in a worker thread, for asyncio code.

        Takes the same arguments and raises the same errors.
        """,
    )

    def containers(self, *, all: bool = False) -> list[Container]:
        """The containers in this store: running ones, or every one with ``all``.

        Newest first, as ``docker ps`` lists them. Without root, the
        user-owned network namespace of the store's networks is stopped
        here if no container uses it any more (its last one crashed). An
        ``auto_remove`` container whose starter was killed is removed here,
        as it would have been at its exit.
        """
        from layercake._container_listing import list_containers
        from layercake._container_network import tidy

        tidy(self.path)
        return list_containers(self, all=all)

    def container(self, key: str) -> Container:
        """The container a name, an id or an id prefix names.

        Raises:
            ContainerError: no container, or several, match.
        """
        from layercake._container import Container

        return Container.load(self, key)

    def volumes(self) -> list[str]:
        """The names of the named volumes in this store, sorted."""
        root = self.path / "volumes"
        return sorted(p.name for p in root.iterdir()) if root.is_dir() else []

    def create_volume(self, name: str) -> Path:
        """Create the named volume ``name`` (nothing happens if it exists).

        A volume made this way starts empty; one a container creates on
        first use is seeded with the image's files at its mount point.

        Raises:
            ContainerConfigError: the name is not a valid volume name.
        """
        if not _VOLUME_NAME.fullmatch(name):
            raise ContainerConfigError(f"invalid volume name {name!r}")
        path = self.path / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def remove_volume(self, name: str, *, force: bool = False) -> None:
        """Delete a named volume and its files.

        As with ``docker volume rm``, a volume a container uses (running or
        not) is never removed; ``force`` only makes a missing volume no
        error.

        Raises:
            ContainerError: a container uses it, or there is no such volume
                (unless ``force``).
        """
        path = self.path / "volumes" / name
        if not _VOLUME_NAME.fullmatch(name) or not path.is_dir():
            if force:
                return
            raise ContainerError(f"no such volume: {name}")
        users = self._volume_users().get(str(path), [])
        if users:
            raise ContainerError(
                f"volume {name} is in use by container {users[0]}",
                container_id=users[0],
            )
        self._directory.remove_tree(path)

    def prune_volumes(self) -> list[str]:
        """Delete every named volume no container uses; return their names."""
        used = self._volume_users()
        removed = []
        for name in self.volumes():
            if str(self.path / "volumes" / name) not in used:
                self._directory.remove_tree(self.path / "volumes" / name)
                removed.append(name)
        return removed

    def create_network(
        self, name: str, *, subnet: str | None = None, driver: str = "bridge"
    ) -> Network:
        """Create a bridge network, as ``docker network create`` does.

        The network gets a bridge device on the host (``lcbr...``) with the
        gateway, the first address of ``subnet``; without ``subnet`` a free
        /24 of 10.210.0.0/16 that no host route or other network uses is
        chosen. Containers created with ``network=name`` get an address on
        it, outbound access, and reach each other by name. Without root the
        bridge is made, when a member starts, in a network namespace the
        user owns (see docs/runtime.md), and the subnet must not overlap
        slirp4netns's 10.0.2.0/24 instead of host routes.

        ``driver`` can only be ``"bridge"``, the one driver there is.

        Raises:
            ContainerConfigError: the name is invalid, reserved (``none``,
                ``host``, ``bridge``) or taken, the subnet is malformed or
                overlaps another network or a host route, or the driver is
                not ``bridge`` (``plugin "X" not found``, as docker says).
            ContainerError: the bridge could not be made.
        """
        from layercake import _networks

        if driver != "bridge":
            raise ContainerConfigError(f'plugin "{driver}" not found')
        if name == _networks.DEFAULT_NETWORK:
            raise ContainerConfigError(
                f"network name {name!r} is reserved for the default network"
            )
        return _networks.create_network(self.path, name, subnet)

    def networks(self) -> list[Network]:
        """The networks of this store, by name (``bridge``, the host's default
        network, while one of the store's containers has an address on it)."""
        from layercake import _networks

        return _networks.list_networks(self.path)

    def unreadable_networks(self) -> dict[str, str]:
        """The networks whose record cannot be read, by name, each with the
        reason (naming the file); :meth:`remove_network` and
        :meth:`prune_networks` remove them."""
        from layercake import _networks

        return _networks.unreadable(self.path)

    def network(self, name: str) -> Network:
        """The network called ``name``, or whose id starts with it.

        Raises:
            ContainerError: there is no such network.
        """
        from layercake import _networks

        return _networks.get_network(self.path, name)

    def network_containers(self, name: str) -> list[Container]:
        """The containers with an address on network ``name``, by name.

        Raises:
            ContainerError: there is no such network.
        """
        from layercake import _networks

        network = _networks.get_network(self.path, name)
        ids = {e.container_id for e in _networks.endpoints(self.path, network.name)}
        found = [c for c in self.containers(all=True) if c.id in ids]
        return sorted(found, key=lambda c: c.name)

    def remove_network(self, name: str) -> None:
        """Remove a network and its bridge device, as ``docker network rm``.

        Stopped containers on it keep their configuration but cannot start
        again until a network of that name exists.

        A network whose record cannot be read is removed too, with its
        bridge device.

        Raises:
            ContainerError: no such network, running containers use it
                (the message names them), or it is pre-defined: ``bridge``
                (the host's default network, which stays as docker's does),
                ``host`` or ``none``.
        """
        from layercake import _networks

        running = {c.id for c in self.containers()}
        _networks.remove_network(self.path, name, running.__contains__)

    def prune_networks(self) -> list[str]:
        """Remove every network no container uses, readable or not; return
        their names."""
        from layercake import _networks

        existing = {c.id for c in self.containers(all=True)}
        removed = []
        names = [n.name for n in _networks.list_networks(self.path)]
        names += _networks.unreadable(self.path)
        for name in sorted(names):
            leases = _networks.endpoints(self.path, name)
            if name == _networks.DEFAULT_NETWORK or any(
                e.container_id in existing for e in leases
            ):
                continue
            try:
                _networks.remove_network(self.path, name, lambda _: False)
            except ContainerError:
                continue
            removed.append(name)
        return removed

    def _volume_users(self) -> dict[str, list[str]]:
        users: dict[str, list[str]] = {}
        for container in self.containers(all=True):
            for source, _target, _read_only in container.record.binds:
                users.setdefault(source, []).append(container.short_id)
        return users

    def _by_manifest(self, digest: Digest) -> Image | None:
        stored = [d for _, d in self._directory.tags()]
        stored += self._directory.untagged()
        if any(descriptor.digest == digest for descriptor in stored):
            return self._load(digest)
        return None

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
