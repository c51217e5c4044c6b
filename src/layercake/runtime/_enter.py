"""Run another process in a running container's namespaces (``docker exec``).

The direct child joins the container's namespaces through setns(2) on
``/proc/<pid>/ns/*`` (the user namespace first when rootless, the mount
namespace last, which also moves it to the container's root), then forks:
only a child of the joining process lands in the PID namespace. That
grandchild drops to the process's user and execs; the direct child relays
its exit status, as for :func:`layercake.runtime.start`.
"""

from __future__ import annotations

import os
import signal

from layercake.errors import ContainerError

from . import _child
from . import _libc as libc
from ._console import console_pair
from ._plan import ProcessPlan, prepare_process
from ._sandbox import (
    _CAP_LAST,
    Sandbox,
    _parse,
    _pipe_above_stdio,
    lifeline,
    settle,
)
from ._spec import ProcessSpec

__all__ = ["enter", "join_network_of", "setns_network"]

_NAMESPACES = (
    ("ipc", libc.CLONE_NEWIPC),
    ("uts", libc.CLONE_NEWUTS),
    ("net", libc.CLONE_NEWNET),
    ("pid", libc.CLONE_NEWPID),
    ("mnt", libc.CLONE_NEWNS),
)


def setns_network(fd: int) -> None:
    """Move the calling thread into the network namespace ``fd`` refers to.

    Only this thread moves; sockets it creates stay in that namespace.

    Raises:
        OSError: the namespace cannot be joined.
    """
    libc.setns(fd, libc.CLONE_NEWNET)


def join_network_of(pid: int) -> None:
    """Move this process into the network namespace of process ``pid``.

    Rootless, it joins that process's user namespace first: an unprivileged
    user may only enter a network namespace its own user namespace owns.
    Joining a user namespace needs a single-threaded process, such as a
    freshly forked child.

    Raises:
        OSError: a namespace cannot be opened or joined.
    """
    kinds = [("net", libc.CLONE_NEWNET)]
    if os.geteuid() != 0:
        kinds.insert(0, ("user", libc.CLONE_NEWUSER))
    for name, kind in kinds:
        fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(fd, kind)
        finally:
            os.close(fd)


def enter(
    pid: int,
    process: ProcessSpec,
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    cgroup_procs: tuple[str, ...] = (),
) -> Sandbox:
    """Start ``process`` in the namespaces of the running container ``pid``.

    ``pid`` is the host pid of the container's PID 1. The file descriptors
    and a terminal work as in :func:`layercake.runtime.start` (the
    process's terminal is the next free one of the container's devpts). The
    process gets the container's capability bounding set, its root and its
    hostname; it ends when the caller dies, like a started container. It
    joins the cgroups whose ``cgroup.procs`` files ``cgroup_procs`` names,
    so the container's limits hold for it too.

    Raises:
        ContainerConfigError: the process spec cannot work.
        CommandNotStarted: the command could not be executed (not found,
            not executable).
        ContainerError: the container is not running, or joining it failed.
    """
    plan = prepare_process(process)
    names = (("user", libc.CLONE_NEWUSER),) if plan.rootless else ()
    if plan.rootless:
        pid = _dumpable_member(pid)
    fds: list[tuple[str, int, int]] = []
    try:
        for name, kind in names + _NAMESPACES:
            path = f"/proc/{pid}/ns/{name}"
            fds.append((name, os.open(path, os.O_RDONLY | os.O_CLOEXEC), kind))
    except OSError as error:
        for _, fd, _ in fds:
            os.close(fd)
        raise ContainerError(
            f"container process {pid} is not running: {error.strerror}"
        ) from None

    # Opened here: once in the container's mount namespace, the host's
    # cgroup file system is out of sight.
    try:
        cgroups = tuple(os.open(p, os.O_WRONLY | os.O_CLOEXEC) for p in cgroup_procs)
    except OSError as error:
        for _, fd, _ in fds:
            os.close(fd)
        raise ContainerError(
            f"cannot join the container's cgroup: {error.strerror}"
        ) from None
    status_r, status_w = _pipe_above_stdio()
    console, console_w = console_pair() if plan.terminal else (None, -1)
    opened = (*cgroups, *(fd for _, fd, _ in fds))
    try:
        child = os.fork()
    except BaseException:
        for fd in (status_r, status_w, *opened):
            os.close(fd)
        if console is not None:
            console.close()
            os.close(console_w)
        raise
    if child == 0:
        stdio = (stdin, stdout, stderr)
        _join(plan, fds, stdio, status_w, lifeline(), cgroups, console_w)
    os.close(status_w)
    for fd in opened:
        os.close(fd)
    if console_w >= 0:
        os.close(console_w)

    try:
        with open(status_r, "rb", buffering=0, closefd=True) as status:
            records = status.readall()
    except BaseException:
        if console is not None:
            console.close()
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        raise
    process_pid, _, failure, _ = _parse(records)
    sandbox = Sandbox(process_pid, child, "", [], frozenset())
    settle(sandbox, console, records, process.args[0], failure, "exec")
    return sandbox


