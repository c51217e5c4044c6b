"""``--add-host``, ``--dns``, ``--dns-search`` and ``--dns-option``, checked.

What a container's /etc/hosts and /etc/resolv.conf get from ``docker run``'s
name-resolution flags: entries are checked when the container is created
(with docker's messages) and kept as given; ``host-gateway`` in an
``--add-host`` entry becomes, at each start, the host's address as seen
from containers: the default bridge's gateway as root, slirp4netns's
gateway rootless.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence

from layercake.errors import ContainerConfigError

__all__ = [
    "HOST_GATEWAY",
    "check",
    "extra_hosts",
    "host_gateway",
    "resolve",
]

HOST_GATEWAY = "host-gateway"
"""The address ``--add-host NAME:host-gateway`` stands for."""


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def extra_hosts(entries: Mapping[str, str] | Sequence[str] | None) -> tuple[str, ...]:
    """``--add-host`` entries as ``NAME:ADDRESS`` strings, checked.

    ``entries`` maps names to addresses, or lists ``NAME:ADDRESS`` (or
    docker 25's ``NAME=ADDRESS``); an address is IPv4, IPv6 or
    ``host-gateway``.

    Raises:
        ContainerConfigError: an entry without a name or an address, or an
            address that is not one (docker's messages).
    """
    if entries is None:
        return ()
    if isinstance(entries, Mapping):
        pairs = [(str(name), str(address)) for name, address in entries.items()]
    else:
        pairs = []
        for entry in entries:
            separator = "=" if "=" in entry else ":"
            name, found, address = entry.partition(separator)
            if not found or not name or not address:
                raise ContainerConfigError(f'bad format for add-host: "{entry}"')
            pairs.append((name, address))
    checked = []
    for name, address in pairs:
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        if address != HOST_GATEWAY and not _is_address(address):
            raise ContainerConfigError(f'invalid IP address in add-host: "{address}"')
        checked.append(f"{name}:{address}")
    return tuple(checked)


def check(
    network: str,
    hosts: Sequence[str],
    dns: Sequence[str],
    dns_search: Sequence[str],
    dns_options: Sequence[str],
) -> None:
    """Refuse what docker refuses of the DNS flags.

    Raises:
        ContainerConfigError: a ``dns`` server is not an IP address, or
            names or DNS settings are asked of a container that joins
            another's network (its files are that container's concern).
    """
    for server in dns:
        if not _is_address(server):
            raise ContainerConfigError(f"{server} is not an ip address")
    if network.startswith("container:"):
        if dns or dns_search or dns_options:
            raise ContainerConfigError("conflicting options: dns and the network mode")
        if hosts:
            raise ContainerConfigError(
                "conflicting options: custom host-to-IP mapping and the network mode"
            )


def host_gateway(network: str) -> str:
    """The host's address as a container on ``network`` reaches it.

    Raises:
        ContainerConfigError: rootless off slirp4netns, where the host has
            no address a container can reach.
        ContainerError: the default bridge could not be made.
    """
    if os.geteuid() == 0:
        from layercake import _default_bridge

        return _default_bridge.gateway()
    from layercake import _slirp

    if network == "bridge" and not _slirp.unusable():
        return _slirp.GATEWAY
    raise ContainerConfigError(
        f"add-host {HOST_GATEWAY} needs root, or network 'bridge' through "
        "slirp4netns without it"
    )


def resolve(hosts: Sequence[str], network: str) -> tuple[tuple[str, str], ...]:
    """``(name, address)`` of checked entries, ``host-gateway`` made an address.

    Raises:
        ContainerConfigError: see :func:`host_gateway`.
        ContainerError: see :func:`host_gateway`.
    """
    pairs = []
    gateway = ""
    for entry in hosts:
        name, _, address = entry.partition(":")
        if address == HOST_GATEWAY:
            gateway = gateway or host_gateway(network)
            address = gateway
        pairs.append((name, address))
    return tuple(pairs)
