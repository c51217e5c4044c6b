"""``login`` checks credentials against a registry and stores them; ``logout``
forgets them."""

from __future__ import annotations

import logging
from pathlib import Path

from layercake.errors import RegistryUnauthorized

from ._auth import Credentials, erase_credentials, store_credentials
from ._client import RegistryClient

__all__ = ["login", "logout", "registry_domain"]

logger = logging.getLogger(__name__)

_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


def registry_domain(registry: str) -> str:
    """Return the domain of ``registry`` (a host[:port] or an https URL)."""
    text = registry.strip()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    host = text.split("/", 1)[0]
    return "docker.io" if host in _HUB_NAMES else host


def login(
    registry: str,
    username: str,
    password: str,
    *,
    config_path: Path | None = None,
    insecure: bool | None = None,
    ca_file: str | Path | None = None,
) -> None:
    """Verify ``username``/``password`` on ``registry`` and store them.

    The check is a ``GET /v2/`` answered through the registry's own auth
    (Basic, or a token from its Bearer realm). On success the credentials go
    into the ``auths`` section of Docker's config file (``config_path``, by
    default ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``),
    where Docker and skopeo find them too, or to the credential helper that
    file names for the registry (``credHelpers`` or ``credsStore``).

    Raises:
        RegistryUnauthorized: the registry rejected the credentials.
        RegistryError: the registry could not be reached or failed, or the
            credential helper failed.
    """
    domain = registry_domain(registry)
    credentials = Credentials(username, password)
    with RegistryClient(
        domain, credentials=credentials, insecure=insecure, ca_file=ca_file
    ) as client:
        response = client.request(
            "GET", client.url("/v2/"), scopes=(), action="login", reference=None
        )
        if response.status_code == 401:
            response.close()
            url = str(response.request.url)
            raise RegistryUnauthorized(
                f"login to {domain} failed: {username!r} was not accepted "
                f"(GET {url} returned 401)",
                url=url,
                status=401,
            )
        client.check(response, reference=None, action="login")
        response.close()
    store_credentials(domain, credentials, config_path)
    logger.info("logged in to %s as %s", domain, username)


def logout(registry: str, *, config_path: Path | None = None) -> bool:
    """Forget the credentials stored for ``registry``.

    They are erased from the configured credential helper, if any, and from
    the ``auths`` section of Docker's config file. Returns whether any were
    stored.

    Raises:
        RegistryError: the configured credential helper is missing or failed.
    """
    domain = registry_domain(registry)
    erased = erase_credentials(domain, config_path)
    logger.info("logged out of %s" if erased else "was not logged in to %s", domain)
    return erased
