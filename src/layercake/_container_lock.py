"""Locks held across processes: one container's lifecycle, and all names.

Starting, stopping, restarting, killing and removing a container read its
state and then act on it; two processes doing so at once would both see a
stopped container and both start it. Each of those operations holds an
exclusive ``flock`` on ``lock`` in the container's directory, so they run one
after another, as Docker's daemon runs them. The lock is re-entrant within a
thread (``restart`` stops and starts under one hold) and is dropped when the
directory goes: a waiter then finds the container removed.

Names are unique in a store: creating and renaming a container claim a name
under a second lock, on the containers directory itself, so two processes
never both see a name free and both take it.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from layercake._container_state import read_record
from layercake.errors import ContainerConfigError

__all__ = ["LOCK_FILE", "claim_name", "lifecycle_locked", "names_locked"]

LOCK_FILE = "lock"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


@attrs.define
class _Hold:
    """This process's hold on one container's lock."""

    thread_lock: threading.RLock = attrs.field(factory=threading.RLock)
    fd: int = -1
    depth: int = 0
    users: int = 0


_holds: dict[str, _Hold] = {}
_guard = threading.Lock()


@contextmanager
def lifecycle_locked(directory: Path) -> Iterator[None]:
    """Hold the lifecycle lock of the container in ``directory``.

    Blocks while another process or thread holds it.

    Raises:
        FileNotFoundError: the directory does not exist (any more).
    """
    key = str(directory)
    with _guard:
        hold = _holds.setdefault(key, _Hold())
        hold.users += 1
    try:
        with hold.thread_lock:
            if hold.depth == 0:
                hold.fd = _acquire(directory)
            hold.depth += 1
            try:
                yield
            finally:
                hold.depth -= 1
                if hold.depth == 0:
                    os.close(hold.fd)
                    hold.fd = -1
    finally:
        with _guard:
            hold.users -= 1
            if hold.users == 0:
                del _holds[key]


def _acquire(directory: Path) -> int:
    # Close-on-exec: a container or tool started under the lock must not
    # keep it once this process lets go.
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not directory.is_dir():
            # Removed while this process waited.
            raise FileNotFoundError(2, "container removed", str(directory))
    except BaseException:
        os.close(fd)
        raise
    return fd


class names_locked:
    """Hold an exclusive lock on the containers directory (names are unique)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


def claim_name(
    containers: Path,
    name: str | None,
    container_id: str,
    gives_up: Callable[[str], bool] = lambda holder: False,
) -> str:
    """The name a container gets: ``name`` without its leading ``/``, or the
    short id when ``name`` is ``None``. Call it under :class:`names_locked`.
    A container holding the name keeps it unless ``gives_up(its_id)`` says
    it went (a killed ``--rm`` container, removed then).

    Raises:
        ContainerConfigError: the name is invalid or another container of
            ``containers`` has it.
    """
    if name is None:
        return container_id[:12]
    name = name.removeprefix("/")
    if not _NAME.fullmatch(name):
        raise ContainerConfigError(
            f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] "
            "are allowed"
        )
    for path in containers.iterdir():
        try:
            taken = read_record(path).name
        except (OSError, ValueError):
            continue
        if taken == name and not gives_up(path.name):
            raise ContainerConfigError(
                f'the container name "/{name}" is already in use by container '
                f"{path.name}"
            )
    return name
