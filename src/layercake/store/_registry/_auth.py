"""Registry credentials and authentication: Docker's config file, Basic, Bearer.

Credentials come from the caller or from Docker's ``config.json``
(``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``): from the
credential helper it names for the registry (``credHelpers``, else
``credsStore``), else from its ``auths`` entry, which holds base64
``user:password`` and maybe an ``identitytoken``. A registry that answers 401
says how to authenticate in ``WWW-Authenticate``: ``Basic`` means send the
credentials with each request; ``Bearer realm=...,service=...,scope=...``
means trade them (or nothing, for anonymous pulls) at the realm for a token,
which is cached per scope. An identity token is traded as Docker does it, by
an OAuth2 ``POST`` with ``grant_type=refresh_token``; a realm that does not
take POSTs (404 or 405) is asked again by ``GET``.

Secrets never appear in log lines, exception messages or reprs.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import httpx

from ._credstore import CredentialHelper

__all__ = [
    "Challenge",
    "Credentials",
    "TokenCache",
    "config_key",
    "credential_helper",
    "default_config_path",
    "erase_credentials",
    "load_credentials",
    "parse_challenge",
    "store_credentials",
]

logger = logging.getLogger(__name__)

#: The key Docker uses for Docker Hub in ``config.json``.
_DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_DOMAINS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
#: The user name helpers and Docker use for an identity token.
_TOKEN_USER = "<token>"
#: The OAuth2 client id sent with refresh-token grants.
_CLIENT_ID = "layercake"


@attrs.frozen(repr=False)
class Credentials:
    """A user name and password, and maybe an identity token, for one registry.

    The identity token is an OAuth2 refresh token that a registry gave at
    login; when present, Bearer realms are asked for tokens with it.
    """

    username: str
    password: str = attrs.field(repr=False)
    identity_token: str | None = attrs.field(default=None, repr=False)

    def basic_header(self) -> str:
        """Return the value of an HTTP Basic ``Authorization`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        token = ", identity_token=<hidden>" if self.identity_token else ""
        return f"Credentials(username={self.username!r}, password=<hidden>{token})"


def default_config_path() -> Path:
    """Return Docker's config file path, honouring ``$DOCKER_CONFIG``."""
    folder = os.environ.get("DOCKER_CONFIG")
    if folder:
        return Path(folder) / "config.json"
    return Path.home() / ".docker" / "config.json"


def config_key(domain: str) -> str:
    """Return the ``auths`` key Docker writes for registry ``domain``."""
    return _DOCKER_HUB_KEY if domain in _HUB_DOMAINS else domain


def _entry_domain(key: str) -> str:
    # Old entries are full URLs ("https://host/v1/"); compare by host.
    host = re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]
    return "docker.io" if host in _HUB_DOMAINS else host


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        logger.warning("ignoring unreadable docker config %s", path)
        return {}
    if not isinstance(config, dict):
        logger.warning("ignoring unreadable docker config %s", path)
        return {}
    return config


def credential_helper(
    domain: str, config_path: Path | None = None
) -> CredentialHelper | None:
    """Return the credential helper Docker's config names for ``domain``.

    ``credHelpers`` (by registry host) wins over ``credsStore``; ``None``
    when neither names one.
    """
    config = _read_config(config_path or default_config_path())
    wanted = _entry_domain(domain)
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if _entry_domain(key) == wanted and isinstance(name, str) and name:
                return CredentialHelper(name)
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return CredentialHelper(store)
    return None


def load_credentials(
    domain: str, config_path: Path | None = None
) -> Credentials | None:
    """Return the credentials stored for ``domain``, or ``None``.

    The credential helper configured for ``domain`` is asked first; if it
    holds nothing, the ``auths`` entry is used. A missing or unreadable
    config file, or an entry without usable ``auth`` text, counts as no
    credentials (logged, without the secret).

    Raises:
        RegistryError: the configured credential helper is missing or failed.
    """
    path = config_path or default_config_path()
    helper = credential_helper(domain, path)
    if helper is not None:
        held = helper.get(config_key(domain))
        if held is not None and held.is_identity_token:
            return Credentials("", "", identity_token=held.secret)
        if held is not None:
            return Credentials(held.username, held.secret)

    auths = _read_config(path).get("auths")
    if not isinstance(auths, dict):
        return None
    wanted = _entry_domain(domain)
    for key, entry in auths.items():
        if _entry_domain(key) != wanted or not isinstance(entry, dict):
            continue
        credentials = _decode_entry(entry)
        if credentials is None:
            logger.warning("ignoring malformed auth entry for %s in %s", key, path)
        return credentials
    return None


def _decode_entry(entry: dict[str, object]) -> Credentials | None:
    token = entry.get("identitytoken")
    identity = token if isinstance(token, str) and token else None
    auth = entry.get("auth")
    if auth is None and identity is not None:
        return Credentials("", "", identity_token=identity)
    try:
        text = base64.b64decode(str(auth), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    username, sep, password = text.partition(":")
    if not sep:
        return None
    return Credentials(username, password, identity_token=identity)


def store_credentials(
    domain: str, credentials: Credentials, config_path: Path | None = None
) -> Path:
    """Store ``credentials`` for ``domain`` as Docker would.

    With a credential helper configured for ``domain`` they go to the helper
    (an identity token as user ``<token>``). Otherwise they are written into
    the ``auths`` section of Docker's config file: other keys and entries
    are kept; the file is replaced by rename and is readable by its owner
    only. Returns the config file's path.

    Raises:
        RegistryError: the configured credential helper is missing or failed.
    """
    path = config_path or default_config_path()
    helper = credential_helper(domain, path)
    if helper is not None:
        if credentials.identity_token:
            helper.store(config_key(domain), _TOKEN_USER, credentials.identity_token)
        else:
            helper.store(config_key(domain), credentials.username, credentials.password)
        return path

    raw = f"{credentials.username}:{credentials.password}".encode()
    entry = {"auth": base64.b64encode(raw).decode("ascii")}
    if credentials.identity_token:
        entry["identitytoken"] = credentials.identity_token
    _update_auths(path, domain, entry)
    logger.info("stored credentials for %s in %s", domain, path)
    return path


def erase_credentials(domain: str, config_path: Path | None = None) -> bool:
    """Forget the credentials stored for ``domain``, in the helper and file.

    Returns whether any were stored.

    Raises:
        RegistryError: the configured credential helper is missing or failed.
    """
    path = config_path or default_config_path()
    erased = False
    helper = credential_helper(domain, path)
    if helper is not None:
        erased = helper.erase(config_key(domain))
    auths = _read_config(path).get("auths")
    if isinstance(auths, dict) and any(
        _entry_domain(key) == _entry_domain(domain) for key in auths
    ):
        _update_auths(path, domain, None)
        erased = True
        logger.info("removed credentials for %s from %s", domain, path)
    return erased


def _update_auths(path: Path, domain: str, entry: dict[str, str] | None) -> None:
    # entry None removes every entry for the domain, whatever its key style.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = _read_config(path)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = config["auths"] = {}
    if entry is None:
        for key in [k for k in auths if _entry_domain(k) == _entry_domain(domain)]:
            del auths[key]
    else:
        auths[config_key(domain)] = entry

    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(config, file, indent="\t")
        file.write("\n")
    os.replace(temp, path)


@attrs.frozen
class Challenge:
    """A parsed ``WWW-Authenticate`` header: scheme and its parameters."""

    scheme: str
    params: dict[str, str] = attrs.field(hash=False)


_PARAM = re.compile(
    r'\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?'
)


def parse_challenge(header: str) -> Challenge | None:
    """Parse the first challenge of a ``WWW-Authenticate`` header, or ``None``."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {}
    for match in _PARAM.finditer(rest):
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match.group(1).lower()] = value
    return Challenge(scheme.lower(), params)


@attrs.frozen
class _Token:
    value: str = attrs.field(repr=False)
    expires: float


class TokenCache:
    """Bearer tokens by scope, fetched from the challenge's realm when needed."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()

    def get(self, scopes: tuple[str, ...]) -> str | None:
        """Return a cached, unexpired token for ``scopes``, or ``None``."""
        with self._lock:
            token = self._tokens.get(scopes)
        if token is None or token.expires <= time.monotonic():
            return None
        return token.value

    def fetch(
        self,
        http: httpx.Client,
        challenge: Challenge,
        scopes: tuple[str, ...],
        credentials: Credentials | None,
    ) -> str | None:
        """Get a token from the realm for ``scopes`` and cache it.

        Returns ``None`` when the realm refuses (the caller then reports the
        registry's 401); never logs the token or the credentials.
        """
        realm = challenge.params.get("realm")
        if not realm:
            return None
        service = challenge.params.get("service")
        wanted = scopes or tuple(challenge.params.get("scope", "").split())
        wanted = tuple(scope for scope in wanted if scope)
        response: httpx.Response | None = None
        if credentials is not None and credentials.identity_token:
            response = self._refresh(http, realm, service, wanted, credentials)
        if response is None:
            params: list[tuple[str, str | int | float | bool | None]] = []
            if service is not None:
                params.append(("service", service))
            params.extend(("scope", scope) for scope in wanted)
            headers = {}
            if credentials is not None and (
                credentials.username or credentials.password
            ):
                headers["Authorization"] = credentials.basic_header()
            response = http.get(realm, params=params, headers=headers)
        if response.status_code != 200:
            logger.info("token realm %s answered %d", realm, response.status_code)
            return None
        try:
            body = response.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            return None
        if not isinstance(value, str) or not value:
            return None
        # Renew a little early so a token never expires mid-request.
        expires = time.monotonic() + max(lifetime - 10, 5)
        with self._lock:
            self._tokens[scopes] = _Token(value, expires)
        logger.debug("got a token for %s from %s", " ".join(scopes), realm)
        return value

    def _refresh(
        self,
        http: httpx.Client,
        realm: str,
        service: str | None,
        scopes: tuple[str, ...],
        credentials: Credentials,
    ) -> httpx.Response | None:
        # Docker's OAuth2 flow: trade the identity (refresh) token by POST.
        # None means the realm does not take POSTs and GET should be tried.
        form = {
            "grant_type": "refresh_token",
            "refresh_token": credentials.identity_token or "",
            "client_id": _CLIENT_ID,
        }
        if service is not None:
            form["service"] = service
        if scopes:
            form["scope"] = " ".join(scopes)
        response = http.post(realm, data=form)
        if response.status_code in (404, 405):
            logger.info(
                "token realm %s answered %d to POST; trying GET",
                realm,
                response.status_code,
            )
            return None
        return response
