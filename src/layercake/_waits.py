"""Readiness waits that never hang.

Each wait polls until its condition holds, its time runs out, or the
container exits, whichever comes first, and says which with the container's
exit code and last log lines, so a failing fixture explains itself.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from layercake.errors import ContainerError, ContainerTimeout

if TYPE_CHECKING:
    from layercake._container import Container

__all__ = ["exit_status", "log_tail", "wait_for_log"]

_POLL_SECONDS = 0.02
_TAIL_LINES = 20


def log_tail(container: Container, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` lines the container wrote, stdout then stderr."""
    text = container.logs().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def exit_status(container: Container) -> int | None:
    """The exit code of a started container, or ``None`` while it runs."""
    try:
        return container.wait(timeout=0)
    except ContainerTimeout:
        return None


def wait_for_log(
    container: Container, pattern: str, *, timeout: float = 30.0
) -> re.Match[str]:
    """Wait until the container's output matches the regular expression.

    Returns:
        The first match in the output.

    Raises:
        ContainerError: the container exited before its output matched.
        ContainerTimeout: no match within ``timeout`` seconds.
    """
    regex = re.compile(pattern, re.MULTILINE)
    deadline = time.monotonic() + timeout

    while True:
        # Read the exit status first: output written before the exit is then
        # surely in the logs that are read next.
        code = exit_status(container)
        match = regex.search(container.logs().decode("utf-8", "replace"))
        if match is not None:
            return match
        if code is not None:
            raise ContainerError(
                f"container {container.short_id} exited with code {code} before "
                f"its output matched {pattern!r}; last output:\n{log_tail(container)}",
                container_id=container.id,
            )
        if time.monotonic() >= deadline:
            raise ContainerTimeout(
                f"container {container.short_id}: output did not match {pattern!r} "
                f"within {timeout:g}s; last output:\n{log_tail(container)}",
                timeout=timeout,
                container_id=container.id,
            )
        time.sleep(_POLL_SECONDS)
