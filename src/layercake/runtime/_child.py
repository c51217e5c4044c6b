"""The code that runs in the forked children and becomes the container.

:func:`spawn` runs in the direct child: it enters a new PID namespace (and a
user namespace when not root), forks the container's PID 1 and waits for
it, exiting with its status. :func:`_become_container` runs in that
grandchild: it builds the root file system, pivots into it, drops to the
process's user and execs.

Only system calls happen here, on values :mod:`._plan` prepared before the
fork; every path ends in ``os._exit`` or ``execve``, never in a return into
the caller's code. Set-up failures travel to the parent as records on the
status pipe (see :mod:`._status`), which closes on exec.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import stat
from collections.abc import Callable
from typing import NoReturn

from . import _libc as libc
from ._console import open_terminal
from ._copy import mount_copy
from ._plan import Plan, ProcessPlan, mount_overlay
from ._scoped import resolve_in_root
from ._userns import unshare_mapped

__all__ = ["SETUP_FAILED", "spawn"]

SETUP_FAILED = 125
"""Exit status of a child whose set-up failed (Docker uses 125 likewise)."""

_SIGKILL = 9
_DEVICES = (b"null", b"zero", b"full", b"random", b"urandom", b"tty")
_DEV_LINKS = (
    (b"fd", b"/proc/self/fd"),
    (b"stdin", b"/proc/self/fd/0"),
    (b"stdout", b"/proc/self/fd/1"),
    (b"stderr", b"/proc/self/fd/2"),
    (b"ptmx", b"pts/ptmx"),
)
_NOSUID_NODEV_NOEXEC = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
_DEV_FILESYSTEMS: tuple[tuple[bytes, bytes, int, bytes | None], ...] = (
    (
        b"pts",
        b"devpts",
        libc.MS_NOSUID | libc.MS_NOEXEC,
        b"newinstance,ptmxmode=0666,mode=0620",
    ),
    (b"shm", b"tmpfs", _NOSUID_NODEV_NOEXEC, b"mode=1777,size=65536k"),
    (b"mqueue", b"mqueue", _NOSUID_NODEV_NOEXEC, None),
)
_MS_STRICTATIME = 1 << 24
_LOCKED_FLAGS = 2 | 4 | 8 | 1024 | 2048
_MAX_FD = 1 << 20
_PROC_READ_ONLY = (b"bus", b"fs", b"irq", b"sys", b"sysrq-trigger")
_PROC_MASKED = (
    b"acpi",
    b"asound",
    b"interrupts",
    b"kcore",
    b"keys",
    b"latency_stats",
    b"sched_debug",
    b"scsi",
    b"timer_list",
    b"timer_stats",
)


class _SetupError(Exception):
    def __init__(self, step: str, error: OSError) -> None:
        self.step = step
        self.error = error


def _do(step: str, call: Callable[..., object], *args: object) -> None:
    try:
        call(*args)
    except OSError as error:
        raise _SetupError(step, error) from None


def spawn(
    plan: Plan,
    stdio: tuple[int | None, int | None, int | None],
    status_w: int,
    lifeline: int,
    cap_last: int,
    net_sync: tuple[int, int] | None = None,
    console: int = -1,
) -> NoReturn:
    """Run the direct child: namespaces, fork PID 1, relay its exit status.

    ``lifeline`` is the read end of a pipe whose write end only the starting
    process holds: it ends when that process dies (whichever thread started
    the container), and the container is then killed. ``net_sync`` is the
    pipe on which the parent says the network namespace is configured (see
    :func:`_await_network`). ``console`` is the socket the terminal's master
    is sent over when the plan asks for one.
    """
    try:
        if net_sync is not None:
            os.close(net_sync[1])
        os.setsid()
        if plan.id_map is not None and plan.join_net is not None:
            # Only the user namespace owning the joined network namespace
            # grants the right to join it: share it instead of a new one.
            _do("join user namespace", _join_owner, plan.join_net)
            _do("unshare pid namespace", libc.unshare, libc.CLONE_NEWPID)
        elif plan.id_map is not None and plan.join_user is not None:
            # A shared user namespace: the network namespace made below is
            # then owned by it, so its owner can plug it into its bridges.
            _do(
                "join user namespace",
                _join_namespace,
                plan.join_user,
                libc.CLONE_NEWUSER,
            )
            _do("unshare pid namespace", libc.unshare, libc.CLONE_NEWPID)
        elif plan.id_map is not None:
            _do(
                "unshare user namespace", unshare_mapped, libc.CLONE_NEWPID, plan.id_map
            )
        else:
            _do("unshare pid namespace", libc.unshare, libc.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            _become_container(plan, stdio, status_w, cap_last, net_sync, console)
        os.write(status_w, b"P%d\0" % pid)
        os.closerange(3, lifeline)
        os.closerange(lifeline + 1, _MAX_FD)
        _relay_exit(pid, lifeline)
    except BaseException as error:  # noqa: BLE001 - a child must never return
        _report(status_w, [], error)
        os._exit(SETUP_FAILED)


def become_pid1(
    plan: Plan,
    stdio: tuple[int | None, int | None, int | None],
    status_w: int,
    cap_last: int,
    net_sync: tuple[int, int] | None = None,
    console: int = -1,
) -> NoReturn:
    """Run the child forked straight into a new PID namespace (no relay).

    Its parent is the thread that started it: the parent-death signal, not
    a lifeline, ends it when that thread or process dies.
    """
    try:
        if net_sync is not None:
            os.close(net_sync[1])
        os.setsid()
    except BaseException as error:  # noqa: BLE001 - a child must never return
        _report(status_w, [], error)
        os._exit(SETUP_FAILED)
    _become_container(plan, stdio, status_w, cap_last, net_sync, console)


def _relay_exit(pid: int, lifeline: int) -> NoReturn:
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(lifeline, select.POLLIN)
    ready = {fd for fd, _ in poller.poll()}
    if pidfd not in ready:
        os.kill(pid, _SIGKILL)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def _join_namespace(path: bytes, kind: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.setns(fd, kind)
    finally:
        os.close(fd)


def _join_owner(net_namespace: bytes) -> None:
    fd = os.open(net_namespace, os.O_RDONLY | os.O_CLOEXEC)
    try:
        owner = libc.namespace_owner(fd)
    finally:
        os.close(fd)
    try:
        libc.setns(owner, libc.CLONE_NEWUSER)
    finally:
        os.close(owner)


def _write_file(path: str | bytes, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _report(status_w: int, created: list[str], error: BaseException) -> None:
    if isinstance(error, _SetupError):
        reason = (error.error.strerror or str(error.error)).lower()
        message = f"{error.step}: {reason} (errno {error.error.errno})"
    else:
        message = f"{type(error).__name__}: {error}"
    records = b"".join(b"C" + os.fsencode(p) + b"\0" for p in created)
    try:
        os.write(status_w, records + b"E" + message.encode(errors="replace") + b"\0")
    except OSError:
        pass


def _become_container(
    plan: Plan,
    stdio: tuple[int | None, int | None, int | None],
    status_w: int,
    cap_last: int,
    net_sync: tuple[int, int] | None,
    console: int,
) -> NoReturn:
    created: list[str] = []
    try:
        # Set now and again after the user switch, which clears it.
        _do("set parent death signal", libc.prctl, libc.PR_SET_PDEATHSIG, _SIGKILL)
        # PID 1 joins first, so everything the container runs is counted, and
        # the relay stays out: an OOM kill must hit the container, not it.
        for procs in plan.cgroup_procs:
            _do(f"join cgroup {os.fsdecode(procs)}", _write_file, procs, b"0")
        os.umask(0o022)
        if plan.join_net is not None:
            _do(
                "join network namespace",
                _join_namespace,
                plan.join_net,
                libc.CLONE_NEWNET,
            )
        flags = libc.CLONE_NEWNS | libc.CLONE_NEWUTS | libc.CLONE_NEWIPC
        if plan.new_net:
            flags |= libc.CLONE_NEWNET
        _do("unshare namespaces", libc.unshare, flags)
        _do(
            "make / private",
            libc.mount,
            None,
            b"/",
            None,
            libc.MS_REC | libc.MS_PRIVATE,
        )
        _do("set hostname", libc.sethostname, plan.hostname)
        if plan.new_net:
            _do("bring loopback up", libc.loopback_up)
            if net_sync is not None:
                # The parent configures the namespace while this process
                # builds the root file system; it waits below, before exec.
                _do("report the network namespace", os.write, status_w, b"N\0")

        _mount_rootfs(plan)
        _mount_specials(plan, created)
        _mount_binds(plan, created)
        _mount_tmpfs(plan, created)
        _pivot(plan)
        _enter_cwd(plan)
        if plan.read_only:
            _do(
                "make the root file system read-only",
                libc.mount,
                None,
                b"/",
                None,
                libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY,
            )
        stdio = _terminal_stdio(plan, stdio, console)
        _drop_privileges(plan, cap_last)
        _do("set parent death signal", libc.prctl, libc.PR_SET_PDEATHSIG, _SIGKILL)
        _do("set up stdio", _wire_stdio, stdio)
    except BaseException as error:  # noqa: BLE001 - a child must never return
        _report(status_w, created, error)
        os._exit(SETUP_FAILED)

    records = b"".join(b"C" + os.fsencode(p) + b"\0" for p in created)
    if records:
        os.write(status_w, records)
    if net_sync is not None:
        _await_network(net_sync[0])
    if plan.init:
        _run_init(plan, status_w)
    libc.reset_signals()
    os.closerange(3, status_w)
    os.closerange(status_w + 1, _MAX_FD)
    _exec(plan, status_w)


def _await_network(ready: int) -> None:
    """Block until the parent wrote that the network is up; die if it gave up."""
    try:
        answer = os.read(ready, 1)
    except OSError:
        answer = b""
    if answer != b"1":
        # The parent reported why; this process just goes.
        os._exit(SETUP_FAILED)
    os.close(ready)


# Signals a ``docker run --init`` init passes on to the process it started.
_FORWARDED = tuple(
    s
    for s in signal.Signals
    if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD)
    and s < signal.SIGRTMIN
    and s not in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE)
)


def _terminal_stdio(
    plan: ProcessPlan,
    stdio: tuple[int | None, int | None, int | None],
    console: int,
) -> tuple[int | None, int | None, int | None]:
    """With a terminal, its slave replaces all three descriptors."""
    if not plan.terminal:
        return stdio
    try:
        slave = open_terminal(plan.terminal_size, plan.uid, plan.gid, console)
    except OSError as error:
        raise _SetupError("allocate a terminal", error) from None
    return slave, slave, slave


def _run_init(plan: Plan, status_w: int) -> None:
    """Fork the process; as PID 1, forward signals to it and reap zombies.

    Returns in the forked process (which goes on to exec); the init itself
    ends with the process's exit status once it has ended.
    """
    # Held until the init's handlers are in place: a signal sent meanwhile
    # (a quick ``stop``) is forwarded then, not lost on a handler-less PID 1.
    # The process unblocks them with every other signal before its exec.
    signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
    # The process waits on this pipe until the init has hidden itself and
    # dropped its capabilities: the command never sees a PID 1 that holds
    # more than it does or can be traced.
    hardened_r, hardened_w = os.pipe()
    try:
        child = os.fork()
    except OSError as error:
        _die(SETUP_FAILED, f"init: fork: {(error.strerror or str(error)).lower()}")
    if child == 0:
        os.close(hardened_w)
        os.read(hardened_r, 1)
        os.close(hardened_r)
        if plan.terminal:
            _take_foreground()
        return
    os.close(status_w)

    # The init is a copy of the host's interpreter: keep its memory, binary
    # and environment out of the container's reach, and its command line too.
    try:
        libc.prctl(libc.PR_SET_DUMPABLE, 0)
        libc.set_title((b"init", b"--", *map(os.fsencode, plan.argv)))
        # It never execs, so nothing narrows root's sets to the bounding set.
        libc.set_capabilities(plan.capabilities)
    except OSError:
        os.kill(child, signal.SIGKILL)
        _die(
            SETUP_FAILED,
            "init: cannot hide the host interpreter or drop its capabilities",
        )
    # Closes the pipe's write end too, which lets the process go on.
    os.closerange(3, _MAX_FD)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)
        except OSError:
            pass

    for signum in _FORWARDED:
        try:
            signal.signal(signum, forward)
        except (OSError, ValueError):
            continue
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(SETUP_FAILED)
        if pid == child:
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.WEXITSTATUS(status))


def _take_foreground() -> None:
    # The process, not the init, is in the terminal's foreground: Ctrl-C and
    # window changes reach it once, straight from the kernel. Done before the
    # exec, so it never reads the terminal from the background (SIGTTIN).
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        os.tcsetpgrp(0, os.getpid())
    except OSError:
        pass


def _mount_rootfs(plan: Plan) -> None:
    if plan.copy_dirs is not None:
        _do("copy the image's layers", mount_copy, plan.copy_dirs, plan.root_b)
        return
    if plan.scratch:
        _do(
            f"mount empty lower directory on {plan.root}",
            libc.mount,
            b"tmpfs",
            plan.root_b,
            b"tmpfs",
            libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV,
            b"mode=755,size=4k",
        )
    if plan.overlay_chdir is not None:
        _do(f"enter {plan.overlay_chdir}", os.chdir, plan.overlay_chdir)
    _do(f"mount overlay on {plan.root}", mount_overlay, plan.root_b, plan.overlay_data)


def _target(plan: Plan, path: str, kind: str, created: list[str]) -> bytes:
    try:
        return os.fsencode(
            resolve_in_root(plan.root, path, create=kind, created=created)
        )
    except OSError as error:
        raise _SetupError(f"create mount target {path}", error) from None


def _mount_specials(plan: Plan, created: list[str]) -> None:
    # The generated /etc files live in a small tmpfs that /proc is then
    # mounted over: reachable through their bind mounts, hidden otherwise.
    proc = _target(plan, "/proc", "dir", created)
    _do(
        "mount staging tmpfs on /proc",
        libc.mount,
        b"tmpfs",
        proc,
        b"tmpfs",
        0,
        b"mode=755,size=64k",
    )
    for path, content in plan.etc_files:
        staged = proc + b"/" + os.fsencode(path.rsplit("/", 1)[1])
        _do(f"write {path}", _write_file, staged, content)
        target = _target(plan, path, "file", created)
        _do(f"bind mount {path}", libc.mount, staged, target, None, libc.MS_BIND)
    _do("mount proc on /proc", libc.mount, b"proc", proc, b"proc", _NOSUID_NODEV_NOEXEC)
    if not plan.privileged:
        _guard_proc(proc)

    _mount_dev(plan, created)

    sys = _target(plan, "/sys", "dir", created)
    sys_flags = _NOSUID_NODEV_NOEXEC | (0 if plan.privileged else libc.MS_RDONLY)
    try:
        libc.mount(b"sysfs", sys, b"sysfs", sys_flags)
    except PermissionError:
        # Without our own network namespace a user namespace may not mount
        # sysfs; a read-only view of the host's is what is left.
        _bind(b"/sys", sys, True, "/sys")
    except OSError as error:
        raise _SetupError("mount sysfs on /sys", error) from None
    if plan.privileged:
        return
    for name in (b"firmware", b"devices/virtual/powercap"):
        _mask(sys + b"/" + name, "/sys/" + os.fsdecode(name))


def _guard_proc(proc: bytes) -> None:
    # Root in the container is root on the host: as Docker does, keep it
    # from writing kernel settings and from reading kernel memory or keys.
    for name in _PROC_READ_ONLY:
        path = proc + b"/" + name
        if os.path.exists(path):
            _bind(path, path, True, "/proc/" + os.fsdecode(name))
    for name in _PROC_MASKED:
        _mask(proc + b"/" + name, "/proc/" + os.fsdecode(name))


def _mask(path: bytes, name: str) -> None:
    if os.path.isdir(path):
        _do(
            f"mask {name}",
            libc.mount,
            b"tmpfs",
            path,
            b"tmpfs",
            libc.MS_RDONLY,
            b"size=0",
        )
    elif os.path.exists(path):
        _do(f"mask {name}", libc.mount, b"/dev/null", path, None, libc.MS_BIND)


def _mount_dev(plan: Plan, created: list[str]) -> None:
    dev = _target(plan, "/dev", "dir", created)
    _do(
        "mount tmpfs on /dev",
        libc.mount,
        b"tmpfs",
        dev,
        b"tmpfs",
        libc.MS_NOSUID | _MS_STRICTATIME,
        b"mode=755,size=65536k",
    )
    for device in _DEVICES:
        node = dev + b"/" + device
        name = os.fsdecode(device)
        _do(f"create /dev/{name}", _write_file, node, b"")
        _do(
            f"bind mount /dev/{name}",
            libc.mount,
            b"/dev/" + device,
            node,
            None,
            libc.MS_BIND,
        )
    for directory, fstype, flags, data in _DEV_FILESYSTEMS:
        path = dev + b"/" + directory
        name = os.fsdecode(directory)
        _do(f"create /dev/{name}", os.mkdir, path, 0o755)
        _do(
            f"mount {os.fsdecode(fstype)} on /dev/{name}",
            libc.mount,
            fstype,
            path,
            fstype,
            flags,
            data,
        )
    for link, target in _DEV_LINKS:
        _do(f"create /dev/{os.fsdecode(link)}", os.symlink, target, dev + b"/" + link)


def _mount_binds(plan: Plan, created: list[str]) -> None:
    for source, target, is_dir, read_only in plan.mounts:
        host = _target(plan, target, "dir" if is_dir else "file", created)
        _bind(source, host, read_only, target)


def _mount_tmpfs(plan: Plan, created: list[str]) -> None:
    for target, flags, data in plan.tmpfs:
        host = _target(plan, target, "dir", created)
        _do(
            f"mount tmpfs on {target}",
            libc.mount,
            b"tmpfs",
            host,
            b"tmpfs",
            flags,
            data,
        )


def _bind(source: bytes, target: bytes, read_only: bool, name: str) -> None:
    step = f"bind mount {os.fsdecode(source)} on {name}"
    _do(step, libc.mount, source, target, None, libc.MS_BIND | libc.MS_REC)
    if read_only:
        # A remount must repeat the flags the kernel locked on the source
        # mount, or a user namespace is refused.
        locked = os.statvfs(target).f_flag & _LOCKED_FLAGS
        _do(
            f"make {name} read-only",
            libc.mount,
            None,
            target,
            None,
            libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY | locked,
        )


def _pivot(plan: Plan) -> None:
    _do(f"enter {plan.root}", os.chdir, plan.root)
    _do("pivot_root", libc.pivot_root, b".", b".")
    _do("detach the old root", libc.umount2, b".", libc.MNT_DETACH)
    _do("enter /", os.chdir, "/")


def _enter_cwd(plan: ProcessPlan, *, create: bool = True) -> None:
    # Resolved inside the root, not by the kernel: a magic link such as
    # /proc/self/fd/N could otherwise lead to a directory the host leaked.
    # A container's first process gets a missing one made, as docker run;
    # an exec'd process does not, as docker exec.
    try:
        path = resolve_in_root(
            "", plan.cwd, create="dir" if create else None, created=[]
        )
    except OSError as error:
        step = "create" if create else "enter"
        raise _SetupError(f"{step} working directory {plan.cwd}", error) from None
    _do(f"enter working directory {plan.cwd}", os.chdir, path)
    _do(f"enter working directory {plan.cwd}", _check_cwd_inside, plan.cwd)


def _check_cwd_inside(cwd: str) -> None:
    # getcwd fails for a directory the root cannot reach: the last line of
    # defence should a link inside the container have been swapped meanwhile.
    try:
        reached = os.getcwd()
    except FileNotFoundError:
        reached = ""
    if not reached.startswith("/"):
        raise OSError(errno.EXDEV, "outside the container's root file system", cwd)


def _drop_privileges(plan: ProcessPlan, cap_last: int) -> None:
    # Dropped from the bounding set, a capability cannot come back, not even
    # to root inside or through a setuid or file-capability binary.
    if plan.seccomp_filter:
        # Installed while CAP_SYS_ADMIN is still held: no_new_privs is not
        # needed for it then, and stays the user's choice.
        _do("install the seccomp filter", libc.install_seccomp, plan.seccomp_filter)
    for cap in range(cap_last + 1):
        if cap not in plan.capabilities:
            _do("drop capabilities", libc.prctl, libc.PR_CAPBSET_DROP, cap)
    if plan.no_new_privileges:
        _do("set no_new_privs", libc.prctl, libc.PR_SET_NO_NEW_PRIVS, 1)
    if plan.id_map is None or plan.id_map.full:
        _do("set groups", os.setgroups, list(plan.groups))
    _do(f"set group id {plan.gid}", os.setgid, plan.gid)
    _do(f"set user id {plan.uid}", os.setuid, plan.uid)


def _wire_stdio(stdio: tuple[int | None, int | None, int | None]) -> None:
    stdin, stdout, stderr = stdio
    if stdin is None:
        stdin = os.open("/dev/null", os.O_RDONLY)
    copies = [None if fd is None else os.dup(fd) for fd in (stdin, stdout, stderr)]
    for target, fd in enumerate(copies):
        if fd is not None:
            os.dup2(fd, target)


def _exec(plan: ProcessPlan, status_w: int) -> NoReturn:
    """Exec the process; if that fails, report why on the status pipe and die.

    The pipe closes on a successful exec, so the starter learns the outcome
    from one read. A failure is the record ``X<exit code>:<reason>``.
    """
    name = plan.argv[0]
    path = name if "/" in name else _look_up(name, plan.search_path)
    if path is None:
        _cannot_exec(status_w, name, 127, "executable file not found in $PATH")
    try:
        if stat.S_ISDIR(os.stat(path).st_mode):
            _cannot_exec(status_w, name, 126, "is a directory")
        os.execve(path, plan.argv, plan.env)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        if error.errno != errno.ENOENT:
            _cannot_exec(status_w, name, 126, reason)
        if not os.path.exists(path):
            _cannot_exec(status_w, name, 127, reason)
        # The file is there: the interpreter its #! line names is not.
        _cannot_exec(status_w, name, 126, f"bad interpreter: {reason}")
    except BaseException as error:  # noqa: BLE001 - a child must never return
        _cannot_exec(status_w, name, 126, str(error))


def _look_up(name: str, search_path: tuple[str, ...]) -> str | None:
    for directory in search_path:
        candidate = (directory or ".") + "/" + name
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and mode & 0o111:
            return candidate
    return None


def _cannot_exec(status_w: int, name: str, code: int, reason: str) -> NoReturn:
    try:
        os.write(status_w, b"X%d:%s\0" % (code, reason.encode(errors="replace")))
    except OSError:
        # No one reads the pipe any more: say it where a user may look.
        _die(code, f'exec: "{name}": {reason}')
    os._exit(code)


def _die(code: int, message: str) -> NoReturn:
    try:
        os.write(2, b"unable to start container process: " + message.encode() + b"\n")
    finally:
        os._exit(code)
