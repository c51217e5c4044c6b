"""Start a container process and supervise it: wait, signal, kill."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Self

from layercake.errors import (
    CommandNotStarted,
    ContainerConfigError,
    ContainerError,
    ContainerTimeout,
)

from . import _child
from . import _libc as libc
from ._console import console_pair, take_master
from ._litter import remove_litter, upper_dirs_present
from ._plan import prepare
from ._spec import SandboxSpec

__all__ = ["Sandbox", "lifeline", "lifeline_owned", "release_lifeline", "start"]


def _read_cap_last() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as file:
            return int(file.read())
    except (OSError, ValueError):
        return 40


_CAP_LAST = _read_cap_last()

# Every container's relay process watches the read end; the write end stays
# open in this process until it dies, which ends every container it started.
_LIFELINE_READ, _LIFELINE_WRITE = os.pipe()


def lifeline() -> int:
    """The read end of the pipe that ends when this process (or its owner) dies."""
    return _LIFELINE_READ


def lifeline_owned() -> tuple[int, ...]:
    """The lifeline write end this process holds, if it holds one."""
    return (_LIFELINE_WRITE,) if _LIFELINE_WRITE >= 0 else ()


def release_lifeline(*, detach: bool) -> None:
    """Call in a freshly forked process that will start containers.

    The fork inherited the starting process's lifeline write end, which would
    keep that process's containers alive as long as the fork lives: it is
    closed here. With ``detach`` the fork gets a lifeline of its own, so the
    containers it starts outlive the original process and die with the
    fork; without it, they still die with the original process.
    """
    global _LIFELINE_READ, _LIFELINE_WRITE
    if _LIFELINE_WRITE >= 0:
        os.close(_LIFELINE_WRITE)
        _LIFELINE_WRITE = -1
    if detach:
        os.close(_LIFELINE_READ)
        _LIFELINE_READ, _LIFELINE_WRITE = os.pipe()


class Sandbox:
    """A running container: its PID 1 and the child that relays its status.

    Attributes:
        pid: the host pid of the container's PID 1.
        terminal: the master of the process's pseudo terminal when its spec
            asked for one (``ProcessSpec.terminal``), else None; the caller
            reads output from it, writes input to it, and closes it.
    """

    def __init__(
        self,
        pid: int,
        child: int,
        upper_dir: str,
        created: list[str],
        present: frozenset[str],
        terminal: int | None = None,
    ) -> None:
        self.pid = pid
        self.terminal = terminal
        self._child = child
        self._upper_dir = upper_dir
        self._created = created
        self._present = present
        self._exit_code: int | None = None

    @property
    def exit_code(self) -> int | None:
        """The exit code once :meth:`wait` has seen the container end, else None."""
        return self._exit_code

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the container to end and return its exit code.

        The code is the process's own, or 128 plus the signal that ended it,
        as Docker reports it. Mount targets the runtime created are removed
        from the upper directory once it ended.

        Raises:
            ContainerTimeout: it is still running after ``timeout`` seconds
                (it keeps running; call :meth:`kill` to end it).
        """
        if self._exit_code is not None:
            return self._exit_code
        if timeout is not None and not self._ended_within(timeout):
            raise ContainerTimeout(
                f"container process {self.pid} still running after {timeout:g} seconds",
                timeout=timeout,
            )
        _, status = os.waitpid(self._child, 0)
        self._exit_code = os.waitstatus_to_exitcode(status)
        if self._exit_code < 0:
            self._exit_code = 128 - self._exit_code
        remove_litter(self._upper_dir, self._created, self._present)
        return self._exit_code

    def _ended_within(self, timeout: float) -> bool:
        pidfd = os.pidfd_open(self._child)
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            return bool(poller.poll(max(0.0, timeout) * 1000))
        finally:
            os.close(pidfd)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the container's PID 1; nothing if it already ended.

        As in Docker, a PID 1 that installed no handler ignores most signals.
        """
        if self._exit_code is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the container: its PID 1 and, with it, every process in it."""
        self.send_signal(signal.SIGKILL)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
        self.wait()


