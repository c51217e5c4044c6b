"""Import a root file system tarball as a one-layer image."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import IO

from layercake.errors import StoreError

from ._directory import StoreDirectory
from ._media import MediaType
from ._models import (
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Manifest,
    RootFS,
    host_platform,
)
from ._unpack import decompressed

__all__ = ["created_now", "import_rootfs"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


def created_now() -> str:
    """The time to record as ``created``: SOURCE_DATE_EPOCH if set, else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = time.gmtime(int(epoch)) if epoch and epoch.isdigit() else time.gmtime()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


def _open(path: Path, stack: contextlib.ExitStack) -> IO[bytes]:
    try:
        return stack.enter_context(open(path, "rb"))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc


def import_rootfs(
    store: StoreDirectory, tar_path: Path, config: ContainerConfig
) -> Descriptor:
    """Store ``tar_path`` (plain or compressed tar) as a one-layer image.

    The layer is stored uncompressed and unpacked once, which also checks
    that every entry is safe; only then are the config and manifest
    written. Returns the manifest's descriptor.

    Raises:
        StoreError: the file cannot be read.
        StoreCorrupted: it is not a readable tar archive.
        UnsafeArchiveEntry: an entry would escape the image's file system.
    """
    with contextlib.ExitStack() as stack:
        source = _open(tar_path, stack)
        plain = stack.enter_context(decompressed(source))
        limit = store.layer_size_limit()
        with store.blob_writer() as writer:
            while chunk := plain.read(_CHUNK):
                writer.write(chunk)
                if writer.size > limit:
                    raise StoreError(store.layer_refusal(str(tar_path), limit))
    layer = Descriptor(MediaType.OCI_LAYER, writer.digest, writer.size)
    store.unpacked_layer(layer, layer.digest)

    platform = host_platform()
    created = created_now()
    image_config = ImageConfig(
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
        config=config,
        rootfs=RootFS((layer.digest,)),
        history=(
            History(
                created=created,
                created_by="layercake import",
                comment=f"imported from {Path(tar_path).name}",
            ),
        ),
        created=created,
    )
    config_descriptor = store.write_json(image_config, MediaType.OCI_CONFIG)
    manifest = store.write_json(
        Manifest(config=config_descriptor, layers=(layer,)), MediaType.OCI_MANIFEST
    )
    logger.info("imported %s as %s", tar_path, config_descriptor.digest)
    return manifest
