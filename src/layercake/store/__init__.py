"""The layercake store: content-addressed blobs, OCI models, layers and refs.

A store is one directory that *is* an OCI image layout, so ``skopeo inspect
oci:STORE:TAG`` and ``umoci unpack --image STORE:TAG`` read it directly, with
layercake's own folders beside the layout's files::

    STORE/
      oci-layout            {"imageLayoutVersion":"1.0.0"}
      index.json            image index; each tag is a manifest descriptor
                            annotated org.opencontainers.image.ref.name=NAME
      blobs/sha256/<hex>    manifests, configs and layer tars, named by digest
      layers/<hex>          unpacked layers named by diff id, in overlayfs
                            lower-dir form (whiteouts are 0:0 char devices,
                            opaque dirs carry trusted.overlay.opaque=y, or
                            user.overlay.opaque=y when not unpacked by
                            root); read-only once they appear
      cache/<key>           build cache: a step's key -> manifest digest text
      containers/           owned by the runtime: writable layers and state
      tmp/                  temp files and staging dirs; same file system, so
                            a finished file or tree appears by rename

Every write is crash-safe: blobs are hashed while written to ``tmp/``,
fsynced, checked and renamed; ``index.json`` and cache entries are replaced
by rename; layers are extracted into ``tmp/`` and renamed when complete.
``index.json`` updates hold an exclusive ``flock`` on the store directory.
Anything left in ``tmp/`` after a crash is garbage and can be deleted when
no process uses the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._blobs import BlobWriter
    from ._digest import Digest
    from ._directory import StoreDirectory
    from ._index import REF_NAME
    from ._media import MediaType
    from ._models import (
        ContainerConfig,
        Descriptor,
        Healthcheck,
        History,
        ImageConfig,
        Index,
        Manifest,
        Platform,
        RootFS,
        from_json,
        host_platform,
        to_json,
    )
    from ._reference import Reference
    from ._space import DiskUsage, PruneReport
    from ._unpack import extract_tar
    from ._verify import VerifyReport

# Each name loads its module on first use: running a container needs the
# models and the directory, not the packer, the space accounting or the
# verifier.
_LAZY = {
    "REF_NAME": "._index",
    "BlobWriter": "._blobs",
    "ContainerConfig": "._models",
    "Descriptor": "._models",
    "Digest": "._digest",
    "DiskUsage": "._space",
    "Healthcheck": "._models",
    "History": "._models",
    "ImageConfig": "._models",
    "Index": "._models",
    "Manifest": "._models",
    "MediaType": "._media",
    "Platform": "._models",
    "PruneReport": "._space",
    "Reference": "._reference",
    "RootFS": "._models",
    "StoreDirectory": "._directory",
    "VerifyReport": "._verify",
    "extract_tar": "._unpack",
    "from_json": "._models",
    "host_platform": "._models",
    "to_json": "._models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "REF_NAME",
    "BlobWriter",
    "ContainerConfig",
    "Descriptor",
    "Digest",
    "DiskUsage",
    "Healthcheck",
    "History",
    "ImageConfig",
    "Index",
    "Manifest",
    "MediaType",
    "Platform",
    "PruneReport",
    "Reference",
    "RootFS",
    "StoreDirectory",
    "VerifyReport",
    "extract_tar",
    "from_json",
    "host_platform",
    "to_json",
]
