"""The monitor: a small process that supervises one started container.

:func:`launch` double-forks it (no interpreter start-up, so it is ready in
about a millisecond): it starts the container, records its state in the
container's directory, writes its output to ``container-json.log`` as JSON
lines (``{"log", "stream", "time"}``, Docker's json-file format), and
records the exit code and end time when the container ends. Each time the
process ends, the container's restart policy decides whether the monitor
starts it again (after Docker's back-off), in the same writable layer,
volumes, cgroup and published ports, appending to the same log. A
container with a terminal has its master held by the monitor, and its output
logged as ``stdout``. Every container's monitor serves clients that attach
to it (see :mod:`layercake._attach`).

Attached (``detach=False``) the container still dies with the process that
started it, through the runtime's lifeline; detached, it outlives that
process and ends only when it exits or is stopped.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import attrs

from layercake import runtime
from layercake._attach_socket import SocketPlace, listen
from layercake._container_log import LogWriter, relay_output
from layercake._container_state import (
    LOG_FILE,
    STOP_FILE,
    ContainerState,
    now,
    process_start_time,
    read_state,
    write_state,
)
from layercake._container_tty import relay_terminal
from layercake._ports import Forwarder, Published
from layercake._restart_policy import NO_RESTART, Backoff, RestartPolicy
from layercake.errors import CommandNotStarted, ContainerError
from layercake.runtime import Cgroup, SandboxSpec

if TYPE_CHECKING:
    import socket

    from layercake._attach import AttachServer

__all__ = ["launch"]

_MAX_FD = 1 << 20
# How often a back-off wait looks for a stop request.
_STOP_POLL_MS = 50


def launch(
    spec: SandboxSpec,
    directory: Path,
    *,
    detach: bool,
    cgroup: Cgroup | None = None,
    warnings: tuple[str, ...] = (),
    ports: tuple[Published, ...] = (),
    executor: str = "builtin",
    configure_network: Callable[[int], None] | None = None,
    restart: RestartPolicy = NO_RESTART,
    after_exit: int | None = None,
    stdin_open: bool = False,
    remove: Callable[[], None] | None = None,
) -> ContainerState:
    """Start ``spec`` under a monitor process; return once it runs.

    ``executor`` is ``"builtin"`` or the OCI runtime (``"runc"``) to run it.
    ``configure_network`` is passed to :func:`layercake.runtime.start`, for
    each run. ``restart`` is the policy the monitor applies each time the process
    ends. With ``after_exit`` the first run happened elsewhere (attached)
    and ended with that code, which the policy restarts: the monitor begins
    with the back-off instead of a start. With ``stdin_open`` the process's
    stdin is a pipe the monitor keeps open. ``remove``, if given, is called
    once the container has ended for good (``docker run --rm -d``), in a
    process of its own after the monitor has exited, so that whoever waits
    for the monitor (a stop holding the lifecycle lock) is done first.

    Raises:
        CommandNotStarted: the command could not be executed.
        ContainerError: the container could not be started; the message
            says why.
    """
    ready_r, ready_w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(ready_r)
            os.setsid()
            if os.fork() == 0:
                started = ContainerState(
                    status="running",
                    cgroup_version=cgroup.version if cgroup else 0,
                    cgroup_paths=cgroup.paths if cgroup else (),
                    warnings=warnings,
                )
                runs = _Runs(
                    spec, directory, detach, cgroup, executor, configure_network
                )
                runs.stdin_open = stdin_open
                _monitor(runs, ready_w, started, ports, restart, after_exit, remove)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.waitpid(middle, 0)
    with open(ready_r, "rb", buffering=0, closefd=True) as ready:
        answer = ready.readall()
    if answer.startswith(_NOT_STARTED):
        code, command, reason = answer[1:].decode(errors="replace").split("\0")
        raise CommandNotStarted(
            f'exec: "{command}": {reason}',
            command=command,
            reason=reason,
            exit_code=int(code),
        )
    if answer != b"ok":
        reason = answer.decode(errors="replace") or "the monitor process died"
        raise ContainerError(reason)
    return read_state(directory)


# Starts the monitor's answer for a command that could not be executed.
_NOT_STARTED = b"\0"


def _failure(error: Exception) -> bytes:
    """The monitor's answer for a failed first start."""
    if isinstance(error, CommandNotStarted):
        fields = (str(error.exit_code), error.command, error.reason)
        return _NOT_STARTED + "\0".join(fields).encode(errors="replace")
    return str(error).encode()


