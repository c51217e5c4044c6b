"""Signal names as Docker takes them: ``SIGTERM``, ``TERM``, ``term`` or ``15``."""

from __future__ import annotations

import signal

from layercake.errors import ContainerConfigError, ContainerError

__all__ = ["signal_number", "signal_to_send", "stop_signal_number"]


def signal_number(text: str) -> int | None:
    """The signal ``text`` names on this system, or ``None`` if it names none."""
    name = text.strip().upper()
    if name.isdigit():
        number = int(name)
        return number if 0 < number < signal.NSIG else None
    member = signal.Signals.__members__.get(
        name if name.startswith("SIG") else f"SIG{name}"
    )
    return None if member is None else int(member)


def signal_to_send(sig: int | str) -> int:
    """The number of ``sig``, a signal number or a name as ``docker kill`` takes.

    Raises:
        ContainerConfigError: ``sig`` names no signal of this system.
    """
    if isinstance(sig, bool):
        number = None
    elif isinstance(sig, int):
        number = int(sig) if 0 < sig < signal.NSIG else None
    else:
        number = signal_number(sig)
    if number is None:
        raise ContainerConfigError(f"invalid signal {sig!r}")
    return number


def stop_signal_number(name: str) -> int:
    """The number of an image's stop signal ``name``.

    Raises:
        ContainerError: ``name`` names no signal of this system.
    """
    number = signal_number(name)
    if number is None:
        raise ContainerError(f"invalid stop signal {name!r}")
    return number
