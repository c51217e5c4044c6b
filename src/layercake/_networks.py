"""A store's bridge networks: their records, address leases and hosts files.

``store/networks/<name>/network.json`` describes a network (its subnet,
gateway and bridge device); ``endpoints/<container id>.json`` beside it is
a container's lease: its address, MAC address, name and aliases. Leases
are taken when a container is created and given back when it is removed;
a lease whose container directory is gone (its process crashed half-way)
is freed by the next allocation. Every change happens under a lock on the
``networks`` directory; choosing a subnet and making or removing a bridge
also under :func:`layercake._bridge.machine_lock`, since other stores on
the host share the address space.

The default network, ``bridge``, is the host's (see
:mod:`layercake._default_bridge`): its addresses are leased host-wide, and
the store keeps a copy of its record and its own containers' endpoints in
``networks/bridge`` while it has any, for ``inspect`` and ``network ls``.

Without root, the bridges of user-defined networks live in the network
namespace of a process the user owns (:mod:`layercake._user_netns`)
instead of the host's: they are made there when a member starts, and no
machine-wide lock or host route is involved.

Containers on one network find each other by name through /etc/hosts: each
member has its own hosts file (bound in by the runtime) listing every
running member, rewritten in place when one starts or is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from layercake._container_state import now
from layercake.errors import ContainerConfigError, ContainerError, LayercakeError

if TYPE_CHECKING:
    from layercake._default_bridge import HostBridge

__all__ = [
    "DEFAULT_NETWORK",
    "Endpoint",
    "Network",
    "allocate",
    "create_network",
    "endpoint",
    "endpoints",
    "get_network",
    "list_networks",
    "named",
    "release",
    "remove_network",
    "rename",
    "unreadable",
    "relocate",
    "write_hosts",
    "write_own_hosts",
]

logger = logging.getLogger(__name__)

DEFAULT_NETWORK = "bridge"
"""The host's default network (``network="bridge"``): the store lists it
while one of its containers has an address on it."""

_RESERVED = ("none", "host")
_PREDEFINED = (DEFAULT_NETWORK, *_RESERVED)
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_POOL = ipaddress.IPv4Network("10.210.0.0/16")
_POOL_PREFIX = 24


@attrs.frozen
class Network:
    """A bridge network of a store, as ``docker network inspect`` shows it.

    Attributes:
        name: the network's name, unique in its store.
        id: 64 hex digits.
        subnet: the IPv4 subnet its containers get addresses from.
        gateway: the host's address on it (the bridge's).
        device: the host's bridge device, ``lcbr`` and part of the id.
        created: when it was made (RFC 3339).
        driver: always ``"bridge"``.
    """

    name: str
    id: str
    subnet: str
    gateway: str
    device: str
    created: str
    driver: str = "bridge"

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the id, as ``docker network ls`` shows it."""
        return self.id[:12]


@attrs.frozen
class Endpoint:
    """A container's lease on a network: its address, the names it has and
    its ``--add-host`` entries (for its hosts file)."""

    network: str
    container_id: str
    container_name: str
    hostname: str
    address: str
    mac: str
    aliases: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()


def _root(store_path: Path) -> Path:
    return store_path / "networks"


@contextmanager
def _locked(store_path: Path) -> Iterator[Path]:
    root = _root(store_path)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield root
    finally:
        os.close(fd)


def _read(path: Path) -> Network:
    data = json.loads((path / "network.json").read_text())
    return Network(**data)


def _write_json(path: Path, value: object) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=1, sort_keys=True))
    partial.replace(path)


def _unreadable_reason(path: Path) -> str | None:
    """Why ``path``'s network.json cannot be read; None when it can."""
    record = path / "network.json"
    try:
        _read(path)
    except OSError as error:
        return f"cannot read {record}: {(error.strerror or str(error)).lower()}"
    except (ValueError, TypeError) as error:
        return f"cannot read {record}: {error}"
    return None