def _monitor(
    runs: _Runs,
    ready_w: int,
    started: ContainerState,
    ports: tuple[Published, ...],
    restart: RestartPolicy,
    after_exit: int | None,
    remove: Callable[[], None] | None,
) -> NoReturn:
    code = 0
    try:
        null = os.open("/dev/null", os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)
        runtime.release_lifeline(detach=runs.detach)
        # Inherited pipe ends would keep the starter's other pipes from ending.
        _close_all_but(ready_w, runtime.lifeline(), *runtime.lifeline_owned())

        try:
            runs.forwarder = Forwarder(ports)
        except OSError as error:
            os.write(ready_w, (error.strerror or str(error)).encode())
            os._exit(1)
        me = os.getpid()
        state = attrs.evolve(
            started,
            monitor_pid=me,
            monitor_start=process_start_time(me) or 0,
            ports=runs.forwarder.bound,
        )
        if after_exit is None:
            try:
                state = runs.start(state)
            except Exception as error:  # noqa: BLE001 - reported to the starter
                os.write(ready_w, _failure(error))
                os._exit(1)
        else:
            attached = read_state(runs.directory)
            state = attrs.evolve(state, started_at=attached.started_at)
            state = runs.ended(state, after_exit, restarting=True)
        os.write(ready_w, b"ok")
        os.close(ready_w)

        _supervise(runs, state, restart, after_exit)
        runs.forwarder.close()
        if remove is not None and os.fork() == 0:
            _remove_and_exit(remove)
    except BaseException:  # noqa: BLE001 - a forked monitor must never return
        code = 1
    os._exit(code)


def _remove_and_exit(remove: Callable[[], None]) -> NoReturn:
    # The remover's output goes to /dev/null, as the monitor's does: a
    # failure leaves the container for rm or prune, as an exited one.
    code = 0
    try:
        remove()
    except BaseException:  # noqa: BLE001 - a forked remover must never return
        code = 1
    os._exit(code)


def _supervise(
    runs: _Runs, state: ContainerState, policy: RestartPolicy, ended: int | None
) -> None:
    """Wait for each run to end and restart it while the policy says so."""
    backoff = Backoff()
    ran_for = 0.0
    while True:
        if ended is None:
            exit_code, ran_for = runs.wait()
        else:
            exit_code, ended = ended, None
        restart = (
            policy.should_restart(exit_code, state.restart_count, runs.stop_requested())
            and not runs.starter_gone()
        )
        state = runs.ended(state, exit_code, restarting=restart)
        if not restart:
            return
        if not runs.sleep(backoff.delay(ran_for)):
            runs.give_up(state)
            return
        try:
            state = runs.start(
                attrs.evolve(state, restart_count=state.restart_count + 1)
            )
        except Exception as error:  # noqa: BLE001 - recorded in the state
            runs.give_up(state, str(error))
            return


