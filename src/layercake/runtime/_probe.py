"""Ask the kernel once what it allows, and say what is missing."""

from __future__ import annotations

import functools
import os

import attrs

from layercake.errors import RuntimeUnavailable

from . import _libc as libc

__all__ = ["Capabilities", "probe", "require"]


@attrs.frozen
class Capabilities:
    """What this process may do to run containers.

    Attributes:
        root: the effective user is root.
        user_namespaces: a user namespace can be created here.
        overlay: the kernel has the overlay file system (built in, loaded, or
            as a module it can load).
        pivot_root: pivot_root(2) is known for this machine.
    """

    root: bool
    user_namespaces: bool
    overlay: bool
    pivot_root: bool


@functools.cache
def probe() -> Capabilities:
    """Return what the kernel allows; asked once per process, then cached."""
    return Capabilities(
        root=os.geteuid() == 0,
        user_namespaces=_can_unshare_user(),
        overlay=_has_overlay(),
        pivot_root=libc.has_pivot_root(),
    )


def require() -> None:
    """Check that containers can run here.

    Root is not asked whether it may create a user namespace: it needs
    none, and the question costs a fork. A kernel without overlayfs can
    still run containers, with the copy storage driver.

    Raises:
        RuntimeUnavailable: naming what is missing and what would fix it.
    """
    if not libc.has_pivot_root():
        raise RuntimeUnavailable(
            f"pivot_root on {os.uname().machine}",
            "run on x86_64, aarch64, riscv64 or ppc64le",
        )
    if os.geteuid() != 0 and not _can_unshare_user():
        raise RuntimeUnavailable(
            "root or user namespaces",
            "run as root or enable unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1)",
        )


@functools.cache
def _can_unshare_user() -> bool:
    pid = os.fork()
    if pid == 0:
        try:
            libc.unshare(libc.CLONE_NEWUSER)
        except BaseException:  # noqa: BLE001 - a child must never return
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


@functools.cache
def _has_overlay() -> bool:
    try:
        with open("/proc/filesystems", encoding="ascii") as file:
            if any(line.split()[-1:] == ["overlay"] for line in file):
                return True
    except OSError:
        pass
    release = os.uname().release
    return os.path.isdir(f"/lib/modules/{release}/kernel/fs/overlayfs")
