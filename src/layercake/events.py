"""Structured progress events of long operations.

A build reports each step as it starts, when it hits the cache, the output
of its command, and when it finishes, through a callback that takes one
event at a time. Events are frozen values; renderers (the CLI's step lines,
a progress bar, JSON lines) are built on them, never on log text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import attrs

__all__ = [
    "BuildFinished",
    "BuildWarning",
    "Event",
    "EventCallback",
    "StepCacheMiss",
    "StepCached",
    "StepFinished",
    "StepOutput",
    "StepStarted",
]


@attrs.frozen
class StepStarted:
    """A build step began: ``step`` of ``total``, with its instruction text."""

    step: int
    total: int
    instruction: str
    stage: str | None = None


@attrs.frozen
class StepCached:
    """The step's result came from the build cache; nothing ran."""

    step: int
    cache_key: str


@attrs.frozen
class StepCacheMiss:
    """The step is not in the build cache and will run; ``reason`` says why.

    The reason compares the step with its last build from the same place in
    the same Dockerfile, e.g. "the files it reads changed".
    """

    step: int
    cache_key: str
    reason: str


@attrs.frozen
class StepOutput:
    """A chunk of a RUN step's output, as the command wrote it."""

    step: int
    stream: Literal["stdout", "stderr"]
    data: bytes


@attrs.frozen
class StepFinished:
    """The step is done; ``duration`` is in seconds, ``cached`` if it hit."""

    step: int
    duration: float
    cached: bool
    image_id: str


@attrs.frozen
class BuildWarning:
    """Something the build did that a user would want to know about."""

    message: str
    line: int | None = None


@attrs.frozen
class BuildFinished:
    """The build produced ``image_id`` and wrote ``tags``."""

    image_id: str
    tags: tuple[str, ...]
    duration: float


Event = (
    StepStarted
    | StepCached
    | StepCacheMiss
    | StepOutput
    | StepFinished
    | BuildWarning
    | BuildFinished
)
EventCallback = Callable[[Event], None]
