"""Readiness waits that never hang.

Each wait polls until its condition holds, its time runs out, or the
container exits, whichever comes first, and says which with the container's
exit code and last log lines, so a failing fixture explains itself:

- :func:`wait_for_log`: the output matches a regular expression;
- :func:`wait_for_port`: a published TCP port accepts connections;
- :func:`wait_for_http`: a published port answers an HTTP GET with a status;
- :func:`wait_for_command`: a command run in the container exits 0;
- :func:`wait_for_healthcheck`: the image's HEALTHCHECK passes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from layercake._ports import accepts
from layercake.errors import (
    CommandNotStarted,
    ContainerConfigError,
    ContainerError,
    ContainerTimeout,
)

if TYPE_CHECKING:
    from layercake._container import Container
    from layercake.runtime import RunResult

__all__ = [
    "exit_status",
    "last_output",
    "log_tail",
    "wait_for_command",
    "wait_for_healthcheck",
    "wait_for_http",
    "wait_for_log",
    "wait_for_port",
]

T = TypeVar("T")

_POLL_SECONDS = 0.02
_PROBE_SECONDS = 0.1
_TAIL_LINES = 20

# What a shell reports for a command it cannot execute or cannot find.
_CANNOT_RUN = {126: "cannot be executed", 127: "was not found"}


def log_tail(container: Container, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` lines the container wrote, stdout then stderr."""
    text = container.logs().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def last_output(container: Container) -> str:
    """``last output:`` and the log tail, or ``last output: (none)``."""
    tail = log_tail(container)
    return f"last output:\n{tail}" if tail else "last output: (none)"


def _check_timeout(timeout: float) -> None:
    if timeout < 0:
        raise ContainerConfigError(f"timeout must not be negative, not {timeout:g}")


def exit_status(container: Container) -> int | None:
    """The exit code of a started container, or ``None`` while it runs."""
    try:
        return container.wait(timeout=0)
    except ContainerTimeout:
        return None


