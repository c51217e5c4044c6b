"""The few rtnetlink requests that plug a container into a bridge.

Sent over ``AF_NETLINK`` sockets from this process: no ``ip`` process per
container start. A netlink socket acts in the network namespace it was made
in, so the socket for the container's side is made by a thread that joined
the container's namespace.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading

from layercake.runtime import setns_network

__all__ = ["Netlink", "in_namespace"]

_RTM_NEWLINK = 16
_RTM_DELLINK = 17
_RTM_NEWADDR = 20
_RTM_NEWROUTE = 24
_NLMSG_ERROR = 2
_F_REQUEST = 0x1
_F_ACK = 0x4
_F_EXCL = 0x200
_F_CREATE = 0x400
_IFF_UP = 0x1

_IFLA_ADDRESS = 1
_IFLA_IFNAME = 3
_IFLA_MASTER = 10
_IFLA_LINKINFO = 18
_IFLA_NET_NS_PID = 19
_IFLA_INFO_KIND = 1
_IFLA_INFO_DATA = 2
_VETH_INFO_PEER = 1
_IFA_ADDRESS = 1
_IFA_LOCAL = 2
_RTA_GATEWAY = 5
_RTA_OIF = 4
_RT_TABLE_MAIN = 254
_RTPROT_BOOT = 3
_RTN_UNICAST = 1


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _link(index: int = 0, flags: int = 0) -> bytes:
    # struct ifinfomsg: family, pad, type, index, flags, change
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, flags)


class Netlink:
    """A NETLINK_ROUTE socket of the namespace it was made in."""

    def __init__(self) -> None:
        """Open the socket.

        Raises:
            OSError: netlink is not available.
        """
        self._socket = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0
        )
        self._socket.bind((0, 0))
        self._sequence = 0

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()

    def _request(self, kind: int, flags: int, body: bytes) -> None:
        self._sequence += 1
        header = struct.pack(
            "=IHHII",
            16 + len(body),
            kind,
            _F_REQUEST | _F_ACK | flags,
            self._sequence,
            0,
        )
        self._socket.sendto(header + body, (0, 0))
        while True:
            reply = self._socket.recv(65536)
            offset = 0
            while offset + 16 <= len(reply):
                length, reply_kind, _, sequence, _ = struct.unpack_from(
                    "=IHHII", reply, offset
                )
                if reply_kind == _NLMSG_ERROR and sequence == self._sequence:
                    (code,) = struct.unpack_from("=i", reply, offset + 16)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                offset += max(length, 16) + (-length % 4)

    def add_veth(
        self, name: str, master: int, peer: str, peer_mac: str, peer_pid: int
    ) -> None:
        """Create the veth ``name`` (up, on bridge ``master``) and its peer.

        The peer, with ``peer_mac``, is made straight in the network
        namespace of process ``peer_pid``, down: the kernel cannot bring
        up a veth end before its pair is complete (see :meth:`set_up`).

        Raises:
            OSError: the kernel refused (a name taken, no such bridge).
        """
        mac = bytes.fromhex(peer_mac.replace(":", ""))
        peer_message = (
            _link()
            + _attr(_IFLA_IFNAME, _name(peer))
            + _attr(_IFLA_ADDRESS, mac)
            + _attr(_IFLA_NET_NS_PID, struct.pack("=I", peer_pid))
        )
        info = _attr(_IFLA_INFO_KIND, _name("veth")) + _attr(
            _IFLA_INFO_DATA, _attr(_VETH_INFO_PEER, peer_message)
        )
        body = (
            _link(flags=_IFF_UP)
            + _attr(_IFLA_IFNAME, _name(name))
            + _attr(_IFLA_MASTER, struct.pack("=I", master))
            + _attr(_IFLA_LINKINFO, info)
        )
        self._request(_RTM_NEWLINK, _F_CREATE | _F_EXCL, body)

    def delete_link(self, name: str) -> bool:
        """Delete the link ``name``; False if there is none.

        Raises:
            OSError: the kernel refused.
        """
        try:
            self._request(_RTM_DELLINK, 0, _link() + _attr(_IFLA_IFNAME, _name(name)))
        except OSError as error:
            if error.errno == errno.ENODEV:
                return False
            raise
        return True

    def set_up(self, index: int) -> None:
        """Bring the link ``index`` up.

        Raises:
            OSError: the kernel refused.
        """
        self._request(_RTM_NEWLINK, 0, _link(index, _IFF_UP))

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        """Give the link ``index`` an IPv4 address.

        Raises:
            OSError: the kernel refused.
        """
        packed = ipaddress.IPv4Address(address).packed
        # struct ifaddrmsg: family, prefixlen, flags, scope, index
        body = (
            struct.pack("=BBBBI", socket.AF_INET, prefixlen, 0, 0, index)
            + _attr(_IFA_LOCAL, packed)
            + _attr(_IFA_ADDRESS, packed)
        )
        self._request(_RTM_NEWADDR, _F_CREATE | _F_EXCL, body)

    def add_default_route(self, gateway: str, index: int) -> None:
        """Route everything via ``gateway`` on link ``index``.

        Raises:
            OSError: the kernel refused.
        """
        # struct rtmsg: family, dst_len, src_len, tos, table, protocol,
        # scope, type, flags
        body = (
            struct.pack(
                "=BBBBBBBBI",
                socket.AF_INET,
                0,
                0,
                0,
                _RT_TABLE_MAIN,
                _RTPROT_BOOT,
                0,
                _RTN_UNICAST,
                0,
            )
            + _attr(_RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
            + _attr(_RTA_OIF, struct.pack("=I", index))
        )
        self._request(_RTM_NEWROUTE, _F_CREATE | _F_EXCL, body)


def in_namespace(path: str, device: str) -> tuple[Netlink, int]:
    """A netlink socket of the network namespace ``path``, and ``device``'s index.

    Raises:
        OSError: the namespace cannot be joined or has no such device.
    """
    made: list[tuple[Netlink, int]] = []
    failures: list[OSError] = []

    def make() -> None:
        # The thread ends right after: it never has to come back.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns_network(fd)
            finally:
                os.close(fd)
            made.append((Netlink(), socket.if_nametoindex(device)))
        except OSError as error:
            failures.append(error)

    thread = threading.Thread(target=make, daemon=True)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
    if not made:
        raise OSError(errno.EIO, f"cannot open netlink in {path}")
    return made[0]
