"""Here-document markers (``<<EOF``, ``<<-EOF``, ``<<'EOF'``) on a line."""

from __future__ import annotations

import re

from layercake.dockerfile._shell import lex_words
from layercake.errors import DockerfileSyntaxError

__all__ = ["Marker", "chomp", "find_markers", "parse_marker"]

_MARKER = re.compile(r"([0-9]*)<<(-?)([^<]*)")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


class Marker:
    """A heredoc opening: its delimiter, whether the body expands, ``<<-``."""

    __slots__ = ("chomp", "expand", "name")

    def __init__(self, name: str, expand: bool, chomp: bool) -> None:
        self.name = name
        self.expand = expand
        self.chomp = chomp


def parse_marker(word: str) -> Marker | None:
    """Return the heredoc a word such as ``<<-"EOF"`` opens, or ``None``.

    The body is expanded only when no part of the delimiter is quoted.
    """
    match = _MARKER.fullmatch(word)
    if match is None or not match[3]:
        return None
    try:
        plain = lex_words(match[3])
        raw = lex_words(match[3], raw_quotes=True)
    except DockerfileSyntaxError:
        return None
    if len(plain) != 1 or len(raw) != 1:
        return None
    quotes = plain[0].count("'") + plain[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Marker(plain[0], expand=quotes == raw_quotes, chomp=match[2] == "-")


def find_markers(line: str) -> list[Marker]:
    """Return the heredocs a logical line opens, in order."""
    try:
        words = lex_words(line, raw_quotes=True, raw_escapes=True)
    except DockerfileSyntaxError:
        return []
    return [marker for word in words if (marker := parse_marker(word))]


def chomp(content: str) -> str:
    """Remove the leading tabs of every line, as ``<<-`` asks."""
    return _LEADING_TABS.sub("", content)