def start(
    spec: SandboxSpec,
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    direct: bool = False,
    configure_network: Callable[[int], None] | None = None,
) -> Sandbox:
    """Start ``spec``'s process in a new container and return at once.

    ``stdin``, ``stdout`` and ``stderr`` are file descriptors the process
    gets; ``None`` means /dev/null for stdin and the caller's own for the
    others. A process with a terminal gets its slave for all three instead,
    and the sandbox's :attr:`Sandbox.terminal` is the master. Returns once
    the process was exec'd.

    ``direct`` (as root) forks PID 1 straight into a new PID namespace,
    without the relay process, which saves a fork of the interpreter; the
    container then dies when the *thread* that started it ends (a
    parent-death signal), so only pass it when that thread waits for the
    container, as :func:`run` does.

    ``configure_network(pid)``, when given, is called with the host pid of
    PID 1 once its new network namespace exists; PID 1 goes on building its
    root file system meanwhile and waits for the call to return before it
    execs. An exception from it fails the start.

    Raises:
        ContainerConfigError: the spec cannot work.
        CommandNotStarted: the command could not be executed (not found,
            not executable); the container has ended and left nothing.
        ContainerError: the container could not be set up; the message names
            the step and the system error.
    """
    plan = prepare(spec)
    if configure_network is not None and not plan.new_net:
        raise ContainerConfigError(
            "a network can only be configured in a new network namespace"
        )
    present = upper_dirs_present(
        spec.rootfs.upper_dir,
        tuple(m.target for m in spec.mounts),
        driver=spec.rootfs.driver,
    )
    status_r, status_w = _pipe_above_stdio()
    net_sync = os.pipe() if configure_network is not None else None
    console, console_w = console_pair() if plan.terminal else (None, -1)
    direct = direct and not plan.rootless
    stdio = (stdin, stdout, stderr)
    try:
        child = _fork_into_pid_namespace() if direct else os.fork()
    except BaseException:
        _close(status_r, status_w, *(net_sync or ()))
        if console is not None:
            console.close()
            os.close(console_w)
        raise
    if child == 0:
        if direct:
            _child.become_pid1(plan, stdio, status_w, _CAP_LAST, net_sync, console_w)
        _child.spawn(
            plan, stdio, status_w, _LIFELINE_READ, _CAP_LAST, net_sync, console_w
        )
    os.close(status_w)
    if net_sync is not None:
        os.close(net_sync[0])
    if console_w >= 0:
        os.close(console_w)

    try:
        records, network_error = _read_status(
            status_r,
            child if direct else 0,
            configure_network,
            net_sync[1] if net_sync is not None else -1,
        )
    except BaseException:
        # The relay child takes PID 1 with it (parent-death signal).
        if console is not None:
            console.close()
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        raise
    pid, created, failure, _ = _parse(records)
    if network_error is not None:
        failure = f"network: {network_error}"
    if direct:
        pid = child
    sandbox = Sandbox(pid, child, spec.rootfs.upper_dir, created, present)
    settle(sandbox, console, records, spec.process.args[0], failure, "container")
    return sandbox


def settle(
    sandbox: Sandbox,
    console: socket.socket | None,
    records: bytes,
    command: str,
    failure: str | None,
    what: str,
) -> None:
    """Take the terminal of a started ``sandbox``, or end it and raise.

    ``records`` is what its child reported, ``failure`` the set-up failure
    found in them (or by the caller), ``what`` names the start in the error.

    Raises:
        CommandNotStarted: the command could not be executed.
        ContainerError: the set-up failed, or no process was started.
    """
    not_started = exec_failure(records, command)
    if not_started is not None:
        if console is not None:
            console.close()
        sandbox.wait()
        raise not_started
    started = sandbox.pid != 0
    sandbox.terminal, failure = take_master(console, started, failure)
    if failure is not None or not started:
        if sandbox.pid > 0:
            sandbox.kill()
        sandbox.wait()
        raise ContainerError(f"{what} set-up failed: {failure or 'no pid reported'}")


