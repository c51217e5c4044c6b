"""Published ports: a userspace forwarder from the host into a container.

The monitor of a started container listens on the host address (127.0.0.1
unless another is given) in the host's network namespace. For each TCP
connection it makes a socket in the container's network namespace (a
thread joins it with setns just long enough to create the socket: a socket
stays in the namespace it was made in), connects to the published port on
the container's loopback, and copies bytes both ways. For UDP it keeps one
such socket per client address and relays datagrams both ways.

This works the same for every network mode with a namespace of its own
(``none``, ``bridge``, user networks) and needs no firewall rule.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Mapping

from layercake._namespace_sockets import SocketMaker
from layercake.errors import ContainerConfigError
from layercake.runtime import setns_network

__all__ = ["Forwarder", "PortNotPublished", "Published", "accepts", "parse_ports"]

logger = logging.getLogger(__name__)

_CHUNK = 65536
_HOST = "127.0.0.1"

Published = tuple[int, str, str, int]
"""``(container port, "tcp" or "udp", host address, host port)``."""

OneHostPort = int | None | tuple[str, int | None]
HostPort = OneHostPort | list[OneHostPort]


def parse_ports(
    ports: Mapping[int | str, HostPort] | None,
) -> tuple[Published, ...]:
    """Normalise ``{container_port: host_port}`` (``0`` or None: any free port).

    Container ports may be written ``"8080/tcp"`` or ``"53/udp"``; a host
    port may be ``(address, port)`` to listen on another host address
    than 127.0.0.1, and a list of host ports publishes the container port
    on each of them (``docker run -p 8081:80 -p 8082:80``).

    Raises:
        ContainerConfigError: a port out of range, another protocol, or a
            host address that is not an IPv4 address.
    """
    published: list[Published] = []
    for container, hosts in (ports or {}).items():
        for host in hosts if isinstance(hosts, list) else [hosts]:
            published.append(_parse_port(str(container), host))
    return tuple(published)


def _parse_port(text: str, host: OneHostPort) -> Published:
    """One published port; raises as :func:`parse_ports` does."""
    number, _, protocol = text.partition("/")
    if not number.isdigit():
        raise ContainerConfigError(
            f"invalid published port {text!r}: {number!r} is not a port number"
        )
    if protocol not in ("", "tcp", "udp"):
        raise ContainerConfigError(
            f"invalid published port {text!r}: only TCP and UDP are forwarded"
        )
    address = _HOST
    if isinstance(host, tuple) and len(host) == 2:
        address, host = host
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ContainerConfigError(
                f"invalid host address {address!r} for {text}: not an IPv4 address"
            ) from None
    if not isinstance(host, int | None) or isinstance(host, bool):
        raise ContainerConfigError(
            f"invalid host port {host!r} for {text}: not a port number"
        )
    host_port = host or 0
    # docker: "Invalid containerPort: 99999", "Invalid hostPort: 99999".
    if not 0 < int(number) < 65536:
        raise ContainerConfigError(f"invalid container port: {number}")
    if not 0 <= host_port < 65536:
        raise ContainerConfigError(f"invalid host port: {host_port}")
    return (int(number), protocol or "tcp", address, host_port)


class PortNotPublished(OSError):
    """A published port's host address could not be bound.

    Its text names the binding as docker's does: ``cannot publish
    10.99.99.99:0 -> 80/tcp: cannot assign requested address``.
    """


class Forwarder:
    """Listening sockets for each published port, and their relay threads."""

    def __init__(self, published: tuple[Published, ...]) -> None:
        """Bind every host port now, so a taken one fails the start.

        Raises:
            PortNotPublished: a host port is taken or the address is not the
                host's; the message names the address and both ports.
        """
        self._listeners: list[tuple[int, str, socket.socket]] = []
        # The namespace to connect in; swapped under the lock on a restart.
        self._namespace = -1
        self._maker: SocketMaker | None = None
        self._lock = threading.Lock()
        try:
            for container_port, protocol, address, host_port in published:
                try:
                    self._listen(container_port, protocol, address, host_port)
                except OSError as error:
                    reason = (error.strerror or str(error)).lower()
                    raise PortNotPublished(
                        error.errno,
                        f"cannot publish {address}:{host_port} -> "
                        f"{container_port}/{protocol}: {reason}",
                    ) from None
        except OSError:
            self.close()
            raise

    def _listen(
        self, container_port: int, protocol: str, address: str, host_port: int
    ) -> None:
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        listener = socket.socket(socket.AF_INET, kind)
        self._listeners.append((container_port, protocol, listener))
        if protocol == "tcp":
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, host_port))
        if protocol == "tcp":
            listener.listen(64)

    @property
    def bound(self) -> tuple[Published, ...]:
        """The published ports, host ports as bound."""
        return tuple((c, p, *s.getsockname()[:2]) for c, p, s in self._listeners)

    def serve(self, pid: int) -> None:
        """Forward connections into the network namespace of process ``pid``.

        Called again for a restarted container, later connections go to the
        new process's namespace.
        """
        namespace = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        maker = SocketMaker(pid) if os.geteuid() != 0 else None
        with self._lock:
            previous, self._namespace = self._namespace, namespace
            previous_maker, self._maker = self._maker, maker
        if previous_maker is not None:
            previous_maker.close()
        if previous >= 0:
            os.close(previous)
            return
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        for container_port, protocol, listener in self._listeners:
            target = self._accept if protocol == "tcp" else self._relay_datagrams
            threading.Thread(
                target=target,
                args=(listener, container_port, home),
                daemon=True,
            ).start()

    def close(self) -> None:
        """Stop listening."""
        for _, _, listener in self._listeners:
            # A thread blocked in accept() would keep the port listening
            # past close(); shutdown() wakes it.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            maker, self._maker = self._maker, None
        if maker is not None:
            maker.close()

    def _accept(self, listener: socket.socket, port: int, home: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = self._socket_in(home, socket.SOCK_STREAM)
            except OSError as error:
                logger.debug("cannot reach container port %d: %s", port, error)
                client.close()
                continue
            try:
                upstream.connect((_HOST, port))
            except OSError as error:
                logger.debug("cannot reach container port %d: %s", port, error)
                client.close()
                upstream.close()
                continue
            threading.Thread(target=_join, args=(client, upstream), daemon=True).start()

    def _relay_datagrams(self, listener: socket.socket, port: int, home: int) -> None:
        upstreams: dict[tuple[str, int], socket.socket] = {}
        while True:
            try:
                data, client = listener.recvfrom(_CHUNK)
            except OSError:
                return
            upstream = upstreams.get(client)
            if upstream is None:
                try:
                    upstream = self._socket_in(home, socket.SOCK_DGRAM)
                    upstream.connect((_HOST, port))
                except OSError as error:
                    logger.debug("cannot reach container port %d/udp: %s", port, error)
                    continue
                upstreams[client] = upstream
                threading.Thread(
                    target=_answer, args=(upstream, listener, client), daemon=True
                ).start()
            try:
                upstream.send(data)
            except OSError as error:
                logger.debug("cannot send to container port %d/udp: %s", port, error)

    def _socket_in(self, home: int, kind: int) -> socket.socket:
        """A socket made in the container's current network namespace."""
        with self._lock:
            if self._maker is not None:
                return self._maker.socket(kind)
            setns_network(self._namespace)
            try:
                return socket.socket(socket.AF_INET, kind)
            finally:
                setns_network(home)


def _answer(
    upstream: socket.socket, listener: socket.socket, client: tuple[str, int]
) -> None:
    # Answers from the container go back to the client that asked.
    while True:
        try:
            data = upstream.recv(_CHUNK)
            listener.sendto(data, client)
        except ConnectionRefusedError:
            # Nothing listened in the container yet: later datagrams retry.
            continue
        except OSError:
            return


def _join(client: socket.socket, upstream: socket.socket) -> None:
    """Copy both ways until both directions end, then close both sockets."""
    back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
    back.start()
    _copy(client, upstream)
    back.join()
    client.close()
    upstream.close()


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
    if os.geteuid() != 0:
        try:
            maker = SocketMaker(pid)
        except OSError as error:
            logger.debug("cannot join the network of process %d: %s", pid, error)
            return False
        try:
            made.append(maker.socket(socket.SOCK_STREAM))
        except OSError:
            return False
        finally:
            maker.close()
        return _connects(made[0], port, timeout)

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
    return _connects(made[0], port, timeout)


def _connects(probe: socket.socket, port: int, timeout: float) -> bool:
    with probe:
        probe.settimeout(timeout)
        try:
            probe.connect((_HOST, port))
        except OSError:
            return False
    return True
