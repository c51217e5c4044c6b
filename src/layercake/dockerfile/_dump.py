"""A stable, readable text form of a parsed Dockerfile (golden tests, --check)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs

from layercake.dockerfile._instructions import (
    Command,
    Dockerfile,
    Heredoc,
    Instruction,
    Location,
)

__all__ = ["dump"]

_HIDDEN = frozenset({"location", "original", "keyword"})
_OMITTED_WHEN_EMPTY = frozenset({"heredocs", "excludes"})


def dump(dockerfile: Dockerfile) -> str:
    """Return a tree of the Dockerfile, one instruction a line, ending in \\n.

    Strings are JSON-quoted; each instruction starts with ``line[-end]:column``.
    """
    out = [f"escape {_value(dockerfile.escape)}"]
    for name, value in dockerfile.directives.items():
        out.append(f"directive {name}={_value(value)}")
    if dockerfile.global_args:
        out.append("global args")
        out.extend("  " + _instruction(arg) for arg in dockerfile.global_args)
    for stage in dockerfile.stages:
        out.append(f"stage {stage.index} name={_value(stage.name)}")
        out.append("  " + _instruction(stage.base))
        out.extend("  " + _instruction(each) for each in stage.instructions)
    return "\n".join(out) + "\n"


def _where(location: Location) -> str:
    lines = str(location.line)
    if location.end_line != location.line:
        lines += f"-{location.end_line}"
    return f"{lines}:{location.column}"


def _instruction(instruction: Instruction) -> str:
    parts = [_where(instruction.location), instruction.keyword]
    for field in attrs.fields(type(instruction)):
        if field.name in _HIDDEN:
            continue
        value = getattr(instruction, field.name)
        if field.name in _OMITTED_WHEN_EMPTY and not value:
            continue
        parts.append(f"{field.name}={_value(value)}")
    return " ".join(parts)


def _value(value: object) -> str:
    if value is None or isinstance(value, (bool, str, int)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Command):
        form = "shell" if value.shell else "exec"
        return f"{form}{_value(value.args)}"
    if isinstance(value, Heredoc):
        return (
            f"heredoc(name={_value(value.name)} expand={_value(value.expand)} "
            f"chomp={_value(value.chomp)} content={_value(value.content)})"
        )
    if isinstance(value, Mapping):
        items = ", ".join(f"{_value(k)}: {_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot dump {type(value).__name__}")
