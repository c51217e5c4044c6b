"""Signal names as Docker takes them: ``SIGTERM``, ``TERM``, ``term`` or ``15``."""

from __future__ import annotations

import signal

__all__ = ["signal_number"]


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
