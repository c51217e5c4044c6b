"""The HTTP side of a registry: one httpx client, auth, retries, redirects.

TLS is verified by default (optionally against an extra CA file); plain HTTP
is used only for registries marked insecure, which ``localhost`` and
``127.0.0.1`` are by default, as in Docker. Requests are retried with
exponential back-off on 429, 5xx answers and broken connections, honouring
``Retry-After``. Redirects are followed only where the caller allows it (blob
downloads), at most a few hops, and ``Authorization`` only ever goes to the
registry's own scheme, host and port.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

import httpx

from layercake.errors import InvalidRegistryResponse, RegistryError

from .._progress import TransferProgress
from ._auth import Credentials, TokenCache, load_credentials, parse_challenge
from ._bulk_transport import BulkTransport
from ._errors import error_from_response, public_url

__all__ = [
    "RegistryClient",
    "TransferProgress",
    "is_insecure_by_default",
    "tls_context",
]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_REDIRECTS = 5
_MAX_RETRY_AFTER = 60.0
# The proxy variables httpx reads (as urllib's getproxies names them).
_PROXY_KEYS = ("http", "https", "all")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})

Content = bytes | Callable[[], Iterable[bytes]] | None


class _RedactQueries(logging.Filter):
    """Drop query strings from URLs in httpx's own request log lines.

    httpx logs each request's full URL at INFO; a redirect to blob storage is
    often a pre-signed URL whose query string is a credential.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, httpx.URL) for arg in record.args
        ):
            record.args = tuple(
                public_url(arg) if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


_REDACT = _RedactQueries()
logging.getLogger("httpx").addFilter(_REDACT)


def is_insecure_by_default(domain: str) -> bool:
    """Return whether ``domain`` is spoken to over plain HTTP by default."""
    host = domain.rsplit(":", 1)[0] if not domain.endswith("]") else domain
    return host in _LOOPBACK


def tls_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """Return a verifying TLS context: the system's CAs plus ``ca_file``'s.

    Loading the system CA store takes tens of milliseconds, a real share of
    a small pull, so contexts are shared within the process (they are safe
    to share between threads) and made again only when ``ca_file`` changes.

    Raises:
        FileNotFoundError: ``ca_file`` does not exist.
        ssl.SSLError: ``ca_file`` holds no usable certificate.
    """
    if ca_file is None:
        return _cached_context(None, None)
    path = os.fspath(ca_file)
    stat = os.stat(path)
    return _cached_context(path, (stat.st_mtime_ns, stat.st_size, stat.st_ino))


@functools.lru_cache(maxsize=8)
def _cached_context(
    ca_file: str | None, stamp: tuple[int, int, int] | None
) -> ssl.SSLContext:
    # stamp only keys the cache: a rewritten CA file gets a fresh context.
    # The system's CA store (as Docker uses), plus the caller's extra CAs.
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def _is_tls_failure(exc: BaseException) -> bool:
    # A certificate or handshake failure will fail the same way again.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _api_host(domain: str) -> str:
    return "registry-1.docker.io" if domain == "docker.io" else domain


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host, port


class RegistryClient:
    """Talks to one registry: ``request`` adds auth, retries and redirects.

    Args:
        domain: the registry domain of a reference (``docker.io``,
            ``127.0.0.1:5000``).
        credentials: user and password; by default those stored for the
            domain in Docker's config file, if any.
        insecure: use plain HTTP; by default only for loopback hosts.
        ca_file: an extra PEM file of CA certificates to trust.
        timeout: seconds to wait for a connection or for the next bytes.
        retries: how many times a failed request is tried again.
        backoff: the first back-off delay in seconds (doubles each retry).
        config_path: Docker's config file to read credentials from.
    """

    def __init__(
        self,
        domain: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool | None = None,
        ca_file: str | Path | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        config_path: Path | None = None,
    ) -> None:
        self.domain = domain
        if insecure is None:
            insecure = is_insecure_by_default(domain)
        scheme = "http" if insecure else "https"
        self.base_url = httpx.URL(f"{scheme}://{_api_host(domain)}")
        if credentials is None:
            credentials = load_credentials(domain, config_path)
        self._credentials = credentials
        self._retries = retries
        self._backoff = backoff
        self._tokens = TokenCache()
        self._basic = False
        self._auth_lock = threading.Lock()
        context = tls_context(ca_file)
        limits = httpx.Timeout(timeout, connect=min(timeout, 30.0))
        self._http = httpx.Client(
            verify=context,
            timeout=limits,
            follow_redirects=False,
            headers={"User-Agent": "layercake"},
        )
        # Blob bodies: the same requests, on a transport that reads them in
        # large pieces. httpx ignores proxy variables for a client given a
        # transport, so with a proxy set blobs stay on httpx's own.
        self._bulk = self._http
        if not any(key in urllib.request.getproxies() for key in _PROXY_KEYS):
            self._bulk = httpx.Client(
                verify=context,
                timeout=limits,
                follow_redirects=False,
                headers={"User-Agent": "layercake"},
                transport=BulkTransport(context),
            )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()
        if self._bulk is not self._http:
            self._bulk.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> httpx.URL:
        """Return the registry URL of an API ``path`` (``/v2/...``)."""
        return self.base_url.join(path)

    def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        scopes: tuple[str, ...],
        action: str,
        reference: str | None,
        headers: Mapping[str, str] | None = None,
        content: Content = None,
        follow_redirects: bool = False,
        bulk: bool = False,
    ) -> httpx.Response:
        """Send a request and return the streaming response, whatever status.

        The caller reads or closes the response. 401 answers are met once
        with credentials or a token; 429, 5xx and connection failures are
        retried; redirects are followed when ``follow_redirects``. With
        ``bulk``, the request goes through :class:`BulkTransport`, and
        :meth:`BulkBody.of` gives its body to read with ``readinto``
        (unless a proxy is configured: then httpx's transport, which reads
        in 64 KiB pieces and gives no ``BulkBody``).

        Raises:
            RegistryError: the registry could not be reached after retries.
            TooManyRequests: it still rate-limited after every retry.
            InvalidRegistryResponse: too many redirects.
        """
        target = httpx.URL(str(url)) if isinstance(url, str) else url
        attempt = 0
        hops = 0
        authenticated = False
        while True:
            response = self._send(
                method,
                target,
                scopes,
                headers,
                content,
                action,
                reference,
                attempt,
                self._bulk if bulk else self._http,
            )
            if response is None:
                attempt += 1
                continue

            status = response.status_code
            if status == 401 and not authenticated and self._is_registry(target):
                authenticated = True
                if self._authenticate(response, scopes):
                    response.close()
                    continue
            if status in _RETRY_STATUS and attempt < self._retries:
                delay = self._delay(attempt, response)
                response.close()
                logger.info(
                    "%s %s answered %d; retrying in %.1fs",
                    method,
                    public_url(target),
                    status,
                    delay,
                )
                time.sleep(delay)
                attempt += 1
                continue
            if status == 429:
                self.check(response, reference=reference, action=action, expected=())
            if follow_redirects and status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                response.close()
                hops += 1
                if location is None or hops > _MAX_REDIRECTS:
                    problem = (
                        "too many redirects" if location else "redirect to nowhere"
                    )
                    raise InvalidRegistryResponse(
                        f"{action} failed for {reference}: {problem} "
                        f"from {public_url(target)}",
                        url=public_url(target),
                        status=status,
                        reference=reference,
                    )
                target = target.join(location)
                logger.debug("following redirect to %s", public_url(target))
                continue
            return response

    def _send(
        self,
        method: str,
        target: httpx.URL,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None,
        content: Content,
        action: str,
        reference: str | None,
        attempt: int,
        client: httpx.Client,
    ) -> httpx.Response | None:
        all_headers = dict(headers or {})
        if self._is_registry(target):
            authorization = self._authorization(scopes)
            if authorization is not None:
                all_headers["Authorization"] = authorization
        body: Any = content() if callable(content) else content
        request = client.build_request(
            method, target, headers=all_headers, content=body
        )
        try:
            return client.send(request, stream=True)
        except httpx.TransportError as exc:
            if attempt >= self._retries or _is_tls_failure(exc):
                raise RegistryError(
                    f"{action} failed for {reference}: {method} "
                    f"{public_url(target)}: {type(exc).__name__}: {exc}",
                    url=public_url(target),
                    reference=reference,
                ) from exc
            delay = self._backoff * 2**attempt
            logger.info(
                "%s %s failed (%s); retrying in %.1fs",
                method,
                public_url(target),
                type(exc).__name__,
                delay,
            )
            time.sleep(delay)
            return None

    def _is_registry(self, url: httpx.URL) -> bool:
        return _origin(url) == _origin(self.base_url)

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        token = self._tokens.get(scopes)
        if token is not None:
            return f"Bearer {token}"
        if self._basic and self._credentials is not None:
            return self._credentials.basic_header()
        return None

    def _authenticate(self, response: httpx.Response, scopes: tuple[str, ...]) -> bool:
        sent: str | None = response.request.headers.get("Authorization")
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return False
        # Parallel transfers meet the same 401 at once; one thread fetches
        # the token while the others wait and then reuse it.
        with self._auth_lock:
            current = self._authorization(scopes)
            if current is not None and current != sent:
                return True
            if challenge.scheme == "basic":
                if self._credentials is None:
                    return False
                self._basic = True
                return sent != self._credentials.basic_header()
            if challenge.scheme == "bearer":
                token = self._tokens.fetch(
                    self._http, challenge, scopes, self._credentials
                )
                return token is not None
        return False

    def _delay(self, attempt: int, response: httpx.Response) -> float:
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), _MAX_RETRY_AFTER)
            except ValueError:
                pass
        return float(self._backoff * 2**attempt)

    def check(
        self,
        response: httpx.Response,
        *,
        reference: str | None,
        action: str,
        expected: tuple[int, ...] = (200,),
    ) -> None:
        """Raise the registry error for ``response`` unless its status fits.

        Raises:
            RegistryError: or the subclass the error code names.
        """
        if response.status_code in expected:
            return
        try:
            raise error_from_response(response, reference=reference, action=action)
        finally:
            response.close()