def _poll(
    container: Container,
    check: Callable[[], T | None],
    what: str,
    *,
    timeout: float,
    interval: float,
    last_check: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` until it returns a value, the time is up or the container
    exits.

    ``last_check`` says what the last failed check printed, for the timeout
    message.

    Raises:
        ContainerConfigError: ``timeout`` is negative.
        ContainerError: the container exited first.
        ContainerTimeout: ``timeout`` seconds passed.
    """
    _check_timeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        # Read the exit status first: whatever the container did before it
        # exited is then surely visible to the check that follows.
        code = exit_status(container)
        result = check()
        if result is not None:
            return result
        if code is not None:
            raise ContainerError(
                f"container {container.short_id} exited with code {code} before "
                f"{what}; {last_output(container)}",
                container_id=container.id,
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            checked = "" if last_check is None else last_check()
            raise ContainerTimeout(
                f"container {container.short_id}: no sign within {timeout:g}s that "
                f"{what}; {checked}{last_output(container)}",
                timeout=timeout,
                container_id=container.id,
            )
        time.sleep(min(interval, remaining))


def wait_for_log(
    container: Container, pattern: str, *, timeout: float = 30.0
) -> re.Match[str]:
    """Wait until the container's output matches the regular expression.

    Returns:
        The first match in the output.

    Raises:
        ContainerConfigError: ``pattern`` is not a regular expression, or
            ``timeout`` is negative.
        ContainerError: the container exited before its output matched.
        ContainerTimeout: no match within ``timeout`` seconds.
    """
    try:
        regex = re.compile(pattern, re.MULTILINE)
    except re.error as error:
        raise ContainerConfigError(
            f"invalid regular expression {pattern!r}: {error}"
        ) from None

    def check() -> re.Match[str] | None:
        return regex.search(container.logs().decode("utf-8", "replace"))

    return _poll(
        container,
        check,
        f"its output matched {pattern!r}",
        timeout=timeout,
        interval=_POLL_SECONDS,
    )


def wait_for_port(container: Container, port: int, *, timeout: float = 30.0) -> int:
    """Wait until something in the container listens on a published TCP port.

    The probe connects to the port inside the container's own network, so
    it succeeds only once the service listens (the host-side forwarder
    accepts connections from the start).

    Returns:
        The host port on 127.0.0.1.

    Raises:
        ContainerConfigError: ``timeout`` is negative.
        ContainerError: the port is not published, or the container exited.
        ContainerTimeout: nothing listened within ``timeout``.
    """
    _check_timeout(timeout)
    host_port = container.host_port(port)
    number = int(str(port).partition("/")[0])

    def check() -> int | None:
        pid = container.pid
        if pid is not None and accepts(pid, number):
            return host_port
        return None

    return _poll(
        container,
        check,
        f"port {port} accepted connections",
        timeout=timeout,
        interval=_PROBE_SECONDS,
    )


def wait_for_http(
    container: Container,
    port: int,
    *,
    path: str = "/",
    status: int = 200,
    timeout: float = 30.0,
) -> int:
    """Wait until ``GET path`` on a published port answers with ``status``.

    Returns:
        The host port on 127.0.0.1.

    Raises:
        ContainerConfigError: ``timeout`` is negative.
        ContainerError: the port is not published, or the container exited.
        ContainerTimeout: no such answer within ``timeout`` seconds.
    """
    _check_timeout(timeout)
    host_port = container.host_port(port)

    def check() -> int | None:
        import http.client  # only HTTP waits need it; start-up does not

        connection = http.client.HTTPConnection("127.0.0.1", host_port, timeout=2)
        try:
            connection.request("GET", path)
            answered = connection.getresponse().status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()
        return host_port if answered == status else None

    return _poll(
        container,
        check,
        f"GET {path} on port {port} answered {status}",
        timeout=timeout,
        interval=_PROBE_SECONDS,
    )


def wait_for_command(
    container: Container,
    args: Sequence[str],
    *,
    timeout: float = 30.0,
    interval: float = _PROBE_SECONDS,
) -> None:
    """Wait until ``args``, run in the container, exits 0.

    Raises:
        ContainerConfigError: ``timeout`` is negative.
        ContainerError: the container exited first, or the command cannot
            run at all (it exits 126 or 127, as a shell does then).
        ContainerTimeout: the command did not succeed within ``timeout``.
    """
    command = list(args)
    last: list[RunResult] = []

    def check() -> bool | None:
        try:
            result = container.exec(command)
        except CommandNotStarted as error:
            raise ContainerError(
                f"{command!r} cannot run in container {container.short_id}: "
                f"{error} (exit code {error.exit_code})",
                container_id=container.id,
            ) from None
        except ContainerError:
            # It exited in the meantime; the next round reports that.
            return None
        last[:] = [result]
        if result.exit_code in _CANNOT_RUN:
            raise ContainerError(
                f"{command!r} {_CANNOT_RUN[result.exit_code]} in container "
                f"{container.short_id}: the command cannot run (exit code "
                f"{result.exit_code}); its output: {_output(result)}",
                container_id=container.id,
            )
        return True if result.exit_code == 0 else None

    def last_check() -> str:
        if not last:
            return ""
        return (
            f"last check exited {last[0].exit_code} with output: {_output(last[0])}; "
        )

    _poll(
        container,
        check,
        f"{command!r} exited 0",
        timeout=timeout,
        interval=interval,
        last_check=last_check,
    )


def _output(result: RunResult) -> str:
    text = (result.stdout + result.stderr).decode("utf-8", "replace").strip()
    return text or "(none)"


def wait_for_healthcheck(container: Container, *, timeout: float = 60.0) -> None:
    """Wait until the image's HEALTHCHECK command passes.

    The check runs at the image's interval, capped so that a fast service
    is seen fast.

    Raises:
        ContainerConfigError: the image has no HEALTHCHECK (or NONE).
        ContainerError: the container exited first.
        ContainerTimeout: the check did not pass within ``timeout``.
    """
    check = container.image.config.config.healthcheck
    if check is None or not check.test or check.test[0] == "NONE":
        raise ContainerConfigError(
            f"image {container.image.short_id} has no HEALTHCHECK to wait for"
        )
    kind, *rest = check.test
    args = ["/bin/sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest
    interval = min(check.interval / 1e9, 1.0) if check.interval else 0.5
    wait_for_command(container, args, timeout=timeout, interval=interval)
