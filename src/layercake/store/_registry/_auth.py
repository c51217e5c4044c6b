"""Registry credentials and authentication: Docker's config file, Basic, Bearer.

Credentials come from the caller or from the ``auths`` section of Docker's
``config.json`` (``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json``), where each entry holds base64 ``user:password``.
A registry that answers 401 says how to authenticate in
``WWW-Authenticate``: ``Basic`` means send the credentials with each request;
``Bearer realm=...,service=...,scope=...`` means trade them (or nothing, for
anonymous pulls) at the realm for a token, which is cached per scope.

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

import attrs
import httpx

__all__ = [
    "Challenge",
    "Credentials",
    "TokenCache",
    "config_key",
    "default_config_path",
    "load_credentials",
    "parse_challenge",
    "store_credentials",
]

logger = logging.getLogger(__name__)

#: The key Docker uses for Docker Hub in ``config.json``.
_DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_DOMAINS = {"docker.io", "index.docker.io", "registry-1.docker.io"}


@attrs.frozen(repr=False)
class Credentials:
    """A user name and password (or identity token) for one registry."""

    username: str
    password: str = attrs.field(repr=False)

    def basic_header(self) -> str:
        """Return the value of an HTTP Basic ``Authorization`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


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


def load_credentials(
    domain: str, config_path: Path | None = None
) -> Credentials | None:
    """Return the credentials stored for ``domain``, or ``None``.

    A missing or unreadable config file, or an entry without usable
    ``auth`` text, counts as no credentials (logged, without the secret).
    """
    path = config_path or default_config_path()
    try:
        auths = json.loads(path.read_bytes()).get("auths") or {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        logger.warning("ignoring unreadable docker config %s", path)
        return None
    wanted = "docker.io" if domain in _HUB_DOMAINS else domain
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
    auth = entry.get("auth")
    try:
        text = base64.b64decode(str(auth), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    username, sep, password = text.partition(":")
    if not sep:
        return None
    if isinstance(token, str) and token:
        password = token
    return Credentials(username, password)


def store_credentials(
    domain: str, credentials: Credentials, config_path: Path | None = None
) -> Path:
    """Write ``credentials`` for ``domain`` into Docker's config file.

    Other keys and entries are kept; the file is replaced by rename and is
    readable by its owner only. Returns the file's path.
    """
    path = config_path or default_config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        config = json.loads(path.read_bytes())
        if not isinstance(config, dict):
            config = {}
    except (FileNotFoundError, ValueError):
        config = {}
    auths = config.setdefault("auths", {})
    raw = f"{credentials.username}:{credentials.password}".encode()
    auths[config_key(domain)] = {"auth": base64.b64encode(raw).decode("ascii")}

    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(config, file, indent="\t")
        file.write("\n")
    os.replace(temp, path)
    logger.info("stored credentials for %s in %s", domain, path)
    return path


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
        params: list[tuple[str, str | int | float | bool | None]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        wanted = scopes or tuple(challenge.params.get("scope", "").split())
        params.extend(("scope", scope) for scope in wanted if scope)
        headers = {}
        if credentials is not None:
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
