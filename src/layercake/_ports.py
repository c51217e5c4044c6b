"""Published ports: a userspace TCP forwarder from 127.0.0.1 into a container.

The monitor of a started container listens on 127.0.0.1 in the host's
network namespace; for each connection it makes a socket in the
container's network namespace (a thread joins it with setns just long
enough to create the socket: a socket stays in the namespace it was made
in), connects to the published port on the container's loopback, and
copies bytes both ways.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

from layercake.errors import ContainerConfigError
from layercake.runtime import setns_network

__all__ = ["Forwarder", "accepts", "parse_ports"]

logger = logging.getLogger(__name__)

_CHUNK = 65536
_HOST = "127.0.0.1"


def parse_ports(
    ports: Mapping[int | str, int | None] | None,
) -> tuple[tuple[int, int], ...]:
    """Normalise ``{container_port: host_port}`` (``0`` or None: any free port).

    Container ports may be written ``"8080/tcp"``; only TCP is forwarded.

    Raises:
        ContainerConfigError: a port out of range or another protocol.
    """
    published = []
    for container, host in (ports or {}).items():
        text = str(container)
        number, _, protocol = text.partition("/")
        if not number.isdigit():
            raise ContainerConfigError(
                f"invalid published port {text!r}: {number!r} is not a port number"
            )
        if protocol not in ("", "tcp"):
            raise ContainerConfigError(
                f"invalid published port {text!r}: only TCP ports are forwarded"
            )
        if not isinstance(host, int | None) or isinstance(host, bool):
            raise ContainerConfigError(
                f"invalid host port {host!r} for {text}: not a port number"
            )
        host_port = host or 0
        if not 0 < int(number) < 65536 or not 0 <= host_port < 65536:
            raise ContainerConfigError(f"invalid published port {text}:{host_port}")
        published.append((int(number), host_port))
    return tuple(published)


class Forwarder:
    """Listeners on 127.0.0.1 for each published port, and their copy threads."""

    def __init__(self, published: tuple[tuple[int, int], ...]) -> None:
        """Bind every host port now, so a taken one fails the start.

        Raises:
            OSError: a host port is taken.
        """
        self._listeners: list[tuple[int, socket.socket]] = []
        try:
            for container_port, host_port in published:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._listeners.append((container_port, listener))
                listener.bind((_HOST, host_port))
                listener.listen(64)
        except OSError:
            self.close()
            raise

    @property
    def bound(self) -> tuple[tuple[int, int], ...]:
        """``(container port, host port)`` pairs, host ports as bound."""
        return tuple((c, s.getsockname()[1]) for c, s in self._listeners)

    def serve(self, pid: int) -> None:
        """Forward connections into the network namespace of process ``pid``."""
        namespace = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        for container_port, listener in self._listeners:
            threading.Thread(
                target=self._accept,
                args=(listener, container_port, namespace, home),
                daemon=True,
            ).start()

    def close(self) -> None:
        """Stop listening."""
        for _, listener in self._listeners:
            listener.close()

    def _accept(
        self, listener: socket.socket, port: int, namespace: int, home: int
    ) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                setns_network(namespace)
                try:
                    upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                finally:
                    setns_network(home)
                upstream.connect((_HOST, port))
            except OSError as error:
                logger.debug("cannot reach container port %d: %s", port, error)
                client.close()
                continue
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=_copy, args=(source, target), daemon=True
                ).start()


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(_CHUNK):
            target.sendall(chunk)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def accepts(pid: int, port: int, *, timeout: float = 1.0) -> bool:
    """Whether something listens on ``port`` of the container loopback of ``pid``.

    The probe connects from inside the container's network namespace, not
    through the host-side forwarder, which accepts whether or not the
    container listens. A short-lived thread joins the namespace to make the
    socket, so the caller's thread never leaves its own.
    """
    made: list[socket.socket] = []

    def make() -> None:
        try:
            namespace = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            setns_network(namespace)
            made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        except OSError as error:
            logger.debug("cannot join the network of process %d: %s", pid, error)
        finally:
            os.close(namespace)

    # The thread ends right after, so it never has to return to the host's.
    thread = threading.Thread(target=make, daemon=True)
    thread.start()
    thread.join()
    if not made:
        return False
    with made[0] as probe:
        probe.settimeout(timeout)
        try:
            probe.connect((_HOST, port))
        except OSError:
            return False
    return True
