"""An httpx transport for blob bodies that reads them into the caller's buffer.

httpx's own transport hands a body over in the pieces its HTTP/1.1 parser
produces (64 KiB socket reads, each parsed, copied and wrapped); for a
100 MB layer that handling costs about as much CPU as its sha256. This
transport sends the request with the standard library's ``http.client`` and
gives back a body that :meth:`BulkBody.readinto` reads straight into a
reused buffer, so the bytes are copied once, from the socket to where they
are hashed and written.

It is only the wire: :class:`RegistryClient` still does auth, retries and
redirects around it, and httpx still routes proxied URLs to its own proxy
transport. Connections are kept alive per scheme, host and port and reused
once a body has been read to its end.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
from collections.abc import Iterator

import httpx

__all__ = ["BulkBody", "BulkTransport"]

logger = logging.getLogger(__name__)

_PIECE = 1 << 20
_EXTENSION = "layercake.bulk_body"
# Idle connections kept per origin: as many as a pull downloads in parallel.
_IDLE_PER_ORIGIN = 4

_Origin = tuple[str, str, int]
_Connection = http.client.HTTPConnection


class BulkTransport(httpx.BaseTransport):
    """Sends HTTP/1.1 requests with ``http.client``; bodies read by ``readinto``.

    Args:
        context: the TLS context for ``https`` URLs (verifying, as httpx's).

    Failures are raised as httpx's transport errors (``ConnectError``,
    ``ConnectTimeout``, ``ReadTimeout``, ``ReadError``,
    ``RemoteProtocolError``), so callers handle them as for httpx's own
    transport.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its response with a :class:`BulkBody`.

        Raises:
            httpx.TransportError: connecting, sending or reading the answer
                failed.
        """
        url = request.url
        origin = (url.scheme, url.host, url.port or _default_port(url.scheme))
        timeouts = request.extensions.get("timeout", {})
        reused = self._take_idle(origin)
        if reused is not None:
            try:
                return self._exchange(reused, origin, request, timeouts)
            except httpx.TransportError:
                # A kept-alive connection the server closed meanwhile; a
                # fresh one answers for it (httpcore does the same).
                logger.debug("kept-alive connection to %s failed", url.host)
        connection = self._connect(origin, timeouts)
        return self._exchange(connection, origin, request, timeouts)

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle = [c for each in self._idle.values() for c in each]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        with self._lock:
            idle = self._idle.get(origin)
            return idle.pop() if idle else None

    def give_back(self, origin: _Origin, connection: _Connection) -> None:
        """Keep ``connection`` for the next request to ``origin``, or close it."""
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < _IDLE_PER_ORIGIN:
                idle.append(connection)
                return
        connection.close()

    def _connect(
        self, origin: _Origin, timeouts: dict[str, float | None]
    ) -> _Connection:
        scheme, host, port = origin
        connection: _Connection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=timeouts.get("connect"), context=self._context
            )
        else:
            connection = http.client.HTTPConnection(
                host, port, timeout=timeouts.get("connect")
            )
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise httpx.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            connection.close()
            raise httpx.ConnectError(str(exc)) from exc
        return connection

    def _exchange(
        self,
        connection: _Connection,
        origin: _Origin,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        try:
            assert connection.sock is not None
            connection.sock.settimeout(timeouts.get("read"))
            connection.putrequest(
                request.method,
                request.url.raw_path.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in request.headers.raw:
                connection.putheader(name, value)
            body = request.read()
            connection.endheaders(body or None)
            answer = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _transport_error(exc) from exc
        except BaseException:
            connection.close()
            raise
        body = BulkBody(self, origin, connection, answer)
        # httpx wraps the stream it is given; the extension keeps it reachable.
        return httpx.Response(
            answer.status,
            headers=answer.getheaders(),
            stream=body,
            extensions={"http_version": b"HTTP/1.1", _EXTENSION: body},
        )


class BulkBody(httpx.SyncByteStream):
    """A response body read from the socket into the caller's buffers."""

    def __init__(
        self,
        transport: BulkTransport,
        origin: _Origin,
        connection: _Connection,
        answer: http.client.HTTPResponse,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: _Connection | None = connection
        self._answer = answer
        self._received = 0

    @staticmethod
    def of(response: httpx.Response) -> BulkBody | None:
        """Return the body of a response this transport made, else None."""
        body = response.extensions.get(_EXTENSION)
        return body if isinstance(body, BulkBody) else None

    def readinto(self, buffer: memoryview) -> int:
        """Fill the start of ``buffer`` with the next bytes; 0 at the end.

        Raises:
            httpx.RemoteProtocolError: the body ended before its length.
            httpx.ReadTimeout, httpx.ReadError: the socket failed.
        """
        try:
            count = self._answer.readinto(buffer)
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise _transport_error(exc) from exc
        except BaseException:
            self._drop()
            raise
        self._received += count
        if count == 0 and buffer and self._answer.length:
            # http.client ends a body cut short quietly: its length says.
            expected = self._received + self._answer.length
            self._drop()
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body "
                f"(received {self._received} bytes, expected {expected})"
            )
        if count == 0:
            self.close()
        return count

    def __iter__(self) -> Iterator[bytes]:
        buffer = memoryview(bytearray(_PIECE))
        while count := self.readinto(buffer):
            yield bytes(buffer[:count])

    def close(self) -> None:
        """Give the connection back if the body was read whole, else close it."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._answer.isclosed() and not self._answer.will_close:
            self._transport.give_back(self._origin, connection)
        else:
            self._answer.close()
            connection.close()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._answer.close()
        if connection is not None:
            connection.close()


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _transport_error(
    exc: OSError | http.client.HTTPException,
) -> httpx.TransportError:
    if isinstance(exc, http.client.IncompleteRead):
        return httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received {len(exc.partial)} bytes, expected {exc.expected})"
        )
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(str(exc))
    if isinstance(exc, http.client.HTTPException | ConnectionError):
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__)
    return httpx.ReadError(str(exc))
