"""The monitor: a small process that supervises one started container.

:func:`launch` double-forks it (no interpreter start-up, so it is ready in
about a millisecond): it starts the container, records its state in the
container's directory, writes its output to ``container-json.log`` as JSON
lines (``{"log", "stream", "time"}``, Docker's json-file format), and
records the exit code and end time when the container ends.

Attached (``detach=False``) the container still dies with the process that
started it, through the runtime's lifeline; detached, it outlives that
process and ends only when it exits or is stopped.
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import attrs

from layercake import runtime
from layercake._container_log import LogWriter, relay_output
from layercake._container_state import (
    LOG_FILE,
    ContainerState,
    now,
    process_start_time,
    read_state,
    write_state,
)
from layercake._ports import Forwarder, Published
from layercake.errors import ContainerError
from layercake.runtime import Cgroup, SandboxSpec

__all__ = ["launch"]

_MAX_FD = 1 << 20


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
) -> ContainerState:
    """Start ``spec`` under a monitor process; return once it runs.

    ``executor`` is ``"builtin"`` or the OCI runtime (``"runc"``) to run it.
    ``configure_network`` is passed to :func:`layercake.runtime.start`.

    Raises:
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
                _monitor(
                    spec,
                    directory,
                    detach,
                    ready_w,
                    started,
                    cgroup,
                    ports,
                    executor,
                    configure_network,
                )
        finally:
            os._exit(0)
    os.close(ready_w)
    os.waitpid(middle, 0)
    with open(ready_r, "rb", buffering=0, closefd=True) as ready:
        answer = ready.readall()
    if answer != b"ok":
        reason = answer.decode(errors="replace") or "the monitor process died"
        raise ContainerError(reason)
    return read_state(directory)


def _monitor(
    spec: SandboxSpec,
    directory: Path,
    detach: bool,
    ready_w: int,
    started: ContainerState,
    cgroup: Cgroup | None,
    ports: tuple[Published, ...],
    executor: str,
    configure_network: Callable[[int], None] | None,
) -> NoReturn:
    code = 0
    try:
        null = os.open("/dev/null", os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)
        runtime.release_lifeline(detach=detach)
        # Inherited pipe ends would keep the starter's other pipes from ending.
        _close_all_but(ready_w, runtime.lifeline(), *runtime.lifeline_owned())

        try:
            forwarder = Forwarder(ports)
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            os.write(ready_w, f"cannot publish ports: {reason}".encode())
            os._exit(1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            sandbox: runtime.Sandbox | runtime.OciProcess
            if executor == "builtin":
                sandbox = runtime.start(
                    spec,
                    stdout=out_w,
                    stderr=err_w,
                    configure_network=configure_network,
                )
            else:
                sandbox = runtime.start_oci(spec, executor, stdout=out_w, stderr=err_w)
                if not detach:
                    # The OCI runtime does not watch the starter's lifeline:
                    # this thread does.
                    threading.Thread(
                        target=_kill_when_lifeline_ends, args=(sandbox,), daemon=True
                    ).start()
        except Exception as error:  # noqa: BLE001 - reported to the starter
            os.write(ready_w, str(error).encode())
            os._exit(1)
        os.close(out_w)
        os.close(err_w)
        me = os.getpid()
        state = attrs.evolve(
            started,
            pid=sandbox.pid,
            pid_start=process_start_time(sandbox.pid) or 0,
            monitor_pid=me,
            monitor_start=process_start_time(me) or 0,
            started_at=now(),
            ports=forwarder.bound,
        )
        if ports:
            try:
                forwarder.serve(sandbox.pid)
            except OSError:
                # The container already ended: there is nothing to forward
                # to, and its exit is recorded below like any other.
                forwarder.close()
        write_state(directory, state)
        os.write(ready_w, b"ok")
        os.close(ready_w)

        _write_log(directory / LOG_FILE, out_r, err_r)
        exit_code = sandbox.wait()
        write_state(
            directory,
            attrs.evolve(
                state,
                status="exited",
                exit_code=exit_code,
                finished_at=now(),
                oom_killed=cgroup is not None and cgroup.oom_killed(),
            ),
        )
    except BaseException:  # noqa: BLE001 - a forked monitor must never return
        code = 1
    os._exit(code)


def _kill_when_lifeline_ends(sandbox: runtime.OciProcess) -> None:
    poller = select.poll()
    poller.register(runtime.lifeline(), select.POLLIN)
    poller.poll()
    sandbox.kill()


def _close_all_but(*keep: int) -> None:
    low = 3
    for fd in sorted(f for f in keep if f >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, _MAX_FD)


def _write_log(path: Path, out_r: int, err_r: int) -> None:
    """Copy both streams into the log, one JSON object per line, until both end."""
    log = LogWriter(path)
    try:
        relay_output(out_r, err_r, (None, None), log)
    finally:
        log.close()
