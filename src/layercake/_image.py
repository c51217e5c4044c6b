"""The public ``Image`` and ``Layer``: read-only handles over a store."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from layercake._container import Container
from layercake._in_thread import in_worker_thread
from layercake._layer_stack import LayerStack
from layercake._restart_policy import RestartPolicy, conflicts_with_rm
from layercake.runtime import RunResult
from layercake.store import (
    Descriptor,
    Digest,
    History,
    ImageConfig,
    Manifest,
    to_json,
)

if TYPE_CHECKING:
    from layercake._store import Store
    from layercake.store._archive_save import ArchiveFormat, Compression
    from layercake.store._registry import Credentials, TransferProgress

__all__ = ["Image", "Layer", "credentials_of"]


def credentials_of(username: str | None, password: str | None) -> Credentials | None:
    """Credentials when both parts are given; ``None`` lets stored ones apply."""
    if username is None and password is None:
        return None
    from layercake.store._registry import Credentials

    return Credentials(username or "", password or "")


class Layer:
    """One layer of an image: a tar stream of file system changes.

    ``digest`` names the blob as stored, ``diff_id`` its uncompressed
    content; the two are equal for the uncompressed layers layercake builds.
    """

    def __init__(self, store: Store, descriptor: Descriptor, diff_id: Digest) -> None:
        self._store = store
        self.descriptor = descriptor
        self.diff_id = diff_id

    def __repr__(self) -> str:
        return f"Layer({str(self.digest)!r}, size={self.size})"

    @property
    def digest(self) -> Digest:
        """The digest of the layer blob."""
        return self.descriptor.digest

    @property
    def size(self) -> int:
        """The blob's size in bytes."""
        return self.descriptor.size

    @property
    def media_type(self) -> str:
        """The blob's media type, e.g. ``application/vnd.oci.image.layer.v1.tar``."""
        return self.descriptor.media_type

    def open(self) -> IO[bytes]:
        """Open the layer blob for reading, as stored (compressed or not).

        Raises:
            BlobNotFound: the store lost the blob.
        """
        return self._store._directory.open_blob(self.digest)

    def unpacked_path(self) -> Path:
        """The read-only directory holding this layer's files, extracting it once.

        Raises:
            StoreError: the blob is missing, damaged or unsafe to extract.
        """
        return self._store._directory.unpacked_layer(self.descriptor, self.diff_id)


