"""Host plumbing of bridge networks: bridge devices, veth pairs, masquerade.

Every device this module makes is named for layercake: the host's
default bridge ``layercake0`` (see :mod:`layercake._default_bridge`), a
bridge ``lcbr<network id>`` per user-defined network, each with its
gateway address, and a veth pair per running container (``lcv<container
id>`` on the host, ``eth0`` inside). The pair goes away by itself when
the container's network namespace does, with its last process.

Outbound traffic is masqueraded by one nft table of our own, ``inet
layercake``, rewritten as a whole from the bridges present whenever one is
added or removed, and deleted with the last one; it also keeps networks
from reaching each other. A bridge records the directory of its network in
its alias, so a bridge whose store was deleted is recognised and removed;
the default bridge has none and stays, as docker0 does.

All of this needs root. Bridges and the table are made with ``ip``
(iproute2) and ``nft``, as batches: one process per step, rarely. A
container's veth and address are set through netlink from this process
(:mod:`layercake._netlink`), since that happens at every start.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import logging
import os
import socket
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from layercake._netlink import Netlink, in_namespace
from layercake.errors import ContainerError

__all__ = [
    "DEFAULT_DEVICE",
    "address_of",
    "attach",
    "bridge_name",
    "create_bridge",
    "detach",
    "exists",
    "host_routes",
    "machine_lock",
    "remove_bridge",
    "remove_orphans",
    "veth_name",
]

logger = logging.getLogger(__name__)

TABLE = "layercake"
DEFAULT_DEVICE = "layercake0"
"""The host's default bridge: no ``lcbr`` name (10 hex digits) can be it."""
_LOCK_DIR = "/run/layercake"
_IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def bridge_name(network_id: str) -> str:
    """The bridge device of a network (within the kernel's 15 characters)."""
    return "lcbr" + network_id[:10]


def veth_name(container_id: str) -> str:
    """The host end of a container's veth pair."""
    return "lcv" + container_id[:11]


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """The IPv4 routes of the host's main table, with their devices."""
    routes = []
    try:
        with open("/proc/net/route") as file:
            lines = file.read().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination = int(fields[1], 16).to_bytes(4, "little")
        mask = int(fields[7], 16).to_bytes(4, "little")
        network = ipaddress.IPv4Network(
            (ipaddress.IPv4Address(destination), str(ipaddress.IPv4Address(mask))),
            strict=False,
        )
        if network.prefixlen:
            routes.append((network, fields[0]))
    return routes


@contextmanager
def machine_lock() -> Iterator[None]:
    """Hold the lock that orders network changes of every store on the host."""
    os.makedirs(_LOCK_DIR, mode=0o700, exist_ok=True)
    fd = os.open(f"{_LOCK_DIR}/networks.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ip(commands: list[str]) -> None:
    result = subprocess.run(
        ["ip", "-batch", "-"],
        input="\n".join(commands).encode() + b"\n",
        capture_output=True,
        check=False,
    )
    if result.returncode:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise ContainerError(f"ip: {reason[0] if reason else 'failed'}")


def address_of(device: str) -> tuple[str, int] | None:
    """The IPv4 address and prefix length of ``device``; None without one."""
    result = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", device],
        capture_output=True,
        check=False,
    )
    if result.returncode:
        return None
    for link in json.loads(result.stdout or b"[]"):
        for address in link.get("addr_info", []):
            return str(address["local"]), int(address["prefixlen"])
    return None


def exists(device: str) -> bool:
    """Whether the host has a network device of that name."""
    return os.path.exists(f"/sys/class/net/{device}")


def create_bridge(device: str, gateway: str, prefixlen: int, owner: str) -> None:
    """Create the bridge ``device`` with the gateway address, up, masqueraded.

    ``owner`` is the network's directory: the bridge is removed by the next
    change once that directory is gone; an empty ``owner`` (the default
    bridge) is kept. Nothing happens if it exists. The caller holds
    :func:`machine_lock`.

    Raises:
        ContainerError: the device could not be made (the message says why).
    """
    if exists(device):
        return
    try:
        alias = [f"link set {device} alias {owner}"] if owner else []
        _ip(
            [
                f"link add {device} type bridge",
                *alias,
                f"addr add {gateway}/{prefixlen} dev {device}",
                f"link set {device} up",
            ]
        )
        _enable_forwarding()
        _sync_table()
    except ContainerError:
        # Half a network (an address refused, no forwarding) is none.
        if exists(device):
            _ip([f"link del {device}"])
        raise
    logger.info("created bridge %s (%s/%d)", device, gateway, prefixlen)


def remove_bridge(device: str) -> None:
    """Delete the bridge ``device`` (if present) and its masquerade rule.

    The caller holds :func:`machine_lock`.
    """
    if exists(device):
        _ip([f"link del {device}"])
        logger.info("removed bridge %s", device)
    _sync_table()


