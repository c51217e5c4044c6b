"""``.dockerignore`` patterns: which context paths a build never sees.

Patterns follow Docker's rules: one per line, ``#`` comments, a leading
``/`` and ``./`` mean the context root, ``*`` and ``?`` stay within a path
component, ``**`` crosses any number of them, ``!`` re-includes, and the
last matching pattern wins. A pattern that matches a directory excludes
everything beneath it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import attrs

__all__ = ["IgnoreRules"]


def _translate(pattern: str) -> re.Pattern[str]:
    """Compile one cleaned pattern into a regex over a whole relative path."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    # A match on a directory covers what lies beneath it.
    return re.compile("".join(out) + "(?:/.*)?", re.DOTALL)


@attrs.frozen
class _Rule:
    regex: re.Pattern[str]
    exclude: bool


@attrs.frozen
class IgnoreRules:
    """The parsed patterns of one ``.dockerignore``, in file order."""

    rules: tuple[_Rule, ...] = ()

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        """Read the patterns of a ``.dockerignore`` text."""
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            line = line.lstrip("!").strip()
            cleaned = posixpath.normpath(line.lstrip("/"))
            if cleaned in (".", ""):
                continue
            rules.append(_Rule(_translate(cleaned), exclude))
        return cls(tuple(rules))

    @classmethod
    def load(cls, context: Path) -> IgnoreRules:
        """Read ``context/.dockerignore``, or no rules when it does not exist."""
        path = context / ".dockerignore"
        if not path.is_file():
            return cls()
        return cls.parse(path.read_text(encoding="utf-8"))

    def excludes(self, relative: str) -> bool:
        """Tell whether a context-relative POSIX path is ignored."""
        excluded = False
        for rule in self.rules:
            if rule.exclude != excluded and rule.regex.fullmatch(relative):
                excluded = rule.exclude
        return excluded
