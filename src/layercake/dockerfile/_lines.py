"""From Dockerfile text to logical lines.

Handles the byte-order mark, CRLF, parser directives at the top, comments,
blank lines, line continuations with the active escape character and
heredoc bodies. Each logical line keeps where it came from.
"""

from __future__ import annotations

import re

import attrs

from layercake.dockerfile._heredoc import chomp, find_markers
from layercake.dockerfile._instructions import FrozenMap, Heredoc, Location
from layercake.dockerfile._words import json_array, split_command
from layercake.errors import DockerfileSyntaxError

__all__ = ["LogicalLine", "Source", "is_json_form", "read_lines"]

_DIRECTIVE = re.compile(
    r"#[ \t\n\f\r]*([a-zA-Z][a-zA-Z0-9]*)[ \t\n\f\r]*=[ \t\n\f\r]*(.+?)[ \t\n\f\r]*"
)
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC_KEYWORDS = frozenset({"run", "copy", "add"})


@attrs.frozen
class LogicalLine:
    """One instruction's text with continuations joined and comments dropped.

    ``original`` is the source as written, from the keyword to the last line
    (heredoc bodies included); ``heredocs`` the bodies the line opened.
    """

    text: str
    location: Location
    original: str
    heredocs: tuple[Heredoc, ...] = ()


@attrs.frozen
class Source:
    """The directives, the escape character and the logical lines of a file."""

    directives: FrozenMap[str]
    escape: str
    lines: tuple[LogicalLine, ...]


def _lstrip(text: str) -> str:
    # Go's unicode.IsSpace, which unlike str.isspace excludes \x1c-\x1f.
    pos = 0
    while (
        pos < len(text) and text[pos].isspace() and text[pos] not in "\x1c\x1d\x1e\x1f"
    ):
        pos += 1
    return text[pos:]


def is_json_form(rest: str) -> bool:
    """Whether ``rest`` is a JSON array (of anything), i.e. not shell form."""
    return json_array(rest) is not None


def read_lines(text: str, path: str | None) -> Source:
    """Split Dockerfile text into its directives and logical lines.

    Raises:
        DockerfileSyntaxError: a repeated or invalid directive, or a heredoc
            with no terminator.
    """
    return _Reader(text, path).read()


class _Reader:
    def __init__(self, text: str, path: str | None) -> None:
        physical = text.split("\n")
        if text.endswith("\n"):
            physical.pop()
        self.physical = [line.removesuffix("\r") for line in physical]
        if self.physical:
            self.physical[0] = self.physical[0].removeprefix("\ufeff")
        self.path = path
        self.pos = 0
        self.escape = "\\"
        self.directives: dict[str, str] = {}
        self.directives_done = False

    def read(self) -> Source:
        lines: list[LogicalLine] = []
        while self.pos < len(self.physical):
            line = self._logical_line()
            if line is not None:
                lines.append(line)
        return Source(FrozenMap(self.directives), self.escape, tuple(lines))

    def _error(self, reason: str, line: int, column: int = 1) -> DockerfileSyntaxError:
        return DockerfileSyntaxError(reason, path=self.path, line=line, column=column)

    def _directive(self, stripped: str, number: int) -> None:
        if self.directives_done:
            return
        match = _DIRECTIVE.fullmatch(stripped)
        if match is None or match[1].lower() not in _KNOWN_DIRECTIVES:
            self.directives_done = True
            return
        name, value = match[1].lower(), match[2]
        if name in self.directives:
            raise self._error(f"only one {name} parser directive can be used", number)
        if name == "escape":
            if value not in ("\\", "`"):
                raise self._error(
                    f"invalid escape character {value!r}: use ` or \\", number
                )
            self.escape = value
        self.directives[name] = value

    def _continued(self, text: str) -> tuple[str, bool]:
        """Remove a trailing escape character; say whether it was there."""
        body = text.rstrip(" \t")
        if body.endswith(self.escape):
            return body[: -len(self.escape)], True
        return text, False

    def _logical_line(self) -> LogicalLine | None:
        raw = self.physical[self.pos]
        self.pos += 1
        start = self.pos
        stripped = _lstrip(raw)
        self._directive(stripped, start)
        if stripped.startswith("#"):
            return None
        text, continued = self._continued(stripped)
        if not continued and text == "":
            return None

        while continued and self.pos < len(self.physical):
            raw = self.physical[self.pos]
            self.pos += 1
            after = _lstrip(raw)
            if after.startswith("#") or after == "":
                continue
            piece, continued = self._continued(raw)
            text += piece

        column = len(self.physical[start - 1]) - len(stripped) + 1
        heredocs = self._heredocs(text, start, column)
        original = "\n".join([stripped, *self.physical[start : self.pos]])
        location = Location(self.path, start, self.pos, column)
        return LogicalLine(text, location, original, heredocs)

    def _heredocs(self, text: str, start: int, column: int) -> tuple[Heredoc, ...]:
        if "<<" not in text:
            return ()
        keyword, _, rest = split_command(text)
        if keyword.lower() not in _HEREDOC_KEYWORDS or is_json_form(rest):
            return ()
        return tuple(
            self._heredoc_body(marker.name, marker.expand, marker.chomp, start, column)
            for marker in find_markers(text)
        )

    def _heredoc_body(
        self, name: str, expand: bool, chomped: bool, start: int, column: int
    ) -> Heredoc:
        body: list[str] = []
        while self.pos < len(self.physical):
            raw = self.physical[self.pos]
            self.pos += 1
            candidate = raw.lstrip("\t") if chomped else raw
            if candidate == name:
                content = "".join(body)
                return Heredoc(
                    name, chomp(content) if chomped else content, expand, chomped
                )
            body.append(raw + "\n")
        raise self._error(f"unterminated heredoc {name!r}", start, column)
