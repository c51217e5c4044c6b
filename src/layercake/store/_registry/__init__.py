"""Registry client: pull images into a store, push them out, log in.

Speaks the OCI distribution API (and Docker's registry, which is the same
API) over HTTPS, or plain HTTP for registries marked insecure. See
``docs/registries.md`` for authentication, TLS and limits.
"""

from __future__ import annotations

from ._auth import (
    Credentials,
    default_config_path,
    erase_credentials,
    load_credentials,
    store_credentials,
)
from ._client import RegistryClient, TransferProgress
from ._login import login, logout, registry_domain
from ._pull import MAX_MANIFEST_SIZE, pull
from ._push import DEFAULT_CHUNK_SIZE, push

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_MANIFEST_SIZE",
    "Credentials",
    "RegistryClient",
    "TransferProgress",
    "default_config_path",
    "erase_credentials",
    "load_credentials",
    "login",
    "logout",
    "pull",
    "push",
    "registry_domain",
    "store_credentials",
]
