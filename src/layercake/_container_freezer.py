"""Pausing a container: freezing its cgroup, as ``docker pause`` does.

Only a container with a cgroup that has a freezer can be paused: one
started detached or with a limit, on cgroup v2 or with the v1 freezer
mounted. The state records the pause so every process sees it. Loaded only
to pause, unpause, commit a running container, or kill a paused one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from layercake._container_state import (
    ContainerState,
    is_alive,
    read_state,
    write_state,
)
from layercake.errors import ContainerError
from layercake.runtime import Cgroup, open_cgroup

if TYPE_CHECKING:
    from layercake._container import Container

__all__ = ["pause", "pause_for_commit", "set_paused", "thaw", "unpause"]


def pause(container: Container) -> None:
    """Freeze every process of ``container`` (see
    :meth:`layercake.Container.pause`).

    Raises:
        ContainerError: it is not running, is already paused, has no usable
            cgroup freezer, or the kernel did not freeze it.
    """
    state, cgroup = _freezer(container)
    if state.paused:
        raise ContainerError(
            f"container {container.short_id} is already paused",
            container_id=container.id,
        )
    set_paused(container, cgroup, True)


def unpause(container: Container) -> None:
    """Thaw a paused ``container`` (see :meth:`layercake.Container.unpause`).

    Raises:
        ContainerError: it is not running or not paused, or the kernel did
            not thaw it.
    """
    state, cgroup = _freezer(container)
    if not state.paused:
        raise ContainerError(
            f"container {container.short_id} is not paused",
            container_id=container.id,
        )
    set_paused(container, cgroup, False)


def _freezer(container: Container) -> tuple[ContainerState, Cgroup]:
    state = container.state()
    if state.status != "running" or not is_alive(state.pid, state.pid_start):
        raise ContainerError(
            f"container {container.short_id} is not running",
            container_id=container.id,
        )
    cgroup = _freezable_cgroup(state)
    if cgroup is None:
        raise ContainerError(
            f"container {container.short_id} cannot be paused: it has no cgroup "
            "with a freezer (start it detached or give it a limit, on a "
            "machine with cgroup v2 or the v1 freezer mounted)",
            container_id=container.id,
        )
    return state, cgroup


def _freezable_cgroup(state: ContainerState) -> Cgroup | None:
    """The cgroup recorded in ``state``; ``None`` if it has no freezer."""
    cgroup = open_cgroup(state.cgroup_version, state.cgroup_paths)
    return cgroup if state.cgroup_paths and cgroup.can_freeze() else None


def set_paused(container: Container, cgroup: Cgroup, paused: bool) -> None:
    """Freeze or thaw ``cgroup`` of ``container`` and record it in its state.

    Raises:
        ContainerError: the kernel did not do it.
    """
    try:
        cgroup.freeze(paused)
    except OSError as error:
        action = "pause" if paused else "unpause"
        raise ContainerError(
            f"cannot {action} container {container.short_id}: "
            f"{(error.strerror or str(error)).lower()}",
            container_id=container.id,
        ) from None
    # The monitor replaces the whole state on exit; a container that
    # ended meanwhile stays recorded as exited.
    state = read_state(container.path)
    if state.status == "running":
        write_state(container.path, attrs.evolve(state, paused=paused))


def pause_for_commit(container: Container, pause: bool) -> Cgroup | None:
    """Freeze a running container for a commit; its cgroup, to thaw.

    ``None``: nothing to thaw (not running, already paused, or
    ``pause`` is false).
    """
    state = container.state()
    if (
        not pause
        or state.paused
        or state.status != "running"
        or not is_alive(state.pid, state.pid_start)
    ):
        return None
    cgroup = _freezable_cgroup(state)
    if cgroup is None:
        raise ContainerError(
            f"cannot commit running container {container.short_id}: it cannot "
            "be paused (it has no cgroup with a freezer); stop it first, or "
            "commit it unpaused with pause=False (CLI: --pause=false)",
            container_id=container.id,
        )
    set_paused(container, cgroup, True)
    return cgroup


def thaw(container: Container, state: ContainerState) -> None:
    """Thaw ``container``, frozen in ``state``.

    Raises:
        ContainerError: the kernel did not thaw it.
    """
    cgroup = open_cgroup(state.cgroup_version, state.cgroup_paths)
    set_paused(container, cgroup, False)
