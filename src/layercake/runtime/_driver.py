"""Choose how a container's root file system is made: overlayfs or a copy.

Overlayfs is the default; where it cannot be mounted (a kernel without it,
an unprivileged user on a kernel older than 5.11, a file system overlayfs
refuses as upper directory) the copy driver (:mod:`._copy`) takes over. The
only sure test is a real mount: one is tried, in a throwaway mount
namespace, on empty directories beside the containers.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import tempfile

from . import _libc as libc
from ._idmap import id_map
from ._userns import unshare_mapped

__all__ = ["DRIVERS", "overlay_refusal"]

DRIVERS = ("auto", "overlay", "copy")
"""The storage drivers a store can be asked for; "auto" tries overlay first."""


def overlay_refusal(directory: str) -> str | None:
    """Why overlayfs cannot be mounted over ``directory``'s file system, or None.

    Asked once per file system and process.
    """
    return _refusal(os.stat(directory).st_dev, directory)


@functools.cache
def _refusal(device: int, directory: str) -> str | None:
    del device  # the cache key: one answer per file system
    scratch = tempfile.mkdtemp(prefix=".overlay-probe-", dir=directory)
    try:
        for name in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(scratch, name))
        return _try_mount(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _try_mount(scratch: str) -> str | None:
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        code = 0
        try:
            os.close(read_end)
            _mount_in_own_namespace(scratch)
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            code = 1
            reason = getattr(error, "strerror", None) or str(error)
            os.write(write_end, reason.lower().encode(errors="replace"))
        finally:
            os._exit(code)
    os.close(write_end)
    with open(read_end, "rb") as report:
        reason = report.read().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return f"overlayfs cannot be mounted here: {reason or 'the probe failed'}"


def _mount_in_own_namespace(scratch: str) -> None:
    if "," in scratch or ":" in scratch:
        raise OSError(errno.EINVAL, "the path holds ',' or ':'")
    rootless = os.geteuid() != 0
    if rootless:
        unshare_mapped(libc.CLONE_NEWNS, id_map())
    else:
        libc.unshare(libc.CLONE_NEWNS)
    libc.mount(None, b"/", None, libc.MS_REC | libc.MS_PRIVATE)
    extra = ",userxattr" if rootless else ""
    data = (
        f"lowerdir={scratch}/lower,upperdir={scratch}/upper,"
        f"workdir={scratch}/work{extra}"
    )
    libc.mount(
        b"overlay", os.fsencode(f"{scratch}/merged"), b"overlay", 0, data.encode()
    )