# Per process: a fork (the monitor) closes the descriptors it inherited.
_own_pid_namespace: dict[int, int] = {}


def _fork_into_pid_namespace() -> int:
    """Fork a child that is PID 1 of a new PID namespace; 0 in the child.

    unshare(CLONE_NEWPID) changes only where this thread's next child goes;
    joining this process's own namespace again right after the fork puts
    every later child of the thread back where it was.
    """
    me = os.getpid()
    if me not in _own_pid_namespace:
        flags = os.O_RDONLY | os.O_CLOEXEC
        _own_pid_namespace[me] = os.open("/proc/self/ns/pid", flags)
    namespace = _own_pid_namespace[me]
    try:
        libc.unshare(libc.CLONE_NEWPID)
    except OSError as error:
        raise ContainerError(
            f"container set-up failed: unshare pid namespace: "
            f"{(error.strerror or str(error)).lower()}"
        ) from None
    try:
        return os.fork()
    finally:
        if os.getpid() != 1:
            libc.setns(namespace, libc.CLONE_NEWPID)


def _read_status(
    status_r: int,
    pid: int,
    configure_network: Callable[[int], None] | None,
    ready_w: int,
) -> tuple[bytes, str | None]:
    """Read the child's records until exec; configure its network on the way.

    Returns the records and, when ``configure_network`` failed, why.
    """
    records = b""
    pending = configure_network is not None
    error: str | None = None
    try:
        with open(status_r, "rb", buffering=0, closefd=True) as status:
            while chunk := status.read(4096):
                records += chunk
                if not pending:
                    continue
                complete = records[: records.rfind(b"\0") + 1]
                reported, _, _, namespace = _parse(complete)
                pid = pid or reported
                if not (namespace and pid):
                    continue
                pending = False
                try:
                    configure_network(pid)  # type: ignore[misc]
                except Exception as failure:  # noqa: BLE001 - reported as set-up
                    error = str(failure)
                    os.kill(pid, signal.SIGKILL)
                else:
                    os.write(ready_w, b"1")
                os.close(ready_w)
                ready_w = -1
    finally:
        _close(ready_w)
    return records, error


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def _parse(records: bytes) -> tuple[int, list[str], str | None, bool]:
    pid = 0
    created: list[str] = []
    failure: str | None = None
    namespace = False
    for record in records.split(b"\0"):
        kind, body = record[:1], record[1:]
        if kind == b"P":
            pid = int(body)
        elif kind == b"C":
            created.append(os.fsdecode(body))
        elif kind == b"E":
            failure = body.decode(errors="replace")
        elif kind == b"N":
            namespace = True
    return pid, created, failure, namespace


def exec_failure(records: bytes, command: str) -> CommandNotStarted | None:
    """The error for the ``X<code>:<reason>`` record of a failed exec, if any."""
    found = [r for r in records.split(b"\0") if r[:1] == b"X"]
    if not found:
        return None
    code, _, reason_b = found[-1][1:].partition(b":")
    reason = reason_b.decode(errors="replace")
    return CommandNotStarted(
        f'exec: "{command}": {reason}',
        command=command,
        reason=reason,
        exit_code=int(code),
    )


def _pipe_above_stdio() -> tuple[int, int]:
    # A caller with a closed stdin or stdout would get the status pipe as
    # fd 0 or 1, which the child's stdio set-up would then overwrite.
    read_end, write_end = os.pipe()
    if min(read_end, write_end) >= 3:
        return read_end, write_end
    moved = (
        fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, 3),
        fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, 3),
    )
    os.close(read_end)
    os.close(write_end)
    return moved
