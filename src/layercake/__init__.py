"""layercake: build Docker images and run them as Linux containers, daemonless.

The whole public surface is here::

    import layercake

    store = layercake.Store("/tmp/store")
    image = layercake.Builder(store).build("examples/demo", tag="demo:latest")
    result = image.run()
    print(result.exit_code, result.stdout)

Every error derives from :class:`LayercakeError`; see :mod:`layercake.errors`.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

from layercake.errors import (
    BlobNotFound,
    BlobUnknown,
    BuildContextError,
    BuildError,
    BuildStepFailed,
    CommandNotStarted,
    ContainerConfigError,
    ContainerError,
    ContainerTimeout,
    DigestMismatch,
    DockerfileError,
    DockerfileSyntaxError,
    ImageInUse,
    ImageNotFound,
    InvalidReference,
    InvalidRegistryResponse,
    LayercakeError,
    ManifestUnknown,
    RegistryDenied,
    RegistryError,
    RegistryUnauthorized,
    RuntimeUnavailable,
    StoreCorrupted,
    StoreError,
    TooManyRequests,
    UnsafeArchiveEntry,
)

if TYPE_CHECKING:
    from layercake._container import Container
    from layercake._container_state import ContainerState
    from layercake._image import Image, Layer
    from layercake._networks import Network
    from layercake._store import Store
    from layercake.builder import Builder
    from layercake.runtime import RunResult

# The public objects load on first use, so that a command which only runs a
# container does not pay for importing the Dockerfile parser and builder.
_LAZY = {
    "Builder": "layercake.builder",
    "Container": "layercake._container",
    "ContainerState": "layercake._container_state",
    "Image": "layercake._image",
    "Layer": "layercake._image",
    "Network": "layercake._networks",
    "RunResult": "layercake.runtime",
    "Store": "layercake._store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'layercake' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BlobNotFound",
    "BlobUnknown",
    "BuildContextError",
    "BuildError",
    "BuildStepFailed",
    "Builder",
    "CommandNotStarted",
    "Container",
    "ContainerConfigError",
    "ContainerError",
    "ContainerState",
    "ContainerTimeout",
    "DigestMismatch",
    "DockerfileError",
    "DockerfileSyntaxError",
    "Image",
    "ImageInUse",
    "ImageNotFound",
    "InvalidReference",
    "InvalidRegistryResponse",
    "Layer",
    "LayercakeError",
    "ManifestUnknown",
    "Network",
    "RegistryDenied",
    "RegistryError",
    "RegistryUnauthorized",
    "RunResult",
    "RuntimeUnavailable",
    "Store",
    "StoreCorrupted",
    "StoreError",
    "TooManyRequests",
    "UnsafeArchiveEntry",
]

__version__ = "0.1.0"

# The library never prints: without a handler of the application's own, its
# log records go nowhere (not to logging's last-resort stderr handler).
logging.getLogger(__name__).addHandler(logging.NullHandler())
