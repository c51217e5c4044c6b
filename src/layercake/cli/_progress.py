"""Renderers of build events (docker's classic step lines, or JSON lines) and
of registry transfers (progress bars on a terminal, lines, or JSON lines)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TextIO

import attrs

from layercake.cli._format import size
from layercake.events import (
    BuildFinished,
    BuildWarning,
    Event,
    StepCached,
    StepFinished,
    StepOutput,
    StepStarted,
)

if TYPE_CHECKING:
    from layercake.store._registry import TransferProgress

__all__ = [
    "JsonProgress",
    "PlainProgress",
    "TransferBars",
    "TransferJson",
    "TransferLines",
    "TransferRenderer",
    "transfer_renderer",
]


class PlainProgress:
    """Renders build events as docker's classic ``Step N/M`` lines."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.cached: set[int] = set()

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self.write(f"Step {event.step}/{event.total} : {event.instruction}")
        elif isinstance(event, StepCached):
            self.cached.add(event.step)
            self.write(" ---> CACHED")
        elif isinstance(event, StepOutput):
            self.out.write(event.data.decode("utf-8", "replace"))
            self.out.flush()
        elif isinstance(event, StepFinished):
            if event.step not in self.cached:
                self.write(f" ---> {event.image_id[7:19]} ({event.duration:.2f}s)")
        elif isinstance(event, BuildWarning):
            self.write(f"warning: {event.message}")
        elif isinstance(event, BuildFinished):
            self.write(f"Successfully built {event.image_id[7:19]}")
            for tag in event.tags:
                self.write(f"Successfully tagged {tag}")

    def write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


class JsonProgress:
    """Renders build events as one JSON object a line, for scripts."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        record = attrs.asdict(event)
        if isinstance(event, StepOutput):
            record["data"] = event.data.decode("utf-8", "replace")
        record = {"event": type(event).__name__, **record}
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()


class TransferRenderer(Protocol):
    """Shows registry transfer progress; called from download threads."""

    def __call__(self, progress: TransferProgress) -> None:
        """Take one progress event."""

    def close(self) -> None:
        """Show the final state; no events come after this."""


def _short(progress: TransferProgress) -> str:
    return progress.digest.hex[:12]


def _finished(progress: TransferProgress) -> str:
    return f"{_short(progress)}: done ({size(progress.total)})"


class TransferLines:
    """Writes one line per blob when its transfer completes, for logs."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, progress: TransferProgress) -> None:
        if progress.done < progress.total:
            return
        with self._lock:
            key = str(progress.digest)
            if key in self._done:
                return
            self._done.add(key)
            self.out.write(_finished(progress) + "\n")
            self.out.flush()

    def close(self) -> None:
        """Nothing is pending: lines are written as blobs complete."""


class TransferJson:
    """Writes every progress event as one JSON object a line, for scripts."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def __call__(self, progress: TransferProgress) -> None:
        record = {
            "event": "TransferProgress",
            "reference": progress.reference,
            "digest": str(progress.digest),
            "done": progress.done,
            "total": progress.total,
        }
        with self._lock:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()

    def close(self) -> None:
        """Nothing is pending: every event is written as it comes."""


class TransferBars:
    """Draws one progress bar per blob on a terminal, redrawn in place.

    Redraws are throttled to one per ``interval`` seconds, except that a
    blob's completion is always drawn; finished lines stay on screen.
    """

    width = 30

    def __init__(
        self,
        out: TextIO,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self._interval = interval
        self._clock = clock
        self._blobs: dict[str, TransferProgress] = {}
        self._drawn = 0
        self._last = float("-inf")
        self._stale = False
        self._lock = threading.Lock()

    def __call__(self, progress: TransferProgress) -> None:
        with self._lock:
            key = str(progress.digest)
            before = self._blobs.get(key)
            self._blobs[key] = progress
            completed = progress.done >= progress.total and (
                before is None or before.done < before.total
            )
            now = self._clock()
            if completed or now - self._last >= self._interval:
                self._last = now
                self._draw()
            else:
                self._stale = True

    def close(self) -> None:
        """Draw the final state of every bar, unless it is on screen already."""
        with self._lock:
            if self._stale:
                self._draw()

    def _draw(self) -> None:
        # Move up over the lines drawn last time and rewrite each in place.
        text = f"\x1b[{self._drawn}A" if self._drawn else ""
        for progress in self._blobs.values():
            text += "\r\x1b[2K" + self._line(progress) + "\n"
        self._drawn = len(self._blobs)
        self._stale = False
        self.out.write(text)
        self.out.flush()

    def _line(self, progress: TransferProgress) -> str:
        if progress.done >= progress.total:
            return _finished(progress)
        filled = progress.done * self.width // max(progress.total, 1)
        bar = "=" * filled + ">" + " " * (self.width - filled - 1)
        return (
            f"{_short(progress)}: [{bar}] {size(progress.done)}/{size(progress.total)}"
        )


def transfer_renderer(mode: str, out: TextIO) -> TransferRenderer:
    """Return the renderer for ``--progress`` ``mode``: auto, plain or json.

    ``auto`` draws bars when ``out`` is a terminal and lines otherwise.

    Raises:
        ValueError: ``mode`` is none of the three.
    """
    if mode == "json":
        return TransferJson(out)
    if mode == "plain":
        return TransferLines(out)
    if mode == "auto":
        return TransferBars(out) if out.isatty() else TransferLines(out)
    raise ValueError(f"unknown progress mode {mode!r}")
