"""layercake: build Docker images and run them as Linux containers, daemonless.

The whole public surface is here::

    import layercake

    store = layercake.Store("/tmp/store")
    image = layercake.Builder(store).build("examples/demo", tag="demo:latest")
    result = image.run()
    print(result.exit_code, result.stdout)

Every error derives from :class:`LayercakeError`; see :mod:`layercake.errors`.
"""

import logging

from layercake._container import Container
from layercake._image import Image, Layer
from layercake._store import Store
from layercake.builder import Builder
from layercake.errors import (
    BlobNotFound,
    BuildContextError,
    BuildError,
    BuildStepFailed,
    ContainerConfigError,
    ContainerError,
    ContainerTimeout,
    DigestMismatch,
    DockerfileError,
    DockerfileSyntaxError,
    ImageNotFound,
    InvalidReference,
    LayercakeError,
    RuntimeUnavailable,
    StoreCorrupted,
    StoreError,
    UnsafeArchiveEntry,
)
from layercake.runtime import RunResult

__all__ = [
    "BlobNotFound",
    "BuildContextError",
    "BuildError",
    "BuildStepFailed",
    "Builder",
    "Container",
    "ContainerConfigError",
    "ContainerError",
    "ContainerTimeout",
    "DigestMismatch",
    "DockerfileError",
    "DockerfileSyntaxError",
    "Image",
    "ImageNotFound",
    "InvalidReference",
    "Layer",
    "LayercakeError",
    "RunResult",
    "RuntimeUnavailable",
    "Store",
    "StoreCorrupted",
    "StoreError",
    "UnsafeArchiveEntry",
]

__version__ = "0.1.0"

# The library never prints: without a handler of the application's own, its
# log records go nowhere (not to logging's last-resort stderr handler).
logging.getLogger(__name__).addHandler(logging.NullHandler())
