"""Make a container's merged root file system the calling process's root.

For copying files in and out of a container and exporting it. Call
:func:`enter_rootfs` only in a forked child that will end with ``os._exit``:
it changes the process's mount namespace and root for good.
"""

from __future__ import annotations

import os

from . import _child
from . import _libc as libc
from ._plan import prepare
from ._spec import SandboxSpec
from ._userns import unshare_mapped

__all__ = ["enter_rootfs"]


def enter_rootfs(spec: SandboxSpec, pid: int | None) -> None:
    """Enter the root of ``spec``'s container, running (``pid``) or not.

    A running container's mount namespace is joined, so its mounts
    (volumes, /proc) are seen as its processes see them. Otherwise the
    overlay is mounted in a new private mount namespace, which disappears
    with the process. Symbolic links then resolve inside the container.

    Raises:
        OSError: the namespace could not be joined or the overlay mounted.
    """
    if pid is not None:
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if os.geteuid() != 0:
                user = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
                libc.setns(user, libc.CLONE_NEWUSER)
                os.close(user)
            libc.setns(fd, libc.CLONE_NEWNS)
        finally:
            os.close(fd)
        os.chdir("/")
        return

    plan = prepare(spec)
    if plan.id_map is not None:
        unshare_mapped(libc.CLONE_NEWNS, plan.id_map)
    else:
        libc.unshare(libc.CLONE_NEWNS)
    libc.mount(None, b"/", None, libc.MS_REC | libc.MS_PRIVATE)
    _child._mount_rootfs(plan)
    os.chdir(plan.root)
    os.chroot(".")
    os.chdir("/")
