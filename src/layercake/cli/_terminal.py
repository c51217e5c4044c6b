"""The caller's terminal for ``run -it`` and ``exec -it``: raw mode, window size.

As the docker client does, the caller's terminal is put in raw mode while
the container's terminal is attached, so every key (Ctrl-C included) goes
to the container, whose own terminal echoes and interprets it; the mode is
restored however the command ends. Window changes (SIGWINCH) are passed on.
"""

from __future__ import annotations

import errno
import os
import signal
import termios
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from layercake.errors import LayercakeError

__all__ = [
    "check_input",
    "detach_keys",
    "raw_terminal",
    "terminal_hung_up",
    "window_size",
]

# The process's own descriptors, as docker reads them: sys.stdin may be
# replaced (by a test harness) while fd 0 stays the caller's input.
_STDIN = 0
_STDOUT = 1


def check_input(interactive: bool, terminal: bool) -> None:
    """Refuse ``-it`` when stdin is not a terminal, with docker's message.

    Raises:
        LayercakeError: ``-i`` and ``-t`` with stdin not a terminal.
    """
    if interactive and terminal and not os.isatty(_STDIN):
        raise LayercakeError("the input device is not a TTY")


# Docker's names for control keys beyond ctrl-a to ctrl-z.
_CONTROL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def detach_keys(text: str) -> bytes:
    """Docker's ``--detach-keys`` (``ctrl-p,ctrl-q``) as the bytes typed.

    Raises:
        LayercakeError: a key is neither one character nor ``ctrl-<key>``.
    """
    keys = bytearray()
    for key in text.split(","):
        name = key.lower().removeprefix("ctrl-")
        if key.lower().startswith("ctrl-") and len(name) == 1:
            if "a" <= name <= "z":
                keys.append(ord(name) - ord("a") + 1)
                continue
            if name in _CONTROL:
                keys.append(_CONTROL[name])
                continue
        elif len(key) == 1 and key.isascii():
            keys.append(ord(key))
            continue
        raise LayercakeError(f"invalid detach keys ({text}) provided")
    return bytes(keys)


def window_size() -> tuple[int, int] | None:
    """``(rows, columns)`` of the caller's terminal (stdout, else stdin)."""
    for fd in (_STDOUT, _STDIN):
        with suppress(OSError):
            columns, rows = os.get_terminal_size(fd)
            return rows, columns
    return None


@contextmanager
def raw_terminal(active: bool, resize: Callable[[int, int], None]) -> Iterator[None]:
    """With ``active``, hold stdin's terminal in raw mode and pass on resizes.

    ``resize(rows, columns)`` is called on each SIGWINCH. The terminal's
    previous mode and the previous SIGWINCH handler come back on exit.
    """
    if not active:
        yield
        return
    saved = termios.tcgetattr(_STDIN)

    def resized(signum: int, frame: object) -> None:
        size = window_size()
        if size is not None:
            with suppress(LayercakeError):
                resize(*size)

    previous = signal.signal(signal.SIGWINCH, resized)
    try:
        tty.setraw(_STDIN, termios.TCSANOW)
        yield
    finally:
        # A terminal that hung up (its window closed) has no mode to restore.
        with suppress(termios.error):
            termios.tcsetattr(_STDIN, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)


def terminal_hung_up() -> bool:
    """Whether the caller's terminal (stdin, stdout or stderr) hung up.

    The kernel answers EIO for a terminal whose master side closed, and
    ENOTTY for a descriptor that never was a terminal.
    """
    for fd in (_STDIN, _STDOUT, 2):
        try:
            termios.tcgetattr(fd)
        except termios.error as error:
            if error.args[0] == errno.EIO:
                return True
    return False