def remove_orphans() -> None:
    """Delete every ``lcbr`` bridge whose network directory (its alias) is
    gone, and their masquerade rules.

    The caller holds :func:`machine_lock`.

    Raises:
        ContainerError: ``nft`` refused the new table.
    """
    _sync_table()


def detach(container_id: str) -> None:
    """Delete a container's veth pair if the kernel has not yet.

    The pair goes with the container's network namespace, but the kernel
    frees namespaces in the background: removal does not wait for it.
    """
    veth = veth_name(container_id)
    try:
        link = Netlink()
        try:
            link.delete_link(veth)
        finally:
            link.close()
    except OSError as error:
        logger.debug("cannot delete veth %s: %s", veth, error)


def _enable_forwarding() -> None:
    try:
        with open(_IP_FORWARD, "r+b") as file:
            if file.read().strip() != b"1":
                file.seek(0)
                file.write(b"1")
                logger.info("enabled net.ipv4.ip_forward")
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise ContainerError(f"cannot enable net.ipv4.ip_forward: {reason}") from None


def _our_bridges() -> list[tuple[str, str]]:
    """``(device, subnet)`` of every layercake bridge; stale ones removed."""
    result = subprocess.run(
        ["ip", "-j", "-d", "addr", "show", "type", "bridge"],
        capture_output=True,
        check=False,
    )
    bridges = []
    for link in json.loads(result.stdout or b"[]"):
        name = link.get("ifname", "")
        if not name.startswith("lcbr") and name != DEFAULT_DEVICE:
            continue
        owner = link.get("ifalias", "")
        if name != DEFAULT_DEVICE and owner and not os.path.isdir(owner):
            # Its store was deleted with the network in it.
            _ip([f"link del {name}"])
            logger.info("removed bridge %s of the deleted network %s", name, owner)
            continue
        for address in link.get("addr_info", []):
            if address.get("family") == "inet":
                subnet = ipaddress.IPv4Network(
                    f"{address['local']}/{address['prefixlen']}", strict=False
                )
                bridges.append((name, str(subnet)))
    return bridges


def isolation_rules(devices: Iterable[str]) -> list[str]:
    """nft forward-chain rules dropping traffic between the bridges ``devices``.

    Networks are isolated from each other, as Docker's are.
    """
    names = sorted(devices)
    rules = []
    for name in names:
        others = ", ".join(f'"{o}"' for o in names if o != name)
        if others:
            rules.append(f'    iifname "{name}" oifname {{ {others} }} drop')
    return rules


def _sync_table() -> None:
    bridges = _our_bridges()
    script = [f"table inet {TABLE} {{}}", f"delete table inet {TABLE}"]
    if bridges:
        names = {name for name, _ in bridges}
        script.append(f"table inet {TABLE} {{")
        script.append(
            "  chain postrouting { type nat hook postrouting priority srcnat;"
        )
        for name, subnet in bridges:
            script.append(f'    ip saddr {subnet} oifname != "{name}" masquerade')
        script.append("  }")
        script.append("  chain forward { type filter hook forward priority filter;")
        script += isolation_rules(names)
        script.append("  }")
        script.append("}")
    result = subprocess.run(
        ["nft", "-f", "-"],
        input="\n".join(script).encode() + b"\n",
        capture_output=True,
        check=False,
    )
    if result.returncode:
        reason = result.stderr.decode(errors="replace").strip()
        raise ContainerError(f"nft: {reason}")


def attach(
    pid: int,
    *,
    bridge: str,
    veth: str,
    address: str,
    prefixlen: int,
    gateway: str,
    mac: str,
) -> None:
    """Give the network namespace of process ``pid`` an ``eth0`` on ``bridge``.

    Makes the veth pair (its inner end straight in the namespace), then
    sets the address, brings ``eth0`` up and routes via the gateway
    through a netlink socket of the namespace: no process is started.

    Raises:
        ContainerError: ``pid`` shares the host's network namespace, or the
            kernel refused a step.
    """
    namespace = f"/proc/{pid}/ns/net"
    if os.stat(namespace).st_ino == os.stat("/proc/self/ns/net").st_ino:
        raise ContainerError(f"process {pid} is in the host's network namespace")
    step = f"create veth {veth} on {bridge}"
    try:
        host = Netlink()
        try:
            master = socket.if_nametoindex(bridge)
            try:
                host.add_veth(veth, master, "eth0", mac, pid)
            except FileExistsError:
                # The pair of the container's previous run, whose namespace
                # the kernel has not freed yet (a restart).
                host.delete_link(veth)
                host.add_veth(veth, master, "eth0", mac, pid)
        finally:
            host.close()
        step = "open the container's netlink"
        inside, index = in_namespace(namespace, "eth0")
        try:
            step = f"add {address}/{prefixlen} to eth0"
            inside.add_address(index, address, prefixlen)
            step = "bring eth0 up"
            inside.set_up(index)
            step = f"route via {gateway}"
            inside.add_default_route(gateway, index)
        finally:
            inside.close()
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise ContainerError(f"{step}: {reason}") from None
