"""Media types of the OCI image spec and Docker's schema 2."""

from __future__ import annotations

from typing import Final

__all__ = ["MediaType"]


class MediaType:
    """Media type strings for manifests, indexes, configs and layers."""

    OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
    OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
    OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
    OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
    OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
    DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_MANIFEST_LIST: Final = (
        "application/vnd.docker.distribution.manifest.list.v2+json"
    )
    DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
    DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"

    #: Manifest types that describe one image (config + layers).
    MANIFESTS: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
    #: Types that list per-platform manifests.
    INDEXES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
