"""Choose how a container's root file system is made: overlayfs or a copy.

Overlayfs is the default; where it cannot be mounted (a kernel without it,
an unprivileged user on a kernel older than 5.11, a file system overlayfs
refuses as upper directory) the copy driver (:mod:`._copy`) takes over. The
only sure test is a real mount: one is tried, in a throwaway mount
namespace, on empty directories beside the containers. A mount that worked
can be remembered for the rest of the boot (see :func:`overlay_refusal`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import tempfile

from . import _libc as libc
from ._idmap import id_map
from ._userns import unshare_mapped

__all__ = ["DRIVERS", "MOUNTED_FILE", "overlay_refusal"]

DRIVERS = ("auto", "overlay", "copy")
"""The storage drivers a store can be asked for; "auto" tries overlay first."""

MOUNTED_FILE = ".overlay-mounted"
"""The file a successful test mount is remembered in (see :func:`overlay_refusal`)."""


def overlay_refusal(directory: str, *, remember_in: str | None = None) -> str | None:
    """Why overlayfs cannot be mounted over ``directory``'s file system, or None.

    Asked once per file system and process. With ``remember_in``, a mount
    that worked is written to :data:`MOUNTED_FILE` there with the boot id,
    the user and the file system, and trusted by later processes while all
    three match: the test mount's namespace takes tens of milliseconds to
    tear down, which every command would pay again. A refusal is never
    remembered, so loading the overlay module takes effect at once.
    """
    remembered = (
        None if remember_in is None else os.path.join(remember_in, MOUNTED_FILE)
    )
    return _refusal(os.stat(directory).st_dev, directory, remembered)


@functools.cache
def _refusal(device: int, directory: str, remembered: str | None) -> str | None:
    key = None if remembered is None else _mount_key(device)
    if remembered is not None and key is not None and _read(remembered) == key:
        return None
    scratch = tempfile.mkdtemp(prefix=".overlay-probe-", dir=directory)
    try:
        for name in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(scratch, name))
        refusal = _try_mount(scratch)
    finally:
        # Overlayfs leaves work/work with mode 0: only root could enter it.
        with contextlib.suppress(OSError):
            os.chmod(os.path.join(scratch, "work", "work"), 0o700)
        shutil.rmtree(scratch, ignore_errors=True)
    if refusal is None and remembered is not None and key is not None:
        _remember(remembered, key)
    return refusal


def _mount_key(device: int) -> str | None:
    """What a remembered mount holds for: this boot, user and file system."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            boot = file.read().strip()
    except OSError:
        return None
    return f"{boot} {os.geteuid()} {device}\n"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return None


def _remember(path: str, key: str) -> None:
    # A store that cannot take the file only loses the shortcut.
    temporary = f"{path}.{os.getpid()}"
    try:
        with open(temporary, "w", encoding="ascii") as file:
            file.write(key)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


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
