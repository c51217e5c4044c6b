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
    Failures are logged, never raised: the run itself succeeded.
    """
    parents: set[str] = set()
    for path in reversed(created):
        host = upper_dir + path
        try:
            info = os.lstat(host)
            if stat.S_ISDIR(info.st_mode):
                os.rmdir(host)
            elif stat.S_ISREG(info.st_mode) and info.st_size == 0:
                os.unlink(host)
        except FileNotFoundError:
            continue
        except OSError as error:
            logger.debug("keeping %s in %s: %s", path, upper_dir, error.strerror)
            continue
        parents.add(os.path.dirname(path))
    for parent in sorted(parents, key=len, reverse=True):
        while parent != "/" and parent not in present:
            try:
                os.rmdir(upper_dir + parent)
            except OSError:
                break
            parent = os.path.dirname(parent)
