"""A process that keeps a new user and network namespace alive for others.

An unprivileged user's network namespace can only be changed by a process
of the user namespace owning it. So that many containers can be plugged
into the same bridges, one long-lived process owns both: it unshares a user
namespace, mapped as containers' are (:class:`IdMap`), with a network
namespace of its own, brings loopback up, and then becomes ``sleep
infinity``. Containers join its user namespace (``SandboxSpec.
user_namespace``); its owner joins both to add bridges and veth pairs.
"""

from __future__ import annotations

import os
import select
import shutil
from typing import NoReturn

from layercake.errors import ContainerError

from . import _libc as libc
from ._idmap import IdMap, id_map
from ._userns import unshare_mapped

__all__ = ["Holder", "hold_namespaces"]

_READY_TIMEOUT = 10.0


class Holder:
    """A started namespace holder: its pid, and a pipe that ends with it.

    Attributes:
        pid: the holder's pid; it is this process's child, in a session of
            its own, until it is killed.
        exit_fd: the read end of a pipe whose only write end the holder
            keeps: it reads end-of-file once the holder has ended (the
            ``--exit-fd`` of slirp4netns). The caller closes it.
    """

    def __init__(self, pid: int, exit_fd: int) -> None:
        """Record a started holder."""
        self.pid = pid
        self.exit_fd = exit_fd


def hold_namespaces() -> Holder:
    """Start a process that holds a new user namespace and network namespace.

    As root only a network namespace is made. The holder runs until it is
    killed; whoever started it reaps it.

    Raises:
        ContainerError: the namespaces could not be made (the message says
            which step failed and why).
    """
    sleep = shutil.which("sleep") or "/bin/sleep"
    idmap = id_map() if os.geteuid() != 0 else None
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _hold(idmap, sleep, ready_w, exit_w)
    os.close(ready_w)
    os.close(exit_w)
    try:
        ready = select.select([ready_r], [], [], _READY_TIMEOUT)[0]
        answer = os.read(ready_r, 4096) if ready else b"no answer in time"
    finally:
        os.close(ready_r)
    if answer != b"ready":
        os.close(exit_r)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        raise ContainerError(
            "cannot make the user-owned network namespace: "
            + answer.decode(errors="replace")
        )
    return Holder(pid, exit_r)


def _hold(idmap: IdMap | None, sleep: str, ready_w: int, exit_w: int) -> NoReturn:
    # The forked child: it must never return into the caller's code.
    step = "start a session"
    try:
        os.setsid()
        step = "unshare user and network namespaces"
        if idmap is not None:
            unshare_mapped(libc.CLONE_NEWNET, idmap)
        else:
            libc.unshare(libc.CLONE_NEWNET)
        step = "bring loopback up"
        libc.loopback_up()
        step = "close inherited descriptors"
        os.set_inheritable(exit_w, True)
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        keep = sorted({ready_w, exit_w})
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[-1])
        os.closerange(keep[-1] + 1, os.sysconf("SC_OPEN_MAX"))
        os.write(ready_w, b"ready")
        os.close(ready_w)
        os.execv(sleep, ["sleep", "infinity"])
    except BaseException as error:  # noqa: BLE001 - a forked child must never return
        reason = getattr(error, "strerror", None) or str(error)
        try:
            os.write(ready_w, f"{step}: {reason}".encode(errors="replace"))
        except OSError:
            pass
    os._exit(1)
