"""Run a container to completion, capturing its output."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from typing import Literal, Protocol

from layercake.errors import ContainerTimeout

from ._enter import enter
from ._sandbox import start
from ._spec import ProcessSpec, RunResult, SandboxSpec

__all__ = ["Supervised", "collect", "run", "run_in"]

OutputCallback = Callable[[Literal["stdout", "stderr"], bytes], None]


class Supervised(Protocol):
    """A started container that can be waited for and killed."""

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end and return the exit code."""
        ...

    def kill(self) -> None:
        """End the container at once."""
        ...


_CHUNK = 65536
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR


def run(
    spec: SandboxSpec,
    *,
    stdin: bytes | None = None,
    on_output: OutputCallback | None = None,
    timeout: float | None = None,
) -> RunResult:
    """Run ``spec``'s process in a new container and wait for it to end.

    Both output streams are captured; each chunk is also passed to
    ``on_output`` as it arrives. ``stdin`` is written to the process's
    standard input, which is /dev/null when it is ``None``.

    Raises:
        ContainerConfigError: the spec cannot work.
        ContainerError: the container could not be set up.
        ContainerTimeout: it ran longer than ``timeout`` seconds; it was
            killed, with every process in it, before this was raised.
    """
    return collect(
        lambda i, o, e: start(spec, stdin=i, stdout=o, stderr=e, direct=True),
        stdin,
        on_output,
        timeout,
    )


def run_in(
    pid: int,
    process: ProcessSpec,
    *,
    stdin: bytes | None = None,
    on_output: OutputCallback | None = None,
    timeout: float | None = None,
    cgroup_procs: tuple[str, ...] = (),
) -> RunResult:
    """Run ``process`` in the running container ``pid`` and wait for it to end.

    Output, ``stdin`` and ``timeout`` work as in :func:`run`; see
    :func:`layercake.runtime.enter` for how the process joins the container.

    Raises:
        ContainerConfigError: the process spec cannot work.
        ContainerError: the container is not running or could not be joined.
        ContainerTimeout: it ran longer than ``timeout`` seconds and was killed.
    """
    return collect(
        lambda i, o, e: enter(
            pid, process, stdin=i, stdout=o, stderr=e, cgroup_procs=cgroup_procs
        ),
        stdin,
        on_output,
        timeout,
    )


def collect(
    starter: Callable[[int | None, int, int], Supervised],
    stdin: bytes | None,
    on_output: OutputCallback | None,
    timeout: float | None,
) -> RunResult:
    """Start a container with ``starter(stdin, stdout, stderr)`` and run it out.

    Output, ``stdin`` and ``timeout`` work as in :func:`run`.
    """
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r = in_w = None
    if stdin is not None:
        in_r, in_w = os.pipe()
    try:
        sandbox = starter(in_r, out_w, err_w)
    except BaseException:
        _close(out_r, err_r, in_w)
        raise
    finally:
        _close(out_w, err_w, in_r)

    ended = False
    try:
        outputs = _pump(out_r, err_r, in_w, stdin or b"", on_output, timeout)
        if outputs is None:
            sandbox.kill()
            sandbox.wait()
            ended = True
            raise ContainerTimeout(
                f"container timed out after {timeout:g} seconds and was killed",
                timeout=timeout or 0.0,
            )
        exit_code = sandbox.wait()
        ended = True
        return RunResult(exit_code, outputs[0], outputs[1])
    finally:
        if not ended:
            sandbox.kill()
            sandbox.wait()


def _pump(
    out_r: int,
    err_r: int,
    in_w: int | None,
    data: bytes,
    on_output: OutputCallback | None,
    timeout: float | None,
) -> tuple[bytes, bytes] | None:
    """Move bytes until both outputs end; return them, or None on timeout."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    names: dict[int, Literal["stdout", "stderr"]] = {out_r: "stdout", err_r: "stderr"}
    poller = select.poll()
    poller.register(out_r, select.POLLIN)
    poller.register(err_r, select.POLLIN)
    if in_w is not None:
        if data:
            os.set_blocking(in_w, False)
            poller.register(in_w, select.POLLOUT)
        else:
            os.close(in_w)
            in_w = None
    open_fds = {out_r, err_r}
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while open_fds:
            wait_ms = None
            if deadline is not None:
                wait_ms = (deadline - time.monotonic()) * 1000
                if wait_ms <= 0:
                    return None
            for fd, event in poller.poll(wait_ms):
                if fd == in_w:
                    data = _feed(in_w, data, event)
                    if not data:
                        poller.unregister(in_w)
                        os.close(in_w)
                        in_w = None
                    continue
                if not event & _READABLE:
                    continue
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                chunks[fd].append(chunk)
                if on_output is not None:
                    on_output(names[fd], chunk)
        return b"".join(chunks[out_r]), b"".join(chunks[err_r])
    finally:
        _close(out_r, err_r, in_w)


def _feed(fd: int, data: bytes, event: int) -> bytes:
    if not event & select.POLLOUT:
        return b""
    try:
        written = os.write(fd, data[:_CHUNK])
    except BlockingIOError:
        return data
    except BrokenPipeError:
        return b""
    return data[written:]


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
