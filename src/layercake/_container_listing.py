"""Listing and pruning the containers of a store, as ``docker ps`` and
``docker container prune`` do.

Each container is read from its directory (see
:mod:`layercake._container_state`); one that cannot be read is skipped when
listing and removed when pruning.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from layercake import _container_network as net
from layercake import runtime
from layercake._container import Container
from layercake._container_lock import names_locked
from layercake._container_state import is_alive, read_record
from layercake.errors import ContainerError

if TYPE_CHECKING:
    from layercake._store import Store

__all__ = ["all_containers", "free_name", "list_containers", "prune_containers"]

logger = logging.getLogger(__name__)

_ID = re.compile(r"[0-9a-f]{64}")


def all_containers(store: Store) -> list[Container]:
    """Every readable container of ``store``, in the order of their ids."""
    containers = store._directory.containers_dir
    found = []
    try:
        entries = sorted(containers.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        try:
            record = read_record(path)
        except (OSError, ValueError):
            continue
        try:
            found.append(Container._from_record(store, path, record))
        except Exception as error:  # noqa: BLE001 - one bad entry hides no other
            logger.warning("skipping container %s: %s", path.name, error)
    return found


def list_containers(store: Store, *, all: bool = False) -> list[Container]:
    """The containers of ``store``, newest first, as ``docker ps [-a]`` lists them.

    Without ``all`` only running ones. A container whose monitor died with
    its host is recognised as exited here (see :meth:`Container.state`).
    """
    containers = [
        c
        for c in all_containers(store)
        if not _reaped(c) and (all or _status(c) == "running")
    ]
    return sorted(containers, key=lambda c: c.record.created, reverse=True)


def free_name(store: Store, holder: str) -> bool:
    """Remove ``holder``, the container holding a name, if it is an
    auto-remove container whose starter died, as docker's daemon would have;
    whether it went (so a new container can take the name)."""
    try:
        container = Container.load(store, holder)
    except ContainerError:
        return False  # the name stays taken unless the holder surely went
    return _reaped(container)


def _reaped(container: Container) -> bool:
    """Remove an auto-remove container whose starter died; whether it went.

    Its starter (the attached run's process, or its monitor) would have
    removed it at its exit; killed, it left the container exited with its
    address lease, mounts and cgroup, which docker's daemon would remove.
    """
    if not container.record.auto_remove:
        return False
    try:
        state = container.state()
    except ContainerError:
        return True  # another process removed it just now
    if state.status != "exited" or state.monitor_pid <= 0:
        return False
    if is_alive(state.monitor_pid, state.monitor_start):
        return False  # its starter is removing it right now
    logger.info(
        "removing auto-remove container %s: %s", container.short_id, state.error
    )
    try:
        container.remove(force=True)
    except ContainerError:
        pass  # removed by another process meanwhile
    return True


def _status(container: Container) -> str:
    """The container's status, or ``removed`` when another process just removed it."""
    try:
        return container.state().status
    except ContainerError:
        return "removed"


def prune_containers(store: Store) -> list[str]:
    """Remove every container of ``store`` that is not running; return their ids."""
    removed = []
    for container in all_containers(store):
        if _reaped(container):
            removed.append(container.id)
        elif _status(container) not in ("running", "removed"):
            container.remove()
            removed.append(container.id)
    net.tidy(store.path)
    return removed + _prune_unreadable(store)


def _prune_unreadable(store: Store) -> list[str]:
    """Remove container directories whose config.json cannot be read.

    No listing can show them, so nothing else would ever remove them. A
    directory only lacks a readable config.json outside the names lock if
    it is broken: creation writes it under that lock.
    """
    containers = store._directory.containers_dir
    removed: list[str] = []
    if not containers.is_dir():
        return removed
    with names_locked(containers):
        for path in sorted(containers.iterdir()):
            if not _ID.fullmatch(path.name) or not path.is_dir():
                continue
            try:
                read_record(path)
                continue
            except (OSError, ValueError) as error:
                reason = getattr(error, "strerror", None) or str(error)
            if _has_mounts(path):
                logger.warning(
                    "keeping %s: cannot read its config.json (%s) "
                    "and something is mounted in it",
                    path,
                    reason,
                )
                continue
            logger.warning(
                "removing container directory %s: cannot read its config.json: %s",
                path,
                reason,
            )
            cgroup = runtime.find_cgroup(path.name)
            if cgroup is not None:
                cgroup.kill_all()
                cgroup.remove()
            store._directory.remove_tree(path)
            removed.append(path.name)
    return removed


def _has_mounts(path: Path) -> bool:
    """Whether anything is mounted at or below ``path`` in this mount namespace."""
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point == str(path) or point.startswith(prefix):
                return True
    return False