class _Runs:
    """Starts the container's process again and again, and records each run."""

    def __init__(
        self,
        spec: SandboxSpec,
        directory: Path,
        detach: bool,
        cgroup: Cgroup | None,
        executor: str,
        configure_network: Callable[[int], None] | None,
    ) -> None:
        self.spec = spec
        self.configure_network = configure_network
        self.directory = directory
        self.detach = detach
        self.cgroup = cgroup
        self.executor = executor
        self.forwarder = Forwarder(())
        self._sandbox: runtime.Sandbox | runtime.OciProcess | None = None
        self._streams = (-1, -1)
        self._terminal: int | None = None
        self.stdin_open = False
        # Held open and never written: the process waits for input as it
        # would on an idle terminal.
        self._stdin_held: int | None = None
        # Clients attach through a socket: bound before the first start is
        # reported, served (threads and all) only after it.
        self._listening: tuple[socket.socket, SocketPlace] | None = None
        self._server: AttachServer | None = None
        self._started = 0.0
        self._oom_kills = 0
        self._watching = False

    def start(self, state: ContainerState) -> ContainerState:
        """Start the process, record it as running and forward ports to it.

        Raises:
            Exception: whatever the runtime raised when the start failed.
        """
        if self._server is None and self._listening is None:
            self._listening = listen(self.directory)
        # The cgroup counts OOM kills over all runs; this run's are the new ones.
        self._oom_kills = self.cgroup.oom_kills() if self.cgroup is not None else 0
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r = None
        if self.stdin_open:
            if self._stdin_held is not None:
                os.close(self._stdin_held)
            in_r, self._stdin_held = os.pipe()
        try:
            sandbox: runtime.Sandbox | runtime.OciProcess
            if self.executor == "builtin":
                sandbox = runtime.start(
                    self.spec,
                    stdin=in_r,
                    stdout=out_w,
                    stderr=err_w,
                    configure_network=self.configure_network,
                )
            else:
                sandbox = runtime.start_oci(
                    self.spec,
                    self.executor,
                    stdin=in_r,
                    stdout=out_w,
                    stderr=err_w,
                    configure_network=self.configure_network,
                )
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
            if in_r is not None:
                os.close(in_r)
        self._sandbox = sandbox
        self._streams = (out_r, err_r)
        self._terminal = sandbox.terminal
        if self._server is not None:
            self._server.set_run(self._stdin_held, self._terminal)
        self._started = time.monotonic()
        if self.executor != "builtin" and not self.detach and not self._watching:
            # The OCI runtime does not watch the starter's lifeline: this
            # thread does.
            self._watching = True
            threading.Thread(target=self._kill_when_lifeline_ends, daemon=True).start()
        state = attrs.evolve(
            state,
            status="running",
            restarting=False,
            pid=sandbox.pid,
            pid_start=process_start_time(sandbox.pid) or 0,
            exit_code=0,
            started_at=now(),
        )
        if state.ports:
            try:
                self.forwarder.serve(sandbox.pid)
            except OSError:
                # The container already ended: there is nothing to forward
                # to, and its exit is recorded like any other.
                pass
        write_state(self.directory, state)
        if self.stop_requested():
            # Stopped while this run was starting: the user who stopped it
            # may have read the state before it named this process.
            sandbox.kill()
        return state

    def wait(self) -> tuple[int, float]:
        """Log the run's output until it ends; its exit code and seconds run."""
        if self._sandbox is None:
            raise ContainerError("no run was started")
        self._serve_attach()
        _write_log(
            self.directory / LOG_FILE, *self._streams, self._terminal, self._server
        )
        exit_code = self._sandbox.wait()
        return exit_code, time.monotonic() - self._started

    def _serve_attach(self) -> None:
        """Accept the clients that attach (or waited to) from now on."""
        if self._listening is None:
            return
        from layercake._attach import AttachServer

        self._server = AttachServer(*self._listening)
        self._listening = None
        self._server.set_run(self._stdin_held, self._terminal)

    def ended(
        self, state: ContainerState, exit_code: int, *, restarting: bool
    ) -> ContainerState:
        """Record a run's end: exited, or restarting while the back-off runs."""
        state = attrs.evolve(
            state,
            status="running" if restarting else "exited",
            restarting=restarting,
            pid=0 if restarting else state.pid,
            pid_start=0 if restarting else state.pid_start,
            exit_code=exit_code,
            finished_at=now(),
            oom_killed=self.cgroup is not None
            and self.cgroup.oom_kills() > self._oom_kills,
        )
        write_state(self.directory, state)
        return state

    def give_up(self, state: ContainerState, error: str = "") -> None:
        """Record a container left restarting as exited, with what went wrong."""
        write_state(
            self.directory,
            attrs.evolve(state, status="exited", restarting=False, error=error),
        )

    def stop_requested(self) -> bool:
        """Whether the user stopped or killed the container."""
        return (self.directory / STOP_FILE).exists()

    def starter_gone(self) -> bool:
        """Whether a container not detached lost the process it dies with."""
        poller = select.poll()
        poller.register(runtime.lifeline(), select.POLLIN)
        return bool(poller.poll(0))

    def sleep(self, seconds: float) -> bool:
        """Wait out a back-off; False as soon as a restart is no longer wanted."""
        deadline = time.monotonic() + seconds
        poller = select.poll()
        poller.register(runtime.lifeline(), select.POLLIN)
        while (left := deadline - time.monotonic()) > 0:
            if self.stop_requested() or poller.poll(min(left * 1000, _STOP_POLL_MS)):
                return False
        return not self.stop_requested()

    def _kill_when_lifeline_ends(self) -> None:
        poller = select.poll()
        poller.register(runtime.lifeline(), select.POLLIN)
        poller.poll()
        if self._sandbox is not None:
            self._sandbox.kill()


def _close_all_but(*keep: int) -> None:
    low = 3
    for fd in sorted(f for f in keep if f >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _MAX_FD)


def _write_log(
    path: Path,
    out_r: int,
    err_r: int,
    terminal: int | None,
    server: AttachServer | None,
) -> None:
    """Copy both streams (or the terminal) into the log, one JSON object per
    line, and to attached clients, until they end."""
    log = LogWriter(path)
    if server is not None:
        from layercake._attach import BroadcastLog

        log = BroadcastLog(path, server)
    try:
        if terminal is not None:
            os.close(out_r)
            os.close(err_r)
            relay_terminal(terminal, None, None, log)
        else:
            relay_output(out_r, err_r, (None, None), log)
    finally:
        log.close()
        if server is not None:
            server.set_run(None, None)
            server.hang_up()
