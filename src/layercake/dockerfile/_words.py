"""Splitting one logical Dockerfile line into its keyword, flags and words.

These are the parser-level splits BuildKit makes before any expansion: the
keyword, the leading ``--flag`` words, whitespace-separated arguments, and
the quote-aware words of ARG, ENV and LABEL (quotes kept for later).
"""

from __future__ import annotations

import json
import re

__all__ = ["json_array", "parse_words", "split_command", "split_whitespace"]

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


def _is_space(ch: str) -> bool:
    # Go's unicode.IsSpace, which unlike str.isspace excludes \x1c-\x1f.
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


def _strip(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_space(text[start]):
        start += 1
    while end > start and _is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def split_whitespace(text: str) -> list[str]:
    """Split on runs of spaces and tabs, as BuildKit splits FROM/EXPOSE/COPY."""
    if not text:
        return []
    return _WHITESPACE.split(text)


def split_command(line: str) -> tuple[str, list[str], str]:
    """Return the keyword as written, its ``--flag`` words and the rest.

    The flag words keep their ``--`` and have their quotes and backslashes
    processed; the rest is stripped of surrounding whitespace.
    """
    parts = _WHITESPACE.split(_strip(line), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = _extract_flags(parts[1])
    return parts[0], flags, _strip(rest)


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Take the leading ``--name[=value]`` words off ``line``.

    A word ``--`` on its own ends the flags and is dropped.
    """
    flags: list[str] = []
    pos = 0
    while True:
        while pos < len(line) and _is_space(line[pos]):
            pos += 1
        if not line.startswith("--", pos):
            return line[pos:], flags
        word, pos, quoted = _flag_word(line, pos)
        if word == "--":
            return line[pos:], flags
        if word or quoted:
            flags.append(word)
        if pos >= len(line):
            return "", flags


def _flag_word(line: str, pos: int) -> tuple[str, int, bool]:
    """Read one flag word from ``pos``; return it, the next position, and
    whether it had quotes (an empty quoted word still counts)."""
    chars: list[str] = []
    quote = ""
    quoted = False
    while pos < len(line):
        ch = line[pos]
        pos += 1
        if not quote and _is_space(ch):
            break
        if not quote and ch in "'\"":
            quote, quoted = ch, True
            continue
        if quote and ch == quote:
            quote = ""
            continue
        if ch == "\\":
            if pos == len(line):
                continue
            ch = line[pos]
            pos += 1
        chars.append(ch)
    return "".join(chars), pos, quoted


def parse_words(text: str, escape: str) -> list[str]:
    """Split ``text`` on unquoted whitespace, keeping quotes and escapes.

    This is the split of ARG, ENV and LABEL: ``a="b c" d`` gives
    ``['a="b c"', 'd']``; quotes are removed later by expansion. An escape
    character at the very end is dropped.
    """
    words: list[str] = []
    chars: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    while pos < len(text):
        ch = text[pos]
        pos += 1
        if not quote and _is_space(ch):
            if chars or blank_ok:
                words.append("".join(chars))
            chars, blank_ok = [], False
            continue
        if not quote and ch in "'\"":
            quote, blank_ok = ch, True
        elif quote and ch == quote:
            quote = ""
            chars.append(ch)
            continue
        if ch == escape and quote != "'":
            if pos == len(text):
                quote = ""
                continue
            chars.append(ch)
            ch = text[pos]
            pos += 1
        chars.append(ch)
    if chars or blank_ok:
        words.append("".join(chars))
    return words


def json_array(rest: str) -> list[object] | None:
    """The JSON array ``rest`` holds, or ``None`` when it is not one (shell
    form). NaN and Infinity are not JSON here, as in Go."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, list) else None


def _no_constant(name: str) -> object:
    raise ValueError(f"not JSON: {name}")