def _dumpable_member(pid: int) -> int:
    """``pid``, or its oldest child when ``pid`` is the undumpable init.

    Only a process that may trace another may open its namespaces; rootless,
    that rules out the init (made undumpable), so its command stands in:
    both are in every namespace of the container.
    """
    try:
        os.close(os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC))
        return pid
    except PermissionError:
        pass
    except OSError:
        return pid
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as file:
            children = file.read().split()
    except OSError:
        return pid
    return int(children[0]) if children else pid


def _join(
    plan: ProcessPlan,
    fds: list[tuple[str, int, int]],
    stdio: tuple[int | None, int | None, int | None],
    status_w: int,
    lifeline_fd: int,
    cgroups: tuple[int, ...],
    console: int,
) -> None:
    try:
        os.setsid()
        # Until it execs, the process that lands in the container is a copy
        # of the host's interpreter: no container process may read or trace it.
        _child._do("make the process undumpable", libc.prctl, libc.PR_SET_DUMPABLE, 0)
        for name, fd, kind in fds:
            _child._do(f"join {name} namespace", libc.setns, fd, kind)
            os.close(fd)
        pid = os.fork()
        if pid == 0:
            _become_process(plan, stdio, status_w, cgroups, console)
        os.write(status_w, b"P%d\0" % pid)
        os.closerange(3, lifeline_fd)
        os.closerange(lifeline_fd + 1, _child._MAX_FD)
        _child._relay_exit(pid, lifeline_fd)
    except BaseException as error:  # noqa: BLE001 - a child must never return
        _child._report(status_w, [], error)
        os._exit(_child.SETUP_FAILED)


def _become_process(
    plan: ProcessPlan,
    stdio: tuple[int | None, int | None, int | None],
    status_w: int,
    cgroups: tuple[int, ...],
    console: int,
) -> None:
    try:
        for fd in cgroups:
            _child._do("join the container's cgroup", os.write, fd, b"0")
        _child._do("set parent death signal", libc.prctl, libc.PR_SET_PDEATHSIG, 9)
        os.umask(0o022)
        _child._do("enter /", os.chdir, "/")
        _child._enter_cwd(plan, create=False)
        stdio = _child._terminal_stdio(plan, stdio, console)
        _child._drop_privileges(plan, _CAP_LAST)
        _child._do("set parent death signal", libc.prctl, libc.PR_SET_PDEATHSIG, 9)
        _child._do("set up stdio", _child._wire_stdio, stdio)
    except BaseException as error:  # noqa: BLE001 - a child must never return
        _child._report(status_w, [], error)
        os._exit(_child.SETUP_FAILED)
    libc.reset_signals()
    os.closerange(3, status_w)
    os.closerange(status_w + 1, _child._MAX_FD)
    _child._exec(plan, status_w)