class Image:
    """An image in a store: its manifest, config, layers, history and tags.

    Images are values: building or tagging returns or changes store state,
    never the fields of an existing ``Image``.
    """

    def __init__(
        self, store: Store, manifest_digest: Digest, manifest: Manifest
    ) -> None:
        self.store = store
        self.digest = manifest_digest
        self.manifest = manifest

    def __repr__(self) -> str:
        return f"Image({self.short_id!r}, tags={list(self.tags)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    @property
    def id(self) -> str:
        """The image id as Docker shows it: the config blob's digest."""
        return str(self.manifest.config.digest)

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the id."""
        return self.manifest.config.digest.hex[:12]

    @functools.cached_property
    def config(self) -> ImageConfig:
        """The OCI image config (architecture, os, runtime config, rootfs, history)."""
        return self.store._directory.read_json(ImageConfig, self.manifest.config.digest)

    @property
    def history(self) -> tuple[History, ...]:
        """One entry per instruction that made the image, oldest first."""
        return self.config.history

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers, base first."""
        diff_ids = self.config.rootfs.diff_ids
        return tuple(
            Layer(self.store, descriptor, diff_id)
            for descriptor, diff_id in zip(self.manifest.layers, diff_ids, strict=True)
        )

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags that point at this image, sorted."""
        return tuple(
            name
            for name, descriptor in self.store._directory.tags()
            if descriptor.digest == self.digest
        )

    def inspect(self) -> dict[str, Any]:
        """Describe the image as ``docker image inspect`` does (one object).

        The keys are Docker's: ``Id``, ``RepoTags``, ``RepoDigests``,
        ``Parent``, ``Comment``, ``Created``, ``Author``, ``Config``,
        ``Architecture``, ``Variant`` (when set), ``Os``, ``Size``,
        ``RootFS`` and ``Metadata``; ``Descriptor`` adds the manifest.

        Raises:
            BlobNotFound: the store lost the config blob.
            StoreCorrupted: the config cannot be read.
        """
        config = self.config
        comments = [h.comment for h in config.history if h.comment]
        result: dict[str, Any] = {
            "Id": self.id,
            "RepoTags": list(self.tags),
            "RepoDigests": [],
            "Parent": "",
            "Comment": comments[-1] if comments else "",
            "Created": config.created or "",
            "DockerVersion": "",
            "Author": config.author or "",
            "Config": json.loads(to_json(config.config)),
            "Architecture": config.architecture,
            "Os": config.os,
            "Size": sum(layer.size for layer in self.layers),
            "RootFS": {
                "Type": config.rootfs.type,
                "Layers": [str(d) for d in config.rootfs.diff_ids],
            },
            "Metadata": {"LastTagTime": ""},
            "Descriptor": {
                "mediaType": self.manifest.media_type,
                "digest": str(self.digest),
                "size": self._manifest_size(),
            },
        }
        if config.variant:
            result["Variant"] = config.variant
        return result

    def _manifest_size(self) -> int:
        return self.store._directory.blob_path(self.digest).stat().st_size

    @property
    def descriptor(self) -> Descriptor:
        """The OCI descriptor of the image's manifest."""
        return Descriptor(
            media_type=self.manifest.media_type,
            digest=self.digest,
            size=self._manifest_size(),
        )

    def tag(self, name: str) -> str:
        """Point the tag ``name`` at this image; return the tag as stored.

        Raises:
            InvalidReference: ``name`` is not a valid image reference.
        """
        return self.store._tag(name, self.descriptor)

    def push(
        self,
        reference: str,
        *,
        username: str | None = None,
        password: str | None = None,
        insecure: bool | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        compression: Literal["gzip"] | None = "gzip",
        on_progress: Callable[[TransferProgress], None] | None = None,
    ) -> Digest:
        """Send this image to the registry ``reference`` names.

        Blobs the registry has are skipped. Layers are gzipped on the way by
        default, so the pushed manifest digest differs from the local one
        while the image id stays; ``compression=None`` sends them as stored.
        Returns the manifest digest the registry now holds.

        Raises:
            InvalidReference: not a valid image reference.
            RegistryUnauthorized: credentials are needed or were refused.
            RegistryError: any other refusal or failure.
            DigestMismatch: a stored blob no longer hashes to its digest;
                it is not sent.
        """
        # The HTTP client is imported only by commands that reach a registry.
        from layercake.store import _registry as registry

        return registry.push(
            self.store._directory,
            self.descriptor,
            reference,
            credentials=credentials_of(username, password),
            insecure=insecure,
            ca_file=Path(ca_file) if ca_file is not None else None,
            compression=compression,
            on_progress=on_progress,
        )

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        format: ArchiveFormat = "docker",
        compression: Compression = "gzip",
    ) -> None:
        """Write this image, with all its tags, to an archive file.

        Args:
            path: the archive to write; it appears only once complete.
            format: ``"docker"`` (``docker save``'s layout) or ``"oci"``.
            compression: ``"gzip"``, ``"zstd"`` or ``"none"`` for the layers.

        Raises:
            ValueError: an unknown format or compression.
            BlobNotFound: the store lost a blob of this image.
            DigestMismatch: a blob in the store is damaged.
            StoreError: the archive cannot be written.
        """
        self.store.save([self], path, format=format, compression=compression)

    def export(self, path: str | os.PathLike[str]) -> None:
        """Write the image's merged file system to the tarball ``path``.

        Whiteouts and opaque directories are applied, so the tar holds the
        files a container of this image starts with, like ``docker export``
        of a fresh container. The file appears only once complete.

        Raises:
            StoreError: a layer is missing, damaged or unsafe, or the file
                cannot be written.
        """
        from layercake.store._export import export_layers

        export_layers(self.layer_stack().layer_dirs, Path(path))

    def layer_stack(self) -> LayerStack:
        """The unpacked layers, top-most first, extracting any not yet unpacked."""
        return LayerStack(
            tuple(layer.unpacked_path() for layer in reversed(self.layers))
        )

    async def arun(
        self,
        command: Sequence[str] | str | None = None,
        *,
        poll_interval: float = 0.01,
        **options: Any,
    ) -> RunResult:
        """:meth:`run` for asyncio code: the event loop is never blocked.

        The container runs in the background while this coroutine sleeps
        between checks; cancelling it kills and removes the container.
        ``options`` are :class:`Container`'s keyword arguments.

        Raises:
            The same errors as :meth:`run`.
        """
        import asyncio

        from layercake._waits import exit_status

        _refuse_restart(options.get("restart", "no"))
        container = Container(self, command, **options)
        try:
            container.start()
            while (code := exit_status(container)) is None:
                await asyncio.sleep(poll_interval)
            return RunResult(
                exit_code=code,
                stdout=container.logs(stderr=False),
                stderr=container.logs(stdout=False),
            )
        finally:
            container.remove(force=True)

    apush = in_worker_thread(
        push,
        """:meth:`push` in a worker thread, for asyncio code.

        Takes the same arguments and raises the same errors.
        """,
    )

    def run(
        self,
        command: Sequence[str] | str | None = None,
        *,
        entrypoint: Sequence[str] | str | None = None,
        env: Mapping[str, str] | Sequence[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        network: str = "bridge",
        stdin: bytes | None = None,
        timeout: float | None = None,
        restart: str = "no",
        tty: bool = False,
        tty_size: tuple[int, int] | None = None,
    ) -> RunResult:
        """Run a throwaway container of this image and return its result.

        The container is removed afterwards, whatever happens. Arguments
        override the image's config as ``docker run`` flags do; a command
        given as one string is split as a shell would split it. Being
        ``docker run --rm``, it takes no ``restart`` policy but ``"no"``, as
        docker refuses one (use :class:`Container` to restart). ``tty``
        runs it on a pseudo terminal, as :class:`Container` describes: all
        output is then in ``stdout``, with ``\r\n`` line ends.

        Raises:
            ContainerConfigError: no command, an unknown user, or a restart
                policy other than ``"no"``.
            CommandNotStarted: the command could not be executed (exit code
                127 or 126), as docker run fails.
            ContainerError: the container could not start or timed out.
            RuntimeUnavailable: this machine cannot run containers.
        """
        _refuse_restart(restart)
        with Container(
            self,
            command,
            entrypoint=entrypoint,
            env=env,
            workdir=workdir,
            user=user,
            network=network,
            tty=tty,
            tty_size=tty_size,
            auto_remove=True,
        ) as container:
            return container.run(stdin=stdin, timeout=timeout)


def _refuse_restart(restart: str) -> None:
    """A throwaway container is ``--rm``: docker refuses a restart policy with it."""
    error = conflicts_with_rm(RestartPolicy.parse(restart))
    if error is not None:
        raise error
