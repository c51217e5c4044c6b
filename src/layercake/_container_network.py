"""How a container joins a bridge network: lease, start-up hook, inspect view.

A container whose ``network`` is ``"bridge"`` (the host's default bridge,
:mod:`layercake._default_bridge`) or the name of a network of its store
leases an address when it is created (see :mod:`layercake._networks`). At
each start its hosts file is written (on a user-defined network, with
those of the network's running members), the bridge is made again if the
host lost it (a reboot), and the runtime is given a hook that plugs the
new network namespace into the bridge (:func:`layercake._bridge.attach`)
while PID 1 builds its root file system. Rootless, ``"bridge"`` is
slirp4netns instead (:mod:`layercake._slirp`), or loopback only where
slirp4netns cannot run, and user-defined networks have their bridges in
the user-owned network namespace (:mod:`layercake._user_netns`), whose
user namespace the container joins.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import select
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from layercake import _name_resolution as name_resolution
from layercake import _networks as networks
from layercake._container_state import (
    ContainerRecord,
    ContainerState,
    is_alive,
    read_state,
)
from layercake.errors import ContainerConfigError, ContainerError

__all__ = [
    "HOSTS_FILE",
    "StartNetwork",
    "after_failed_start",
    "after_run",
    "check",
    "forget",
    "lease",
    "on_bridge",
    "prepare_start",
    "rename",
    "settings",
    "tidy",
]

logger = logging.getLogger(__name__)

HOSTS_FILE = "hosts"


def on_bridge(network: str) -> bool:
    """Whether ``network`` names a bridge network (default or user-defined)."""
    return network not in ("none", "host") and not network.startswith("container:")


def _leased(network: str) -> bool:
    """Whether a container on ``network`` has a lease: a bridge network, but
    not the rootless ``bridge`` (slirp4netns)."""
    if os.geteuid() != 0 and network == networks.DEFAULT_NETWORK:
        return False
    return on_bridge(network)


def check(
    network: str,
    aliases: Sequence[str],
    *,
    publishes: bool = False,
    hostname: str | None = None,
) -> None:
    """Refuse what a network mode cannot do.

    Raises:
        ContainerConfigError: aliases outside a user-defined network, or
            published ports or a hostname with a ``container:`` network
            (docker's "conflicting options" messages).
    """
    if network.startswith("container:"):
        if publishes:
            raise ContainerConfigError(
                "conflicting options: port publishing and the container type "
                "network mode"
            )
        if hostname:
            raise ContainerConfigError(
                "conflicting options: hostname and the network mode"
            )
    if aliases and (not on_bridge(network) or network == networks.DEFAULT_NETWORK):
        raise ContainerConfigError(
            f"network aliases need a user-defined network, not {network!r}"
        )


def _running(containers: Path) -> Callable[[str], bool]:
    def running(container_id: str) -> bool:
        try:
            state = read_state(containers / container_id)
        except (OSError, ValueError):
            return False
        return state.status == "running" and is_alive(
            state.monitor_pid, state.monitor_start
        )

    return running


def lease(
    store_path: Path,
    containers: Path,
    record: ContainerRecord,
) -> None:
    """Lease an address on the container's network, when it is a bridge one.

    Raises:
        ContainerConfigError: no such network, or no free address.
    """
    if not on_bridge(record.network):
        return
    if not _leased(record.network):
        from layercake import _slirp

        reason = _slirp.unusable()
        if reason:
            logger.warning(
                "container %s has loopback only: %s", record.id[:12], reason
            )
        return
    try:
        networks.allocate(
            store_path,
            record.network,
            container_id=record.id,
            container_name=record.name,
            hostname=record.hostname,
            aliases=record.network_aliases,
            extra_hosts=record.extra_hosts,
            exists=lambda cid: (containers / cid).is_dir(),
            owner=containers / record.id,
        )
    except ContainerError as error:
        raise ContainerConfigError(str(error)) from None


def _endpoint(store_path: Path, record: ContainerRecord) -> networks.Endpoint:
    found = networks.endpoint(store_path, record.network, record.id)
    if found is not None:
        return found
    raise ContainerError(
        f"container {record.id[:12]} has no address on network {record.network}: "
        "the network was removed",
        container_id=record.id,
    )


def start_warnings(store_path: Path, record: ContainerRecord) -> tuple[str, ...]:
    """What a rootless container's network lacks at this start, as warnings.

    Without slirp4netns, the rootless ``bridge`` has loopback only and a
    user-defined network no outbound access; the text says why and what
    the container gets instead.
    """
    if os.geteuid() == 0 or not on_bridge(record.network):
        return ()
    from layercake import _slirp, _user_netns

    if not _leased(record.network):
        reason = _slirp.cause()
        if not reason:
            return ()
        return (
            f"no network for the container ({reason}): it has loopback only, "
            "without outbound access, as with --network none",
        )
    netns = _user_netns.find(store_path)
    if netns is not None and not netns.outbound:
        return ()
    reason = _slirp.cause() or (netns.outbound if netns is not None else "")
    if not reason:
        return ()
    return (
        f"network {record.network} has no outbound access ({reason}): the "
        "container reaches only its network's members and its published ports",
    )


@attrs.frozen
class StartNetwork:
    """What the runtime needs to start a container on its network: the hosts
    file to bind (none: the runtime writes one), resolv.conf's overrides,
    the extra hosts lines, and the hook that plugs the namespace in."""

    hosts_file: str = ""
    dns: tuple[str, ...] = ()
    hook: Callable[[int], None] | None = None
    user_namespace: str = ""
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()


def prepare_start(
    store_path: Path, containers: Path, record: ContainerRecord
) -> StartNetwork:
    """Get a container's network and name resolution ready to start.

    Returns the hosts file to bind on /etc/hosts (bridge networks), the
    DNS servers, search domains and options for /etc/resolv.conf (the
    host's when empty), the extra hosts lines and the hook that configures
    the new network namespace.

    Raises:
        ContainerError: the network was removed or its bridge could not be
            made again; rootless, slirp4netns is missing.
        ContainerConfigError: ``host-gateway`` has no address here.
    """
    extra = name_resolution.resolve(record.extra_hosts, record.network)
    plumbing = _plumbing(store_path, containers, record, extra)
    return attrs.evolve(
        plumbing,
        dns=record.dns or plumbing.dns,
        dns_search=record.dns_search,
        dns_options=record.dns_options,
        extra_hosts=extra,
    )


def _plumbing(
    store_path: Path,
    containers: Path,
    record: ContainerRecord,
    extra: tuple[tuple[str, str], ...],
) -> StartNetwork:
    if not on_bridge(record.network):
        return StartNetwork()
    if not _leased(record.network):
        from layercake import _slirp

        if _slirp.unusable():
            # Said once, when the container was created.
            return StartNetwork()
        return StartNetwork(dns=(_slirp.DNS,), hook=_slirp.hook())
    # Imported here: the bridge's netlink code is for bridge networks only.
    from layercake import _bridge as bridge

    endpoint = _endpoint(store_path, record)
    if record.network == networks.DEFAULT_NETWORK:
        return _default_start(store_path, containers, record, endpoint, extra)
    network = networks.get_network(store_path, record.network)
    subnet = ipaddress.IPv4Network(network.subnet)
    if os.geteuid() != 0:
        return _prepare_rootless(store_path, containers, record, endpoint, network)
    if not bridge.exists(network.device):
        with bridge.machine_lock():
            bridge.create_bridge(
                network.device,
                network.gateway,
                subnet.prefixlen,
                str(store_path / "networks" / network.name),
            )
    _rewrite_hosts(store_path, containers, network.name, starting=record.id)
    hook = _plug(bridge.attach, network, record.id, endpoint)
    return StartNetwork(hosts_file=str(containers / record.id / HOSTS_FILE), hook=hook)


def _plug(
    attach: Callable[..., None],
    network: networks.Network,
    container_id: str,
    endpoint: networks.Endpoint,
) -> Callable[[int], None]:
    """The hook that gives PID 1's namespace its ``eth0`` on ``network``."""
    from layercake import _bridge as bridge

    return functools.partial(
        attach,
        bridge=network.device,
        veth=bridge.veth_name(container_id),
        address=endpoint.address,
        prefixlen=ipaddress.IPv4Network(network.subnet).prefixlen,
        gateway=network.gateway,
        mac=endpoint.mac,
    )


def _rewrite_hosts(
    store_path: Path, containers: Path, name: str, *, starting: str | None = None
) -> None:
    """Write the /etc/hosts of every member of network ``name`` again."""
    networks.write_hosts(
        store_path,
        name,
        lambda cid: containers / cid / HOSTS_FILE,
        _running(containers),
        starting=starting,
    )


def _default_start(
    store_path: Path,
    containers: Path,
    record: ContainerRecord,
    endpoint: networks.Endpoint,
    extra: tuple[tuple[str, str], ...],
) -> StartNetwork:
    """Start on the host's default bridge: no lock unless the lease was lost."""
    from layercake import _bridge as bridge
    from layercake import _default_bridge as default_bridge

    owner = containers / record.id
    view = networks.named(store_path, networks.DEFAULT_NETWORK)
    if view is None or not default_bridge.has_lease(owner, endpoint.address):
        view, endpoint = networks.relocate(store_path, endpoint, owner)
    hosts = owner / HOSTS_FILE
    networks.write_own_hosts(hosts, endpoint.address, record.hostname, extra)
    return StartNetwork(
        hosts_file=str(hosts), hook=_plug(bridge.attach, view, record.id, endpoint)
    )


def _prepare_rootless(
    store_path: Path,
    containers: Path,
    record: ContainerRecord,
    endpoint: networks.Endpoint,
    network: networks.Network,
) -> StartNetwork:
    """Start the user-owned namespace if needed, with the network's bridge."""
    from layercake import _slirp, _user_netns

    subnet = ipaddress.IPv4Network(network.subnet)
    netns = _user_netns.begin_start(store_path, record.id)
    try:
        _user_netns.sync_bridges(
            netns, [(network.device, network.gateway, subnet.prefixlen)]
        )
    except BaseException:
        _user_netns.finish_start(store_path, record.id)
        raise
    _rewrite_hosts(store_path, containers, network.name, starting=record.id)
    attach = _plug(
        functools.partial(_user_netns.attach, netns), network, record.id, endpoint
    )

    def hook(pid: int) -> None:
        try:
            attach(pid)
        finally:
            _user_netns.finish_start(store_path, record.id)
        if record.restart.name == "no":
            _stop_when_idle(store_path, pid)

    return StartNetwork(
        hosts_file=str(containers / record.id / HOSTS_FILE),
        dns=() if netns.outbound else (_slirp.DNS,),
        hook=hook,
        user_namespace=netns.user_namespace,
    )


def _stop_when_idle(store_path: Path, pid: int) -> None:
    """Once PID 1 ``pid`` ends, stop the user-owned namespace if now unused.

    A container that may restart is left to the next ps, prune or start.
    """
    from layercake import _user_netns

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return

    def wait() -> None:
        try:
            select.select([pidfd], [], [])
        finally:
            os.close(pidfd)
        try:
            _user_netns.stop_if_idle(store_path)
        except OSError as error:
            logger.debug("cannot stop the user-owned network namespace: %s", error)

    threading.Thread(target=wait, daemon=True).start()


def tidy(store_path: Path) -> None:
    """Stop the store's user-owned namespace if no container uses it (rootless)."""
    if os.geteuid() == 0:
        return
    from layercake import _user_netns

    _user_netns.stop_if_idle(store_path)


def after_run(store_path: Path, record: ContainerRecord) -> None:
    """Once an attached run has ended, stop the user-owned namespace if it
    was its last user (rootless; the monitor of a detached run does the same
    through the start hook)."""
    if _leased(record.network) and record.restart.name == "no":
        tidy(store_path)


def after_failed_start(store_path: Path, record: ContainerRecord) -> None:
    """Once a start failed after its network was set up, undo what is left.

    As root, the veth pair is deleted without waiting for the kernel to
    free the container's network namespace (it frees them in the
    background); rootless, the user-owned namespace stops if now unused.
    """
    if not _leased(record.network):
        return
    if os.geteuid() == 0:
        from layercake import _bridge as bridge

        bridge.detach(record.id)
    else:
        after_run(store_path, record)


def forget(store_path: Path, containers: Path, record: ContainerRecord) -> None:
    """Give back a removed container's lease; drop it from members' hosts."""
    if not _leased(record.network):
        return
    if os.geteuid() == 0:
        from layercake import _bridge as bridge

        bridge.detach(record.id)
    else:
        tidy(store_path)
    networks.release(store_path, record.network, record.id, containers / record.id)
    if record.network == networks.DEFAULT_NETWORK:
        return
    _rewrite_hosts(store_path, containers, record.network)


def rename(
    store_path: Path, containers: Path, record: ContainerRecord, new_name: str
) -> None:
    """Record a container's new name in its lease and members' hosts files."""
    if not _leased(record.network):
        return
    networks.rename(store_path, record.network, record.id, new_name)
    if record.network == networks.DEFAULT_NETWORK:
        return
    _rewrite_hosts(store_path, containers, record.network)


def settings(
    store_path: Path, record: ContainerRecord, state: ContainerState
) -> dict[str, Any]:
    """``docker inspect``'s ``NetworkSettings`` of a container."""
    running = state.status == "running"
    ports: dict[str, Any] = {}
    for inner, protocol, address, host in state.ports if running else ():
        ports.setdefault(f"{inner}/{protocol}", []).append(
            {"HostIp": address, "HostPort": str(host)}
        )
    view: dict[str, Any] = {
        "Ports": ports,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "Gateway": "",
        "MacAddress": "",
        "Networks": {},
    }
    name = record.network
    if not _leased(name):
        if not name.startswith("container:"):
            view["Networks"][name] = _entry("", "", "", 0, "", ())
        return view
    endpoint = next(
        (
            e
            for e in networks.endpoints(store_path, name)
            if e.container_id == record.id
        ),
        None,
    )
    try:
        network = networks.get_network(store_path, name)
    except ContainerError:
        return view
    prefixlen = ipaddress.IPv4Network(network.subnet).prefixlen
    if endpoint is None or not running:
        view["Networks"][name] = _entry(
            network.id, "", "", 0, "", record.network_aliases
        )
        return view
    view["Networks"][name] = _entry(
        network.id,
        endpoint.address,
        network.gateway,
        prefixlen,
        endpoint.mac,
        endpoint.aliases,
    )
    if name == networks.DEFAULT_NETWORK:
        # Docker fills the top-level fields for the default network only.
        view.update(
            IPAddress=endpoint.address,
            IPPrefixLen=prefixlen,
            Gateway=network.gateway,
            MacAddress=endpoint.mac,
        )
    return view


def _entry(
    network_id: str,
    address: str,
    gateway: str,
    prefixlen: int,
    mac: str,
    aliases: Sequence[str],
) -> dict[str, Any]:
    return {
        "Aliases": list(aliases) or None,
        "NetworkID": network_id,
        "Gateway": gateway,
        "IPAddress": address,
        "IPPrefixLen": prefixlen,
        "MacAddress": mac,
    }
