"""Renderers of build events: docker's classic step lines, or JSON lines."""

from __future__ import annotations

import json
from typing import TextIO

import attrs

from layercake.events import (
    BuildFinished,
    BuildWarning,
    Event,
    StepCached,
    StepFinished,
    StepOutput,
    StepStarted,
)

__all__ = ["JsonProgress", "PlainProgress"]


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
