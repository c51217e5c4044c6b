"""Attaching to a started container through a Unix socket its monitor owns.

The monitor of every started container listens on ``attach.sock`` in the
container's directory (see :mod:`._attach_socket`). Each client gets the
container's output as it is written, in Docker's multiplexed stream format
(an 8-byte header: the stream, 1 for stdout or 2 for stderr, three zero
bytes and the payload's length as a big-endian 32-bit number), and sends
frames of its own: ``i`` with input for the container's stdin (its
terminal, or the pipe the monitor holds open), ``r`` with a new window
size (two big-endian 16-bit numbers, rows and columns); input to a
container with neither is dropped. When the run ends the monitor hangs up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import threading
from pathlib import Path

from layercake._attach_socket import ATTACH_SOCKET, SocketPlace
from layercake._container_log import LogWriter, Stream
from layercake.errors import ContainerError
from layercake.runtime import set_terminal_size, write_all

__all__ = ["ATTACH_SOCKET", "AttachServer", "BroadcastLog", "attach", "resize"]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">B3xI")
_FRAME = struct.Struct(">cI")
_SIZE = struct.Struct(">HH")
_STREAMS = {"stdout": 1, "stderr": 2}
_CHUNK = 65536
# A client that takes longer than this to accept output is dropped rather
# than allowed to hold up the container's log.
_SEND_TIMEOUT = 5.0


class AttachServer:
    """The monitor's end: accepts clients, relays their input, broadcasts output.

    It serves ``listener``, bound by :func:`layercake._attach_socket.listen`
    at ``place``, and owns both from then on.
    """

    def __init__(self, listener: socket.socket, place: SocketPlace) -> None:
        self._directory = place
        self._listener = listener
        self._lock = threading.Lock()
        # Held while input is written, so the run's descriptors stay open.
        self._run_lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._input: int | None = None
        self._terminal: int | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def set_run(self, stdin: int | None, terminal: int | None) -> None:
        """Name where input goes for the current run, and its terminal.

        The server keeps copies of both descriptors, so the run's end
        (which closes the originals) never leaves it writing to a number
        reused for something else; ``set_run(None, None)`` drops them.
        """
        with self._run_lock:
            for fd in {fd for fd in (self._input, self._terminal) if fd is not None}:
                os.close(fd)
            self._terminal = None if terminal is None else os.dup(terminal)
            if terminal is not None:
                self._input = self._terminal
            else:
                self._input = None if stdin is None else os.dup(stdin)

    def broadcast(self, stream: str, chunk: bytes) -> None:
        """Send output to every client; drop a client that cannot take it."""
        frame = _HEADER.pack(_STREAMS[stream], len(chunk)) + chunk
        with self._lock:
            for client in tuple(self._clients):
                try:
                    client.sendall(frame)
                except OSError:
                    self._drop(client)

    def hang_up(self) -> None:
        """The run ended: every client sees the end of its output."""
        with self._lock:
            for client in tuple(self._clients):
                self._drop(client)

    def close(self) -> None:
        """Stop listening and remove the socket."""
        self.hang_up()
        self._listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self._directory.path)
        self._directory.close()

    def _drop(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        client.close()
        if client in self._clients:
            self._clients.remove(client)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.settimeout(_SEND_TIMEOUT)
            with self._lock:
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """Act on one client's frames until it stops sending, then hang up:
        the client knows from the end that everything it sent was done."""
        try:
            while True:
                header = _receive(client, _FRAME.size)
                if header is None:
                    return
                kind, length = _FRAME.unpack(header)
                payload = _receive(client, length)
                if payload is None:
                    return
                self._act(kind, payload)
        except OSError:
            return
        finally:
            with self._lock:
                self._drop(client)

    def _act(self, kind: bytes, payload: bytes) -> None:
        with self._run_lock:
            if kind == b"i" and self._input is not None:
                write_all(self._input, payload)
            elif kind == b"r" and self._terminal is not None and len(payload) == 4:
                with contextlib.suppress(OSError):
                    set_terminal_size(self._terminal, *_SIZE.unpack(payload))


class BroadcastLog(LogWriter):
    """The container's log, whose every chunk also goes to attached clients."""

    def __init__(self, path: Path, server: AttachServer) -> None:
        super().__init__(path)
        self._server = server

    def feed(self, stream: Stream, chunk: bytes) -> None:
        """Log the chunk's complete lines and send the chunk to clients."""
        super().feed(stream, chunk)
        self._server.broadcast(stream, chunk)


