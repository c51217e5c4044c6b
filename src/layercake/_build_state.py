"""Build states: the image a build has made so far, written to the store.

Every step ends in a state: a config blob and a manifest blob (small, and
kept so that the build cache can point at them). A state is what the cache
remembers and what the next step starts from.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs

from layercake._layer_stack import LayerStack
from layercake.errors import BlobNotFound
from layercake.runtime import DEFAULT_PATH
from layercake.store import (
    ContainerConfig,
    Descriptor,
    Digest,
    History,
    ImageConfig,
    Manifest,
    MediaType,
    RootFS,
    StoreDirectory,
    host_platform,
)

__all__ = ["BuildState", "StateWriter"]

logger = logging.getLogger(__name__)


@attrs.frozen
class BuildState:
    """An image as the build has it after a step."""

    manifest: Manifest
    manifest_digest: Digest
    config: ImageConfig

    @property
    def config_digest(self) -> Digest:
        """The config blob's digest, which is the image id."""
        return self.manifest.config.digest

    @property
    def image_id(self) -> str:
        """The image id as text."""
        return str(self.config_digest)


def _is_empty(directory: Path) -> bool:
    with os.scandir(directory) as entries:
        return next(entries, None) is None


class StateWriter:
    """Writes build states into a store and reads them back."""

    def __init__(self, directory: StoreDirectory) -> None:
        self.directory = directory

    def _commit(
        self, config: ImageConfig, layers: tuple[Descriptor, ...]
    ) -> BuildState:
        config_descriptor = self.directory.write_json(config, MediaType.OCI_CONFIG)
        manifest = Manifest(config=config_descriptor, layers=layers)
        manifest_descriptor = self.directory.write_json(
            manifest, MediaType.OCI_MANIFEST
        )
        return BuildState(manifest, manifest_descriptor.digest, config)

    def scratch(self) -> BuildState:
        """The empty image ``FROM scratch`` starts with."""
        platform = host_platform()
        config = ImageConfig(
            architecture=platform.architecture,
            os=platform.os,
            variant=platform.variant,
            config=ContainerConfig(env=(f"PATH={DEFAULT_PATH}",)),
            rootfs=RootFS(diff_ids=()),
        )
        return self._commit(config, ())

    def load(self, manifest_digest: Digest) -> BuildState:
        """The state of an image already in the store."""
        manifest = self.directory.read_json(Manifest, manifest_digest)
        config = self.directory.read_json(ImageConfig, manifest.config.digest)
        return BuildState(manifest, manifest_digest, config)

    def derive(
        self,
        parent: BuildState,
        config: ContainerConfig,
        history: History,
        *,
        layer: Path | None,
        image: ImageConfig | None = None,
    ) -> BuildState:
        """Write the state that follows ``parent``.

        ``layer`` is a directory in overlay lower-dir form holding the step's
        changes; it is packed into a layer blob and moved into the store's
        unpacked layers. An empty or absent one adds no layer, and the
        history entry says so.
        """
        base = image or parent.config
        layers = parent.manifest.layers
        diff_ids = base.rootfs.diff_ids

        if layer is not None and not _is_empty(layer):
            descriptor = self.directory.write_layer(layer)
            self.directory.adopt_unpacked(layer, descriptor.digest)
            layers += (descriptor,)
            diff_ids += (descriptor.digest,)
            logger.info(
                "committed layer %s (%d bytes)", descriptor.digest, descriptor.size
            )
        else:
            history = attrs.evolve(history, empty_layer=True)

        new = attrs.evolve(
            base,
            config=config,
            rootfs=RootFS(diff_ids=diff_ids),
            history=base.history + (history,),
            created=history.created,
        )
        return self._commit(new, layers)

    def replace_config(self, state: BuildState, config: ContainerConfig) -> BuildState:
        """``state`` with another runtime config, and no new history entry."""
        image = attrs.evolve(state.config, config=config)
        return self._commit(image, state.manifest.layers)

    def cached(self, key: str) -> BuildState | None:
        """The state the cache holds for ``key``, if all its blobs are still there."""
        digest = self.directory.cache_get(key)
        if digest is None:
            return None
        try:
            state = self.load(digest)
        except BlobNotFound:
            return None
        if not all(self.directory.has_blob(d.digest) for d in state.manifest.layers):
            return None
        return state

    def remember(self, key: str, state: BuildState) -> None:
        """Record ``state`` as the result of the step with cache key ``key``."""
        self.directory.cache_put(key, state.manifest_digest)

    def layer_stack(self, state: BuildState) -> LayerStack:
        """The state's unpacked layers, top-most first."""
        pairs = zip(state.manifest.layers, state.config.rootfs.diff_ids, strict=True)
        return LayerStack(
            tuple(
                self.directory.unpacked_layer(descriptor, diff_id)
                for descriptor, diff_id in reversed(list(pairs))
            )
        )
