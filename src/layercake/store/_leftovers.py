"""Temp names that carry their creator's pid, and sweeping a dead creator's.

Every temp file or directory the store makes under ``tmp/`` is named
``<kind>-pid<N>-<random>``. When the process that made it is gone, nothing
can still be writing it, so the next store operation removes it at once
instead of waiting out prune's grace period.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from pathlib import Path

__all__ = ["owner_pid", "pid_alive", "sweep_dead", "temp_prefix"]

logger = logging.getLogger(__name__)

_OWNED = re.compile(r"-pid(\d+)-[^-/]*$")


def temp_prefix(kind: str) -> str:
    """Return the ``mkstemp``/``mkdtemp`` prefix for a temp entry of ``kind``."""
    return f"{kind.rstrip('-')}-pid{os.getpid()}-"


def owner_pid(name: str) -> int | None:
    """Return the pid written into a temp entry's name, or ``None``."""
    match = _OWNED.search(name)
    return int(match.group(1)) if match else None


def pid_alive(pid: int) -> bool:
    """Return whether a process with ``pid`` exists (zombies count as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    # A killed child that its parent has not reaped yet still answers
    # kill(0), but it will never write again.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0:1] == ["Z"]


def sweep_dead(tmp: Path) -> tuple[int, int]:
    """Remove the entries of ``tmp`` whose creating process has exited.

    Entries without a pid in their name, and those of live processes, stay.
    Returns how many entries went and how many bytes they held.
    """
    removed = 0
    freed = 0
    try:
        names = os.listdir(tmp)
    except FileNotFoundError:
        return 0, 0
    for name in names:
        pid = owner_pid(name)
        if pid is None or pid_alive(pid):
            continue
        path = tmp / name
        freed += _size(path)
        _remove(path)
        removed += 1
        logger.info("removed %s, left by exited process %d", path, pid)
    return removed, freed


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        total = 0
        for folder, _dirs, files in os.walk(path):
            for file in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(folder, file)).st_size
        return total
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
