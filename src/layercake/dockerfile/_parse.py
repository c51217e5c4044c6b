"""Parsing a Dockerfile: logical lines, then instructions, then stages."""

from __future__ import annotations

import os
from collections.abc import Sequence

from layercake.dockerfile._instructions import (
    Arg,
    Dockerfile,
    From,
    Instruction,
    Location,
    Stage,
)
from layercake.dockerfile._keywords import instructions_of, syntax_error
from layercake.dockerfile._lines import LogicalLine, read_lines
from layercake.errors import DockerfileSyntaxError

__all__ = ["parse", "parse_instruction"]

_RESERVED_STAGE_NAMES = frozenset({"context", "scratch"})


def parse(source: str | os.PathLike[str], *, path: str | None = None) -> Dockerfile:
    """Parse a Dockerfile given as text, or as the path of a file to read.

    Raises:
        DockerfileSyntaxError: the text breaks the Dockerfile grammar; the
            exception's ``path``, ``line`` and ``column`` say where.
        OSError: ``source`` is a path that cannot be read.
    """
    if isinstance(source, os.PathLike):
        if path is None:
            path = os.fspath(source)
        with open(source, encoding="utf-8", errors="surrogateescape", newline="") as f:
            text = f.read()
    else:
        text = source

    lines = read_lines(text, path)
    instructions: list[Instruction] = []
    for line in lines.lines:
        instructions.extend(instructions_of(line, lines.escape))
    if not instructions:
        raise DockerfileSyntaxError("the dockerfile has no instructions", path=path)
    global_args, stages = _stages(instructions)
    return Dockerfile(path, lines.directives, lines.escape, global_args, stages)


def parse_instruction(
    text: str, *, escape: str = "\\", location: Location | None = None
) -> Instruction:
    """Parse one instruction written on one logical line, e.g. an ONBUILD
    trigger. An ``ARG`` with several names gives the first one only.

    Raises:
        DockerfileSyntaxError: the text is not a valid instruction.
    """
    where = location or Location(None, 1, 1)
    found = instructions_of(LogicalLine(text, where, text), escape)
    if not found:
        raise DockerfileSyntaxError(
            "empty instruction", path=where.path, line=where.line
        )
    return found[0]


def _stages(
    instructions: Sequence[Instruction],
) -> tuple[tuple[Arg, ...], tuple[Stage, ...]]:
    global_args: list[Arg] = []
    stages: list[Stage] = []
    base: From | None = None
    body: list[Instruction] = []
    names: set[str] = set()

    for instruction in instructions:
        if isinstance(instruction, From):
            if base is not None:
                stages.append(Stage(len(stages), base.name, base, tuple(body)))
            _check_stage_name(instruction, names)
            base, body = instruction, []
        elif base is not None:
            body.append(instruction)
        elif isinstance(instruction, Arg):
            global_args.append(instruction)
        else:
            raise syntax_error(
                instruction.location,
                f"{instruction.keyword} cannot come before the first FROM "
                "(only ARG can)",
            )

    if base is None:
        last = instructions[-1].location
        raise syntax_error(last, "the dockerfile has no FROM instruction")
    stages.append(Stage(len(stages), base.name, base, tuple(body)))
    return tuple(global_args), tuple(stages)


def _check_stage_name(instruction: From, names: set[str]) -> None:
    name = instruction.name
    if name is None:
        return
    if name in _RESERVED_STAGE_NAMES:
        raise syntax_error(instruction.location, f"stage name {name!r} is reserved")
    if name in names:
        raise syntax_error(instruction.location, f"duplicate stage name {name!r}")
    names.add(name)
