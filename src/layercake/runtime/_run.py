"""Run a container to completion, capturing its output."""

from __future__ import annotations

import errno
import os
import select
import time
from collections.abc import Callable
from typing import Literal, Protocol

from layercake.errors import ContainerError, ContainerTimeout

from ._enter import enter
from ._sandbox import start
from ._spec import ProcessSpec, RunResult, SandboxSpec

__all__ = ["Supervised", "collect", "read_chunk", "run", "run_in", "write_all"]

OutputCallback = Callable[[Literal["stdout", "stderr"], bytes], None]


class Supervised(Protocol):
    """A started container that can be waited for and killed.

    ``terminal`` is the master of its pseudo terminal, if it has one.
    """

    terminal: int | None

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

    A process with a terminal (``ProcessSpec.terminal``) writes everything
    to it: the result's ``stdout`` holds it all, with the terminal's
    ``\r\n`` line ends, and ``stderr`` is empty. ``stdin`` is then typed
    into the terminal: its line discipline echoes it and acts on control
    characters (``\x03`` interrupts, ``\x04`` at a line start ends input).

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
        terminal=spec.process.terminal,
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
        terminal=process.terminal,
    )


Starter = Callable[[int | None, int | None, int | None], Supervised]


def collect(
    starter: Starter,
    stdin: bytes | None,
    on_output: OutputCallback | None,
    timeout: float | None,
    *,
    terminal: bool = False,
) -> RunResult:
    """Start a container with ``starter(stdin, stdout, stderr)`` and run it out.

    Output, ``stdin`` and ``timeout`` work as in :func:`run`; with
    ``terminal`` the process has one (the starter gets no descriptors) and
    its master is read and written instead of pipes.
    """
    if terminal:
        sandbox, sources, in_w = _start_with_terminal(starter, stdin)
    else:
        sandbox, sources, in_w = _start_with_pipes(starter, stdin)

    ended = False
    try:
        outputs = _pump(sources, in_w, stdin or b"", on_output, timeout)
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


Sources = dict[int, Literal["stdout", "stderr"]]


def _start_with_pipes(
    starter: Starter, stdin: bytes | None
) -> tuple[Supervised, Sources, int | None]:
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
    return sandbox, {out_r: "stdout", err_r: "stderr"}, in_w


def _start_with_terminal(
    starter: Starter, stdin: bytes | None
) -> tuple[Supervised, Sources, int | None]:
    sandbox = starter(None, None, None)
    master = sandbox.terminal
    if master is None:
        sandbox.kill()
        sandbox.wait()
        raise ContainerError("the container's process got no terminal")
    # Non-blocking, so input waiting for the process never holds up output.
    os.set_blocking(master, False)
    return sandbox, {master: "stdout"}, os.dup(master) if stdin else None


def _pump(
    sources: Sources,
    in_w: int | None,
    data: bytes,
    on_output: OutputCallback | None,
    timeout: float | None,
) -> tuple[bytes, bytes] | None:
    """Move bytes until every output ends; return them, or None on timeout."""
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    poller = select.poll()
    for fd in sources:
        poller.register(fd, select.POLLIN)
    if in_w is not None:
        if data:
            os.set_blocking(in_w, False)
            poller.register(in_w, select.POLLOUT)
        else:
            os.close(in_w)
            in_w = None
    open_fds = set(sources)
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
                chunk = read_chunk(fd)
                if chunk is None:
                    continue
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                chunks[sources[fd]].append(chunk)
                if on_output is not None:
                    on_output(sources[fd], chunk)
        return b"".join(chunks["stdout"]), b"".join(chunks["stderr"])
    finally:
        _close(*sources, in_w)


def read_chunk(fd: int) -> bytes | None:
    """Read what non-blocking ``fd`` has: b"" at its end, None if nothing yet.

    A terminal's master counts as ended once every slave is closed (EIO).

    Raises:
        OSError: any other read error.
    """
    try:
        return os.read(fd, _CHUNK)
    except BlockingIOError:
        return None
    except OSError as error:
        if error.errno == errno.EIO:
            return b""
        raise


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, waiting while it is full.

    Stops quietly when the reader has gone (EPIPE, or EIO from a terminal
    whose other side closed): there is no one left to deliver to.

    Raises:
        OSError: any other write error.
    """
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])
        except OSError as error:
            if error.errno in (errno.EIO, errno.EPIPE):
                return
            raise


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
