"""From logical lines to typed instructions and build stages."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Sequence

from layercake.dockerfile._durations import parse_duration
from layercake.dockerfile._heredoc import parse_marker
from layercake.dockerfile._instructions import (
    KEYWORDS,
    Add,
    Arg,
    Cmd,
    Command,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Location,
    Maintainer,
    OnBuild,
    Run,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from layercake.dockerfile._lines import LogicalLine, read_lines
from layercake.dockerfile._words import parse_words, split_command, split_whitespace
from layercake.errors import DockerfileSyntaxError

__all__ = ["parse", "parse_instruction"]

_STRING, _STRINGS, _BOOL = "string", "strings", "bool"

_FLAG_KINDS: dict[str, dict[str, str]] = {
    "FROM": {"platform": _STRING},
    "RUN": {"mount": _STRINGS, "network": _STRING, "security": _STRING},
    "COPY": {
        "from": _STRING,
        "chown": _STRING,
        "chmod": _STRING,
        "link": _BOOL,
        "parents": _BOOL,
        "exclude": _STRINGS,
    },
    "ADD": {
        "chown": _STRING,
        "chmod": _STRING,
        "checksum": _STRING,
        "keep-git-dir": _BOOL,
        "link": _BOOL,
        "exclude": _STRINGS,
        "unpack": _BOOL,
    },
    "HEALTHCHECK": {
        "interval": _STRING,
        "timeout": _STRING,
        "start-period": _STRING,
        "start-interval": _STRING,
        "retries": _STRING,
    },
}

_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")
_RESERVED_STAGE_NAMES = frozenset({"context", "scratch"})
_ONBUILD_PREFIX = re.compile(r"\s*ONBUILD\s*", re.IGNORECASE)
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_INTEGER = re.compile(r"[+-]?[0-9]+")


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
        instructions.extend(_instructions(line, lines.escape))
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
    found = _instructions(LogicalLine(text, where, text), escape)
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
            raise _error(
                instruction.location,
                f"{instruction.keyword} cannot come before the first FROM "
                "(only ARG can)",
            )

    if base is None:
        last = instructions[-1].location
        raise _error(last, "the dockerfile has no FROM instruction")
    stages.append(Stage(len(stages), base.name, base, tuple(body)))
    return tuple(global_args), tuple(stages)


def _check_stage_name(instruction: From, names: set[str]) -> None:
    name = instruction.name
    if name is None:
        return
    if name in _RESERVED_STAGE_NAMES:
        raise _error(instruction.location, f"stage name {name!r} is reserved")
    if name in names:
        raise _error(instruction.location, f"duplicate stage name {name!r}")
    names.add(name)


def _error(location: Location, reason: str) -> DockerfileSyntaxError:
    return DockerfileSyntaxError(
        reason, path=location.path, line=location.line, column=location.column
    )


class _Line:
    """One logical line being turned into instructions."""

    def __init__(self, line: LogicalLine, escape: str, keyword: str) -> None:
        self.line = line
        self.escape = escape
        self.keyword = keyword

    @property
    def location(self) -> Location:
        return self.line.location

    @property
    def original(self) -> str:
        return self.line.original

    def error(self, reason: str) -> DockerfileSyntaxError:
        return _error(self.line.location, reason)

    def at_least_one(self) -> DockerfileSyntaxError:
        return self.error(f"{self.keyword} requires at least one argument")

    def exactly_one(self) -> DockerfileSyntaxError:
        return self.error(f"{self.keyword} requires exactly one argument")

    def json_list(self, rest: str) -> list[str] | None:
        """The JSON array form of ``rest``, or ``None`` for shell form."""
        if not rest.startswith("["):
            return None
        try:
            value = json.loads(rest, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            return None
        if not isinstance(value, list):
            return None
        if not all(isinstance(item, str) for item in value):
            raise self.error(
                "when using JSON array syntax, arrays must be comprised of strings only"
            )
        return value

    def command(self, rest: str) -> Command:
        exec_form = self.json_list(rest)
        if exec_form is not None:
            return Command(tuple(exec_form), shell=False)
        if rest == "":
            return Command((), shell=False)
        return Command((rest,), shell=True)


def _no_constant(name: str) -> object:
    raise ValueError(f"not JSON: {name}")


def _instructions(line: LogicalLine, escape: str) -> list[Instruction]:
    written, flag_words, rest = split_command(line.text)
    keyword = written.upper()
    if keyword not in KEYWORDS:
        reason = f"unknown instruction: {keyword}"
        close = difflib.get_close_matches(keyword, KEYWORDS, n=1, cutoff=0.6)
        if close:
            reason += f" (did you mean {close[0]}?)"
        raise _error(line.location, reason)

    current = _Line(line, escape, keyword)
    flags = _parse_flags(current, flag_words)
    built = _BUILDERS[keyword](current, rest, flags)
    return built if isinstance(built, list) else [built]


def _parse_flags(line: _Line, words: list[str]) -> dict[str, list[str]]:
    kinds = _FLAG_KINDS.get(line.keyword, {})
    values: dict[str, list[str]] = {}
    for word in words:
        name, has_value, value = word[2:].partition("=")
        kind = kinds.get(name)
        if kind is None:
            reason = f"unknown flag --{name} for {line.keyword}"
            close = difflib.get_close_matches(name, list(kinds), n=1, cutoff=0.6)
            if close:
                reason += f" (did you mean --{close[0]}?)"
            raise line.error(reason)
        if name in values and kind != _STRINGS:
            raise line.error(f"duplicate flag --{name} for {line.keyword}")
        if kind == _BOOL:
            value = _bool_flag(line, name, has_value, value)
        elif not has_value:
            raise line.error(f"missing a value on flag --{name} for {line.keyword}")
        values.setdefault(name, []).append(value)
    return values


def _bool_flag(line: _Line, name: str, has_value: str, value: str) -> str:
    if has_value and value == "":
        raise line.error(f"missing a value on flag --{name} for {line.keyword}")
    if value.lower() in ("", "true"):
        return "true"
    if value.lower() == "false":
        return "false"
    raise line.error(f"expecting a boolean value for flag --{name}, not {value!r}")


def _single(flags: dict[str, list[str]]) -> dict[str, str]:
    return {name: "\n".join(values) for name, values in flags.items()}


_Flags = dict[str, list[str]]
_Built = Instruction | list[Instruction]


def _from(line: _Line, rest: str, flags: _Flags) -> _Built:
    args = split_whitespace(rest)
    name: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.fullmatch(name):
            raise line.error(
                f"invalid name for build stage: {args[2]!r}, name can't start "
                "with a number or contain symbols"
            )
    elif len(args) != 1:
        raise line.error("FROM requires either one or three arguments")
    platform = flags["platform"][0] if "platform" in flags else None
    return From(args[0], name, platform, location=line.location, original=line.original)


def _arg(line: _Line, rest: str, flags: _Flags) -> _Built:
    words = parse_words(rest, line.escape)
    if not words:
        raise line.at_least_one()
    args: list[Instruction] = []
    for word in words:
        name, has_default, default = word.partition("=")
        if name == "":
            raise line.error("ARG names can not be blank")
        value = default if has_default else None
        args.append(Arg(name, value, location=line.location, original=line.original))
    return args


def _pairs(line: _Line, rest: str) -> tuple[tuple[str, str], ...]:
    words = parse_words(rest, line.escape)
    if not words:
        raise line.at_least_one()
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise line.error(f"{line.keyword} must have two arguments")
        pairs = [(parts[0], parts[1])]
    else:
        pairs = []
        for word in words:
            key, has_value, value = word.partition("=")
            if not has_value:
                raise line.error(
                    f"can't find = in {word!r}: must be of the form name=value"
                )
            pairs.append((key, value))
    if any(key == "" for key, _ in pairs):
        raise line.error(f"{line.keyword} names can not be blank")
    return tuple(pairs)


def _env(line: _Line, rest: str, flags: _Flags) -> _Built:
    return Env(_pairs(line, rest), location=line.location, original=line.original)


def _label(line: _Line, rest: str, flags: _Flags) -> _Built:
    return Label(_pairs(line, rest), location=line.location, original=line.original)


def _run(line: _Line, rest: str, flags: _Flags) -> _Built:
    if rest == "":
        raise line.at_least_one()
    command = line.command(rest)
    run_flags = {name: tuple(values) for name, values in flags.items()}
    heredocs = line.line.heredocs
    return Run(
        command, run_flags, heredocs, location=line.location, original=line.original
    )


def _cmd(line: _Line, rest: str, flags: _Flags) -> _Built:
    return Cmd(line.command(rest), location=line.location, original=line.original)


def _entrypoint(line: _Line, rest: str, flags: _Flags) -> _Built:
    return Entrypoint(
        line.command(rest), location=line.location, original=line.original
    )


def _shell(line: _Line, rest: str, flags: _Flags) -> _Built:
    args = line.json_list(rest)
    if args is None:
        raise line.error("SHELL requires the arguments to be in JSON form")
    if not args:
        raise line.at_least_one()
    return Shell(tuple(args), location=line.location, original=line.original)


def _sources_and_dest(line: _Line, rest: str) -> tuple[tuple[str, ...], str, bool]:
    """The sources (heredoc markers left out), the destination, exec form."""
    exec_form = line.json_list(rest)
    args = exec_form if exec_form is not None else split_whitespace(rest)
    if len(args) < 2:
        raise line.error(
            f"{line.keyword} requires at least two arguments: "
            "one or more sources and a destination"
        )
    if exec_form is not None:
        return tuple(args[:-1]), args[-1], True
    if parse_marker(args[-1]) is not None:
        raise line.error(f"{line.keyword} cannot accept a heredoc as a destination")
    sources = tuple(arg for arg in args[:-1] if parse_marker(arg) is None)
    return sources, args[-1], False


def _copy(line: _Line, rest: str, flags: _Flags) -> _Built:
    sources, dest, exec_form = _sources_and_dest(line, rest)
    excludes = tuple(flags.get("exclude", ()))
    heredocs = () if exec_form else line.line.heredocs
    cls = Copy if line.keyword == "COPY" else Add
    return cls(
        sources,
        dest,
        _single(flags),
        heredocs,
        excludes,
        location=line.location,
        original=line.original,
    )


def _text(cls: Callable[..., Instruction]) -> Callable[[_Line, str, _Flags], _Built]:
    def build(line: _Line, rest: str, flags: _Flags) -> _Built:
        if rest == "":
            raise line.exactly_one()
        return cls(rest, location=line.location, original=line.original)

    return build


def _expose(line: _Line, rest: str, flags: _Flags) -> _Built:
    ports = split_whitespace(rest)
    if not ports:
        raise line.at_least_one()
    return Expose(tuple(ports), location=line.location, original=line.original)


def _volume(line: _Line, rest: str, flags: _Flags) -> _Built:
    exec_form = line.json_list(rest)
    paths = exec_form if exec_form is not None else split_whitespace(rest)
    if not paths:
        raise line.at_least_one()
    if any(path.strip() == "" for path in paths):
        raise line.error("VOLUME specified can not be an empty string")
    return Volume(tuple(paths), location=line.location, original=line.original)


def _onbuild(line: _Line, rest: str, flags: _Flags) -> _Built:
    if rest == "":
        raise line.at_least_one()
    trigger_keyword = split_command(rest)[0].upper()
    if trigger_keyword == "ONBUILD":
        raise line.error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger_keyword in ("FROM", "MAINTAINER"):
        raise line.error(f"{trigger_keyword} isn't allowed as an ONBUILD trigger")
    trigger = _ONBUILD_PREFIX.sub("", line.line.text, count=1)
    _instructions(LogicalLine(trigger, line.line.location, trigger), line.escape)
    return OnBuild(trigger, location=line.location, original=line.original)


def _healthcheck_of(line: _Line, rest: str, flags: _Flags) -> _Built:
    parts = _WHITESPACE.split(rest, maxsplit=1) if rest else []
    if not parts:
        raise line.at_least_one()
    kind = parts[0].upper()
    command_text = parts[1] if len(parts) > 1 else ""
    if kind == "NONE":
        if command_text:
            raise line.error("HEALTHCHECK NONE takes no arguments")
        command = None
    elif kind == "CMD":
        command = line.command(command_text)
        if not command.args:
            raise line.error("missing command after HEALTHCHECK CMD")
    else:
        raise line.error(f"unknown type {parts[0]!r} in HEALTHCHECK (try CMD)")
    _check_health_flags(line, _single(flags))
    return Healthcheck(
        command, _single(flags), location=line.location, original=line.original
    )


def _check_health_flags(line: _Line, flags: dict[str, str]) -> None:
    """Check HEALTHCHECK durations (0, or at least 1ms) and retries (>= 0)."""
    for name in ("interval", "timeout", "start-period", "start-interval"):
        value = flags.get(name, "")
        if value == "":
            continue
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise line.error(f"invalid duration {value!r} for --{name}") from None
        if seconds != 0 and seconds < 0.001:
            raise line.error(f"--{name} cannot be less than 1ms")

    retries = flags.get("retries", "")
    if retries == "":
        return
    if not _INTEGER.fullmatch(retries):
        raise line.error(f"--retries must be an integer, not {retries!r}")
    count = int(retries)
    if count < 0:
        raise line.error(f"--retries cannot be negative ({count})")


_BUILDERS: dict[str, Callable[[_Line, str, _Flags], _Built]] = {
    "ADD": _copy,
    "ARG": _arg,
    "CMD": _cmd,
    "COPY": _copy,
    "ENTRYPOINT": _entrypoint,
    "ENV": _env,
    "EXPOSE": _expose,
    "FROM": _from,
    "HEALTHCHECK": _healthcheck_of,
    "LABEL": _label,
    "MAINTAINER": _text(Maintainer),
    "ONBUILD": _onbuild,
    "RUN": _run,
    "SHELL": _shell,
    "STOPSIGNAL": _text(StopSignal),
    "USER": _text(User),
    "VOLUME": _volume,
    "WORKDIR": _text(Workdir),
}
