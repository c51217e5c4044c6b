"""Docker's default network: one bridge for every store of the host.

Like docker0, the default ``bridge`` network belongs to the host, not to a
store: one device, :data:`DEVICE`, whose subnet is chosen once (the first
/20 of 10.209.0.0/16 that no host route uses) and recorded in
``/run/layercake/bridge/network.json`` with the network's id. Addresses are
leased host-wide: ``/run/layercake/bridge/leases/<address>`` is a symlink
to the directory of the container holding it, so every store and process
sees every lease, and a lease whose container directory is gone (removed
with its store, or by a process that crashed half-way) is taken back by
the next lease or release. Both live under /run, as the device does not outlive a
reboot either. Every change holds :func:`layercake._bridge.machine_lock`.

The device and its masquerade rule stay after the last container, as
docker0 does; a container's lease goes with it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
from pathlib import Path

import attrs

from layercake import _bridge as bridge
from layercake._container_state import now
from layercake.errors import ContainerConfigError

__all__ = ["DEVICE", "HostBridge", "gateway", "has_lease", "lease", "release"]

logger = logging.getLogger(__name__)

DEVICE = bridge.DEFAULT_DEVICE
_STATE = Path("/run/layercake/bridge")
_POOL = ipaddress.IPv4Network("10.209.0.0/16")
_PREFIX = 20


@attrs.frozen
class HostBridge:
    """The host's default bridge network: its id, subnet, gateway and birth."""

    id: str
    subnet: str
    gateway: str
    created: str


def _leases() -> Path:
    return _STATE / "leases"


def _read_record() -> HostBridge | None:
    try:
        data = json.loads((_STATE / "network.json").read_text())
        return HostBridge(**data)
    except (OSError, ValueError, TypeError):
        return None


def _write_record(record: HostBridge) -> None:
    _STATE.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = _STATE / "network.json.partial"
    partial.write_text(json.dumps(attrs.asdict(record), indent=1, sort_keys=True))
    partial.replace(_STATE / "network.json")


def _free_subnet(
    preferred: ipaddress.IPv4Network | None,
) -> ipaddress.IPv4Network:
    taken = [route for route, device in bridge.host_routes() if device != DEVICE]
    candidates = list(_POOL.subnets(new_prefix=_PREFIX))
    if preferred is not None:
        candidates.insert(0, preferred)
    for candidate in candidates:
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise ContainerConfigError(
        f"no free subnet left in {_POOL} for the default bridge {DEVICE}: "
        "every /20 of it overlaps a host route"
    )


def _ensure() -> HostBridge:
    """The default bridge, made (device, masquerade, record) when missing.

    The caller holds the machine lock.

    Raises:
        ContainerConfigError: no free subnet.
        ContainerError: the device could not be made.
    """
    record = _read_record()
    present = bridge.exists(DEVICE)
    if record is not None and present:
        return record
    if present:
        # The record went (someone cleared /run) but the device did not:
        # the device's address is the truth, since containers use it.
        found = bridge.address_of(DEVICE)
        if found is not None:
            gateway, prefixlen = found
            subnet = ipaddress.IPv4Network(f"{gateway}/{prefixlen}", strict=False)
            record = HostBridge(
                id=secrets.token_hex(32),
                subnet=str(subnet),
                gateway=gateway,
                created=now(),
            )
            _write_record(record)
            return record
    preferred = ipaddress.IPv4Network(record.subnet) if record is not None else None
    subnet = _free_subnet(preferred)
    gateway = str(next(subnet.hosts()))
    if present:
        bridge.remove_bridge(DEVICE)
    bridge.create_bridge(DEVICE, gateway, subnet.prefixlen, "")
    if record is None or record.subnet != str(subnet):
        record = HostBridge(
            id=record.id if record is not None else secrets.token_hex(32),
            subnet=str(subnet),
            gateway=gateway,
            created=record.created if record is not None else now(),
        )
    _write_record(record)
    return record


def gateway() -> str:
    """The default bridge's address (``--add-host NAME:host-gateway``), made
    when the host has no default bridge.

    Raises:
        ContainerConfigError: no subnet is free.
        ContainerError: the bridge could not be made.
    """
    record = _read_record()
    if record is not None and bridge.exists(DEVICE):
        return record.gateway
    with bridge.machine_lock():
        return _ensure().gateway


def _within(address: str, subnet: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.IPv4Address(address) in subnet
    except ValueError:
        return False


def has_lease(owner: Path, address: str) -> bool:
    """Whether ``address`` is leased to the container directory ``owner`` and
    the default bridge exists: what a start checks without the lock."""
    try:
        return os.readlink(_leases() / address) == str(owner) and bridge.exists(
            DEVICE
        )
    except OSError:
        return False


def lease(owner: Path, wanted: str = "") -> tuple[HostBridge, str]:
    """Lease an address of the default bridge to the container directory
    ``owner``, making the bridge when the host has none.

    The address ``owner`` already holds is kept; else ``wanted`` when it is
    free and in the subnet (a restart after a reboot); else the lowest free
    one. Leases whose container directory is gone are taken back first.

    Raises:
        ContainerConfigError: the subnet is full, or no subnet is free.
        ContainerError: the bridge could not be made.
    """
    with bridge.machine_lock():
        record = _ensure()
        directory = _leases()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        subnet = ipaddress.IPv4Network(record.subnet)
        used, held = _reclaim(owner)
        if held and _within(held, subnet):
            return record, held
        used.add(record.gateway)
        if wanted and wanted not in used and _within(wanted, subnet):
            address = wanted
        else:
            found = next((a for a in subnet.hosts() if str(a) not in used), None)
            if found is None:
                raise ContainerConfigError(
                    f"the default bridge network has no free address left in {subnet}"
                )
            address = str(found)
        os.symlink(owner, directory / address)
    return record, address


def release(owner: Path, address: str) -> None:
    """Give back ``address`` if the container directory ``owner`` holds it,
    and every lease whose container directory is gone."""
    path = _leases() / address
    with bridge.machine_lock():
        try:
            if os.readlink(path) == str(owner):
                path.unlink()
        except OSError:
            pass
        _reclaim(None)


def _reclaim(owner: Path | None) -> tuple[set[str], str]:
    """Unlink the leases whose container directory is gone.

    Returns the addresses still leased, and the one ``owner`` holds (empty
    without one). The caller holds the machine lock.
    """
    used: set[str] = set()
    held = ""
    directory = _leases()
    if not directory.is_dir():
        return used, held
    for entry in os.scandir(directory):
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        if owner is not None and target == str(owner):
            held = entry.name
        if os.path.isdir(target):
            used.add(entry.name)
            continue
        os.unlink(entry.path)
        logger.info("freed %s of the removed container %s", entry.name, target)
    return used, held
