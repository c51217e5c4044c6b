"""From one logical line to the instruction(s) it holds.

Each keyword has a builder that checks its arguments the way BuildKit does
and returns raw (unexpanded) values.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable

from layercake.dockerfile._flags import check_healthcheck_flags, parse_flags
from layercake.dockerfile._heredoc import parse_marker
from layercake.dockerfile._instructions import (
    KEYWORDS,
    Add,
    Arg,
    Cmd,
    Command,
    Copy,
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
    StopSignal,
    User,
    Volume,
    Workdir,
)
from layercake.dockerfile._lines import LogicalLine
from layercake.dockerfile._words import (
    json_array,
    parse_words,
    split_command,
    split_whitespace,
)
from layercake.errors import DockerfileSyntaxError

__all__ = ["instructions_of", "syntax_error"]

_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")
_ONBUILD_PREFIX = re.compile(r"\s*ONBUILD\s*", re.IGNORECASE)
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


def syntax_error(location: Location, reason: str) -> DockerfileSyntaxError:
    """A syntax error at ``location``."""
    return DockerfileSyntaxError(
        reason, path=location.path, line=location.line, column=location.column
    )


def instructions_of(line: LogicalLine, escape: str) -> list[Instruction]:
    """Return the instruction on ``line`` (several for a multi-name ARG).

    Raises:
        DockerfileSyntaxError: an unknown keyword or flag, or arguments the
            instruction does not accept.
    """
    written, flag_words, rest = split_command(line.text)
    keyword = written.upper()
    if keyword not in KEYWORDS:
        reason = f"unknown instruction: {keyword}"
        close = difflib.get_close_matches(keyword, KEYWORDS, n=1, cutoff=0.6)
        if close:
            reason += f" (did you mean {close[0]}?)"
        raise syntax_error(line.location, reason)

    current = _Line(line, escape, keyword)
    try:
        flags = parse_flags(keyword, flag_words)
    except ValueError as error:
        raise current.error(str(error)) from None
    built = _BUILDERS[keyword](current, rest, flags)
    return built if isinstance(built, list) else [built]


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
        return syntax_error(self.line.location, reason)

    def at_least_one(self) -> DockerfileSyntaxError:
        return self.error(f"{self.keyword} requires at least one argument")

    def exactly_one(self) -> DockerfileSyntaxError:
        return self.error(f"{self.keyword} requires exactly one argument")

    def json_list(self, rest: str) -> list[str] | None:
        """The JSON array form of ``rest``, or ``None`` for shell form."""
        value = json_array(rest)
        if value is None:
            return None
        strings = [item for item in value if isinstance(item, str)]
        if len(strings) != len(value):
            raise self.error(
                "when using JSON array syntax, arrays must be comprised of strings only"
            )
        return strings

    def command(self, rest: str) -> Command:
        exec_form = self.json_list(rest)
        if exec_form is not None:
            return Command(tuple(exec_form), shell=False)
        if rest == "":
            return Command((), shell=False)
        return Command((rest,), shell=True)


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
    instructions_of(LogicalLine(trigger, line.location, trigger), line.escape)
    return OnBuild(trigger, location=line.location, original=line.original)


def _healthcheck(line: _Line, rest: str, flags: _Flags) -> _Built:
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
    try:
        check_healthcheck_flags(_single(flags))
    except ValueError as error:
        raise line.error(str(error)) from None
    return Healthcheck(
        command, _single(flags), location=line.location, original=line.original
    )


_BUILDERS: dict[str, Callable[[_Line, str, _Flags], _Built]] = {
    "ADD": _copy,
    "ARG": _arg,
    "CMD": _cmd,
    "COPY": _copy,
    "ENTRYPOINT": _entrypoint,
    "ENV": _env,
    "EXPOSE": _expose,
    "FROM": _from,
    "HEALTHCHECK": _healthcheck,
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