def _receive(sock: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes, or None at the end; an idle client may wait."""
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except TimeoutError:
            continue
        if not chunk:
            return None
        data += chunk
    return data


def _connect(directory: Path, container_id: str) -> socket.socket:
    place = SocketPlace(directory)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(place.path)
    except OSError:
        sock.close()
        raise ContainerError(
            f"container {container_id[:12]} cannot be attached to: it is not "
            "running under a monitor",
            container_id=container_id,
        ) from None
    finally:
        place.close()
    return sock


def resize(directory: Path, container_id: str, rows: int, columns: int) -> None:
    """Ask the monitor of a started container to resize its terminal.

    Raises:
        ContainerError: nothing listens on the container's socket.
    """
    with _connect(directory, container_id) as sock:
        sock.sendall(_FRAME.pack(b"r", _SIZE.size) + _SIZE.pack(rows, columns))
        # The monitor hangs up once it has acted on everything sent, so the
        # new size is in place when this returns.
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(_SEND_TIMEOUT)
        with contextlib.suppress(OSError):
            while sock.recv(_CHUNK):
                pass


def attach(
    directory: Path,
    container_id: str,
    stdin: int | None,
    outputs: tuple[int, int],
    detach_keys: bytes,
) -> bool:
    """Relay ``stdin`` to the container and its output to ``outputs``.

    Returns False when the run ended (the monitor hung up), True when the
    caller typed ``detach_keys`` (nothing of them reaches the container).
    A prefix of the keys is held back until the next key shows whether the
    whole sequence follows, as Docker does.

    Raises:
        ContainerError: nothing listens on the container's socket.
    """
    sock = _connect(directory, container_id)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if stdin is not None:
        poller.register(stdin, select.POLLIN)
    received = b""
    held = b""
    try:
        while True:
            for fd, _event in poller.poll():
                if fd == stdin:
                    chunk = os.read(stdin, _CHUNK)
                    if not chunk:
                        poller.unregister(stdin)
                        stdin = None
                        continue
                    send, held, detached = _scan(held + chunk, detach_keys)
                    if send:
                        sock.sendall(_FRAME.pack(b"i", len(send)) + send)
                    if detached:
                        return True
                    continue
                chunk = sock.recv(_CHUNK)
                if not chunk:
                    return False
                received = _deliver(received + chunk, outputs)
    finally:
        sock.close()


def _scan(data: bytes, keys: bytes) -> tuple[bytes, bytes, bool]:
    """Split typed bytes into what to send, what to hold, and whether to detach."""
    if not keys:
        return data, b"", False
    found = data.find(keys)
    if found >= 0:
        return data[:found], b"", True
    for length in range(min(len(keys) - 1, len(data)), 0, -1):
        if keys.startswith(data[-length:]):
            return data[:-length], data[-length:], False
    return data, b"", False


def _deliver(data: bytes, outputs: tuple[int, int]) -> bytes:
    """Write each whole frame to its stream's descriptor; return the rest."""
    while len(data) >= _HEADER.size:
        stream, length = _HEADER.unpack_from(data)
        end = _HEADER.size + length
        if len(data) < end:
            break
        target = outputs[0] if stream == 1 else outputs[1]
        write_all(target, data[_HEADER.size : end])
        data = data[end:]
    return data
