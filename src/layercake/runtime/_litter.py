"""Remove the mount targets the runtime had to create in the rootfs.

Creating ``/proc`` or ``/etc/hosts`` in the merged tree writes them to the
upper directory; a build layer made from it must not contain them, so they
are removed after the run, along with any directory overlayfs copied up only
to hold them.
"""

from __future__ import annotations

import logging
import os
import stat

__all__ = ["remove_litter", "upper_dirs_present"]

logger = logging.getLogger(__name__)

_PARENTS_TO_WATCH = ("/etc",)


def upper_dirs_present(
    upper_dir: str, targets: tuple[str, ...], *, driver: str = "overlay"
) -> frozenset[str]:
    """Return which parents of ``targets`` (and ``/etc``) exist in the upper dir.

    Called before the run, so that after it a parent that appeared only
    because a mount target was created in it can be told apart. The copy
    driver makes no directory but the ones listed as created, so every
    parent counts as present (its copy may not be made yet).
    """
    parents = set(_PARENTS_TO_WATCH)
    for target in targets:
        path = os.path.dirname(os.path.normpath("/" + target.lstrip("/")))
        while path != "/":
            parents.add(path)
            path = os.path.dirname(path)
    if driver == "copy":
        return frozenset(parents)
    return frozenset(p for p in parents if os.path.lexists(upper_dir + p))


def remove_litter(upper_dir: str, created: list[str], present: frozenset[str]) -> None:
    """Delete ``created`` paths (relative to the root) from ``upper_dir``.

    A created directory is removed only when empty and a created file only
    when still empty, so nothing the process wrote is lost; afterwards each
    emptied parent that was not in the upper directory before is removed.
    The container owned the upper directory while it ran and may have put
    links where those paths were: they are walked one directory descriptor
    at a time, never following a link, so nothing outside is touched.
    Failures are logged, never raised: the run itself succeeded.
    """
    try:
        upper = os.open(upper_dir, _DIRECTORY)
    except OSError as error:
        logger.debug("cannot open %s: %s", upper_dir, error.strerror)
        return
    try:
        parents: set[str] = set()
        for path in reversed(created):
            if _remove_if_empty(upper, path, files_too=True):
                parents.add(os.path.dirname(path))
        for parent in sorted(parents, key=len, reverse=True):
            while parent != "/" and parent not in present:
                if not _remove_if_empty(upper, parent, files_too=False):
                    break
                parent = os.path.dirname(parent)
    finally:
        os.close(upper)


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _remove_if_empty(upper: int, path: str, *, files_too: bool) -> bool:
    """Remove ``path`` below the ``upper`` descriptor if it is an empty
    directory (or, with ``files_too``, an empty regular file)."""
    parts = [part for part in path.split("/") if part]
    if not parts:
        return False
    *parents, name = parts
    opened: list[int] = []
    try:
        directory = upper
        for part in parents:
            # O_NOFOLLOW: a link put in place of a directory ends the walk.
            directory = os.open(part, _DIRECTORY, dir_fd=directory)
            opened.append(directory)
        info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(name, dir_fd=directory)
        elif files_too and stat.S_ISREG(info.st_mode) and info.st_size == 0:
            os.unlink(name, dir_fd=directory)
        else:
            return False
    except FileNotFoundError:
        return False
    except OSError as error:
        logger.debug("keeping %s: %s", path, error.strerror)
        return False
    finally:
        for fd in opened:
            os.close(fd)
    return True