def unreadable(store_path: Path) -> dict[str, str]:
    """The networks whose record cannot be read (a crash half-way through
    writing it), by name, with the reason naming the file."""
    root = _root(store_path)
    if not root.is_dir():
        return {}
    found = {}
    for path in sorted(root.iterdir()):
        if not _NAME.fullmatch(path.name) or not path.is_dir():
            continue
        reason = _unreadable_reason(path)
        if reason is not None:
            found[path.name] = reason
    return found


def list_networks(store_path: Path) -> list[Network]:
    """The readable networks of the store at ``store_path``, by name (see
    :func:`unreadable` for the others)."""
    root = _root(store_path)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        try:
            found.append(_read(path))
        except (OSError, ValueError, TypeError):
            continue
    return found


def named(store_path: Path, name: str) -> Network | None:
    """The network called exactly ``name``; None without one."""
    try:
        return _read(_root(store_path) / name)
    except (OSError, ValueError, TypeError):
        return None


def get_network(store_path: Path, name: str) -> Network:
    """The network called ``name`` (or whose id starts with it).

    Raises:
        ContainerError: there is no such network, or its record cannot be
            read (the message names the file).
    """
    for network in list_networks(store_path):
        if network.name == name:
            return network
    path = _root(store_path) / name
    if _NAME.fullmatch(name) and path.is_dir():
        reason = _unreadable_reason(path)
        if reason is not None:
            raise ContainerError(f"network {name}: {reason}")
    matches = [n for n in list_networks(store_path) if n.id.startswith(name)]
    if len(matches) == 1 and name:
        return matches[0]
    raise ContainerError(f"network {name} not found")


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ContainerConfigError(
            f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    if name in _RESERVED:
        raise ContainerConfigError(
            f"network name {name!r} is reserved for the network mode of that name"
        )


def create_network(store_path: Path, name: str, subnet: str | None = None) -> Network:
    """Make a network and its bridge device; see :meth:`Store.create_network`.

    Raises:
        ContainerConfigError: the name is invalid, reserved or taken, the
            subnet is malformed, too small or overlaps another network or a
            host route, or this process is not root.
        ContainerError: the bridge could not be made.
    """
    _check_name(name)
    with _locked(store_path) as root:
        network = _create_locked(store_path, root, name, subnet)
    logger.info("created network %s (%s)", name, network.subnet)
    return network


def _create_locked(
    store_path: Path, root: Path, name: str, subnet: str | None
) -> Network:
    """Make the network; the caller holds the store's network lock."""
    # Imported here, as in the other functions that touch devices: a
    # container on "none" or "host" reads these records but never needs
    # the bridge's netlink code.
    from layercake import _bridge as bridge

    with _machine_lock():
        if (root / name).exists():
            reason = _unreadable_reason(root / name)
            hint = f" ({reason}; network rm {name} removes it)" if reason else ""
            raise ContainerConfigError(f"network with name {name} already exists{hint}")
        taken = _taken_subnets(store_path)
        chosen = _parse_subnet(subnet) if subnet else _free_subnet(taken)
        if subnet:
            _check_overlap(chosen, taken)
        network_id = secrets.token_hex(32)
        network = Network(
            name=name,
            id=network_id,
            subnet=str(chosen),
            gateway=str(next(chosen.hosts())),
            device=bridge.bridge_name(network_id),
            created=now(),
        )
        path = root / name
        (path / "endpoints").mkdir(parents=True)
        try:
            _write_json(path / "network.json", attrs.asdict(network))
            if os.geteuid() == 0:
                bridge.create_bridge(
                    network.device, network.gateway, chosen.prefixlen, str(path)
                )
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
    return network


def _machine_lock() -> contextlib.AbstractContextManager[None]:
    # Rootless bridges are in a namespace of the user's: nothing to order.
    if os.geteuid() != 0:
        return contextlib.nullcontext()
    from layercake import _bridge as bridge

    return bridge.machine_lock()


def _parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.IPv4Network(text)
    except ValueError as error:
        raise ContainerConfigError(f"invalid subnet {text!r}: {error}") from None
    if subnet.prefixlen > 29:
        raise ContainerConfigError(
            f"subnet {text} is too small: a network needs at least a /29"
        )
    return subnet


def _taken_subnets(store_path: Path) -> list[tuple[ipaddress.IPv4Network, str]]:
    from layercake import _bridge as bridge

    taken = [
        (ipaddress.IPv4Network(n.subnet), f"network {n.name!r}")
        for n in list_networks(store_path)
    ]
    if os.geteuid() != 0:
        from layercake import _user_netns as user_netns

        outbound = ipaddress.IPv4Network(user_netns.OUTBOUND_SUBNET)
        return taken + [(outbound, "the outbound link of slirp4netns")]
    own = {n.device for n in list_networks(store_path)}
    taken += [
        (route, f"the host route on {device}")
        for route, device in bridge.host_routes()
        if device not in own
    ]
    return taken


def _check_overlap(
    subnet: ipaddress.IPv4Network, taken: list[tuple[ipaddress.IPv4Network, str]]
) -> None:
    for other, owner in taken:
        if subnet.overlaps(other):
            raise ContainerConfigError(f"subnet {subnet} overlaps {other} of {owner}")


def _free_subnet(
    taken: list[tuple[ipaddress.IPv4Network, str]],
) -> ipaddress.IPv4Network:
    for candidate in _POOL.subnets(new_prefix=_POOL_PREFIX):
        if not any(candidate.overlaps(other) for other, _ in taken):
            return candidate
    raise ContainerConfigError(
        f"no free subnet left in {_POOL}: remove unused networks or give one"
    )


def remove_network(store_path: Path, name: str, running: Callable[[str], bool]) -> None:
    """Remove a network and its bridge; see :meth:`Store.remove_network`.

    A network whose record cannot be read is removed all the same, with
    its bridge (found by the directory its alias names).

    Raises:
        ContainerError: no such network, ``running`` containers use it, or
            it is pre-defined (``bridge``, ``host``, ``none``).
    """
    if name in _PREDEFINED:
        raise ContainerError(f"{name} is a pre-defined network and cannot be removed")
    with _locked(store_path) as root:
        if name in unreadable(store_path):
            _remove_unreadable(root / name, running)
            return
        network = get_network(store_path, name)
        path = root / network.name
        users = [e.container_name for e in _endpoints(path) if running(e.container_id)]
        if users:
            raise ContainerError(
                f"network {network.name} is in use by running containers: "
                + ", ".join(sorted(users))
            )
        _delete(path, network)
    logger.info("removed network %s", network.name)


def _remove_unreadable(path: Path, running: Callable[[str], bool]) -> None:
    """Remove the directory of a network whose record cannot be read, and
    the bridge whose alias names it; the caller holds the store's lock."""
    users = [e.container_name for e in _endpoints(path) if running(e.container_id)]
    if users:
        raise ContainerError(
            f"network {path.name} is in use by running containers: "
            + ", ".join(sorted(users))
        )
    shutil.rmtree(path)
    logger.info("removed network %s, whose record could not be read", path.name)
    if os.geteuid() != 0:
        # The device is named for the id the record held: a rootless
        # bridge goes with the user's namespace (docs/compatibility.md).
        return
    from layercake import _bridge as bridge

    with bridge.machine_lock():
        bridge.remove_orphans()


def _delete(path: Path, network: Network) -> None:
    from layercake import _bridge as bridge

    shutil.rmtree(path)
    if os.geteuid() != 0:
        from layercake import _user_netns as user_netns

        user_netns.remove_bridge(path.parent.parent, network.device)
        return
    with bridge.machine_lock():
        bridge.remove_bridge(network.device)


def _endpoints(path: Path) -> list[Endpoint]:
    found = []
    directory = path / "endpoints"
    if not directory.is_dir():
        return []
    for entry in sorted(directory.glob("*.json")):
        try:
            data = json.loads(entry.read_text())
            data["aliases"] = tuple(data.get("aliases", ()))
            data["extra_hosts"] = tuple(data.get("extra_hosts", ()))
            found.append(Endpoint(**data))
        except (OSError, ValueError, TypeError):
            continue
    return found


def endpoints(store_path: Path, name: str) -> list[Endpoint]:
    """The leases on network ``name`` (none when it does not exist)."""
    return _endpoints(_root(store_path) / name)


def endpoint(store_path: Path, name: str, container_id: str) -> Endpoint | None:
    """The lease of ``container_id`` on network ``name``; None without one."""
    path = _root(store_path) / name / "endpoints" / f"{container_id}.json"
    try:
        data = json.loads(path.read_text())
        data["aliases"] = tuple(data.get("aliases", ()))
        data["extra_hosts"] = tuple(data.get("extra_hosts", ()))
        return Endpoint(**data)
    except (OSError, ValueError, TypeError):
        return None


def _living(path: Path, exists: Callable[[str], bool]) -> list[Endpoint]:
    """The endpoints of containers that ``exists``; the others' are deleted."""
    living = []
    for endpoint in _endpoints(path):
        if exists(endpoint.container_id):
            living.append(endpoint)
            continue
        (path / "endpoints" / f"{endpoint.container_id}.json").unlink(missing_ok=True)
        logger.info(
            "freed %s of removed container %s",
            endpoint.address,
            endpoint.container_id[:12],
        )
    return living


def _mirror_default(root: Path, host: HostBridge) -> Network:
    """Write the store's copy of the host's default network record."""
    from layercake import _default_bridge as default_bridge

    network = Network(
        name=DEFAULT_NETWORK,
        id=host.id,
        subnet=host.subnet,
        gateway=host.gateway,
        device=default_bridge.DEVICE,
        created=host.created,
    )
    path = root / DEFAULT_NETWORK
    (path / "endpoints").mkdir(parents=True, exist_ok=True)
    try:
        if _read(path) == network:
            return network
    except (OSError, ValueError, TypeError):
        pass
    _write_json(path / "network.json", attrs.asdict(network))
    return network


def _mac(address: str) -> str:
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def allocate(
    store_path: Path,
    name: str,
    *,
    container_id: str,
    container_name: str,
    hostname: str,
    aliases: tuple[str, ...],
    exists: Callable[[str], bool],
    owner: Path,
    extra_hosts: tuple[str, ...] = (),
) -> Endpoint:
    """Lease an address on network ``name`` to a new container.

    ``owner`` is the container's directory. On ``bridge``
    (:data:`DEFAULT_NETWORK`) the address is the host's to give (see
    :func:`layercake._default_bridge.lease`). Leases of containers that no
    longer ``exists`` are freed first.

    Raises:
        ContainerError: no such network, or the default bridge could not be
            made.
        ContainerConfigError: the subnet is full, or no subnet is free for
            the default bridge.
    """
    if os.geteuid() != 0 and name == DEFAULT_NETWORK:
        raise ContainerConfigError(f"network {name!r} is slirp4netns without root")
    from layercake import _default_bridge as default_bridge

    with _locked(store_path) as root:
        if name == DEFAULT_NETWORK:
            host, address = default_bridge.lease(owner)
            network = _mirror_default(root, host)
            path = root / network.name
            _living(path, exists)
        else:
            network = get_network(store_path, name)
            path = root / network.name
            used = {e.address for e in _living(path, exists)}
            subnet = ipaddress.IPv4Network(network.subnet)
            found = next(
                (
                    a
                    for a in subnet.hosts()
                    if str(a) != network.gateway and str(a) not in used
                ),
                None,
            )
            if found is None:
                raise ContainerConfigError(
                    f"network {network.name} has no free address left in {subnet}"
                )
            address = str(found)
        endpoint = Endpoint(
            network=network.name,
            container_id=container_id,
            container_name=container_name,
            hostname=hostname,
            address=address,
            mac=_mac(address),
            aliases=aliases,
            extra_hosts=extra_hosts,
        )
        _write_json(path / "endpoints" / f"{container_id}.json", attrs.asdict(endpoint))
    return endpoint


def relocate(
    store_path: Path, found: Endpoint, owner: Path
) -> tuple[Network, Endpoint]:
    """Lease the default bridge again for a container that lost its lease.

    After a reboot /run is empty and the bridge gone: the bridge is made
    again, and the container keeps its address when it is still free and in
    the subnet, else gets another (its endpoint is rewritten).

    Raises:
        ContainerError: the default bridge could not be made.
        ContainerConfigError: no address or subnet is free.
    """
    from layercake import _default_bridge as default_bridge

    with _locked(store_path) as root:
        host, address = default_bridge.lease(owner, found.address)
        network = _mirror_default(root, host)
        moved = attrs.evolve(found, address=address, mac=_mac(address))
        if moved != found:
            path = root / DEFAULT_NETWORK / "endpoints" / f"{found.container_id}.json"
            _write_json(path, attrs.asdict(moved))
    return network, moved


def release(store_path: Path, name: str, container_id: str, owner: Path) -> None:
    """Give back the lease of ``container_id`` (directory ``owner``) on ``name``.

    On the default network the endpoints of containers whose directory is
    gone go too, and the store's copy of the network with its last lease;
    the host's bridge stays.
    """
    with _locked(store_path) as root:
        path = root / name
        found = endpoint(store_path, name, container_id)
        (path / "endpoints" / f"{container_id}.json").unlink(missing_ok=True)
        if name != DEFAULT_NETWORK:
            return
        if found is not None:
            from layercake import _default_bridge as default_bridge

            default_bridge.release(owner, found.address)
        living = _living(path, lambda cid: (owner.parent / cid).is_dir())
        if path.is_dir() and not living:
            shutil.rmtree(path, ignore_errors=True)


def rename(store_path: Path, name: str, container_id: str, new_name: str) -> None:
    """Record a container's new name in its lease on network ``name``."""
    with _locked(store_path) as root:
        path = root / name / "endpoints" / f"{container_id}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        data["container_name"] = new_name
        _write_json(path, data)


def _resolved(member: Endpoint) -> tuple[tuple[str, str], ...]:
    from layercake import _name_resolution

    try:
        return _name_resolution.resolve(member.extra_hosts, member.network)
    except LayercakeError as error:
        # Its own start says so; the other members' files are still written.
        logger.debug("extra hosts of %s: %s", member.container_id[:12], error)
        return ()


_HOSTS_HEAD = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def _extra_lines(extra: Sequence[tuple[str, str]]) -> str:
    return "".join(f"{address}\t{name}\n" for name, address in extra)


def write_own_hosts(
    path: Path, address: str, hostname: str, extra: Sequence[tuple[str, str]] = ()
) -> None:
    """Write a default-bridge container's hosts file: its ``--add-host``
    lines and itself, as Docker's default network gives no names to other
    members."""
    with open(path, "r+" if path.exists() else "w") as file:
        # In place: a running container of an earlier start has it bound.
        file.truncate(0)
        file.write(f"{_HOSTS_HEAD}{_extra_lines(extra)}{address}\t{hostname}\n")


def write_hosts(
    store_path: Path,
    name: str,
    hosts_file: Callable[[str], Path],
    running: Callable[[str], bool],
    starting: str | None = None,
) -> None:
    """Rewrite, in place, the hosts file of every running member of ``name``.

    Each lists the member's ``--add-host`` entries, the member itself
    (address, hostname, name, aliases) and then every other running member
    by name and aliases. ``starting`` counts as
    running. ``hosts_file(container_id)`` is where a member's file is.
    """
    with _locked(store_path) as root:
        members = [
            e
            for e in _endpoints(root / name)
            if e.container_id == starting or running(e.container_id)
        ]
        for member in members:
            lines = [_HOSTS_HEAD, _extra_lines(_resolved(member))]
            for other in [member] + [m for m in members if m is not member]:
                names = [other.container_name, *other.aliases]
                if other is member:
                    names.insert(0, other.hostname)
                unique = list(dict.fromkeys(names))
                lines.append(f"{other.address}\t{' '.join(unique)}\n")
            path = hosts_file(member.container_id)
            try:
                # In place: the running container has this inode bound.
                with open(path, "r+" if path.exists() else "w") as file:
                    file.truncate(0)
                    file.write("".join(lines))
            except OSError as error:
                logger.debug("cannot write hosts of %s: %s", member.container_id, error)
