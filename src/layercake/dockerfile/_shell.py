"""Shell-word processing of Dockerfile arguments, as BuildKit does it.

One word is scanned left to right: ``'...'`` is literal, ``"..."`` is literal
except for ``$`` expansions and escapes of ``"``, ``$`` and the escape
character, the escape character outside quotes takes the next character
literally, and ``$NAME``, ``${NAME}`` and ``${NAME<op>word}`` expand from the
given variables (an unset one expands to the empty string).

:func:`expand_words` also splits the result into words on unquoted
whitespace, including whitespace that came out of a variable's value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from layercake.dockerfile._instructions import Location
from layercake.errors import DockerfileError, DockerfileSyntaxError

__all__ = ["expand", "expand_words", "lex_words"]

_SPECIAL_PARAMETERS = frozenset("@*#?-$!0")
_PATTERN_SPECIALS = frozenset("[]{}.+()|^$")


def expand(
    word: str,
    variables: Mapping[str, str],
    *,
    escape: str = "\\",
    location: Location | None = None,
) -> str:
    """Return ``word`` with quotes removed, escapes applied and ``$`` expanded.

    Raises:
        DockerfileSyntaxError: an unterminated quote, a bad ``${...}`` or an
            invalid pattern; path and line come from ``location``.
        DockerfileError: ``${V:?msg}`` or ``${V?msg}`` met an unset (or, with
            ``:``, empty) variable; the message names ``V`` and ``msg``.
        ValueError: ``escape`` is neither a backslash nor a backtick.
    """
    return _Lexer(word, variables, escape=escape, location=location).run()[0]


def expand_heredoc(
    content: str,
    variables: Mapping[str, str],
    *,
    escape: str = "\\",
    location: Location | None = None,
) -> str:
    """Expand ``$`` references in a heredoc body, keeping quotes and escapes.

    This is how BuildKit expands an unquoted heredoc of COPY or ADD: only
    variables change; quote characters and escape characters stay as written.

    Raises:
        DockerfileSyntaxError: a bad ``${...}``; path and line from ``location``.
        DockerfileError: as :func:`expand`.
    """
    lexer = _Lexer(
        content,
        variables,
        escape=escape,
        location=location,
        raw_quotes=True,
        raw_escapes=True,
    )
    return lexer.run()[0]


def expand_words(
    text: str,
    variables: Mapping[str, str],
    *,
    escape: str = "\\",
    location: Location | None = None,
) -> list[str]:
    """Expand ``text`` like :func:`expand` and split it on unquoted whitespace.

    Whitespace inside quotes or after the escape character stays in its word;
    whitespace produced by a ``$`` expansion splits, as in BuildKit. Empty
    words (``""`` on its own) are dropped.

    Raises:
        DockerfileSyntaxError: as :func:`expand`.
        DockerfileError: as :func:`expand`.
    """
    return _Lexer(text, variables, escape=escape, location=location).run()[1]


def lex_words(
    text: str,
    *,
    raw_quotes: bool = False,
    raw_escapes: bool = False,
) -> list[str]:
    """Split ``text`` into words with no variables set and ``$`` kept as is.

    With ``raw_quotes``/``raw_escapes`` the quotes and backslashes stay in the
    words. This is how heredoc markers are found on an instruction line.

    Raises:
        DockerfileSyntaxError: an unterminated quote or a bad ``${...}``.
    """
    lexer = _Lexer(
        text,
        {},
        escape="\\",
        location=None,
        raw_quotes=raw_quotes,
        raw_escapes=raw_escapes,
        skip_unset=True,
    )
    return lexer.run()[1]


def _is_space(ch: str) -> bool:
    # Go's unicode.IsSpace, which unlike str.isspace excludes \x1c-\x1f.
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


class _Words:
    """Collects the words of an expansion, splitting on unquoted whitespace."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if not _is_space(ch):
            self.add_raw(ch)
        elif self.in_word and self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False

    def add_text(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def finish(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    """One pass over one word; ``run`` returns the word and its split words."""

    def __init__(
        self,
        text: str,
        variables: Mapping[str, str],
        *,
        escape: str,
        location: Location | None,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_unset: bool = False,
    ) -> None:
        if escape not in ("\\", "`"):
            raise ValueError(f"escape must be a backslash or a backtick: {escape!r}")
        self.text = text
        self.pos = 0
        self.variables = variables
        self.escape = escape
        self.location = location
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset

    def run(self) -> tuple[str, list[str]]:
        return self._until("", self.raw_escapes)

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1 if ch else 0
        return ch

    def _syntax_error(self, reason: str) -> DockerfileSyntaxError:
        where = self.location
        return DockerfileSyntaxError(
            f"{reason} in {self.text!r}",
            path=where.path if where else None,
            line=where.line if where else None,
            column=where.column if where else None,
        )

    def _until(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Process up to ``stop`` (consumed) or the end when ``stop`` is ""."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._scan(stop)
        finally:
            self.raw_escapes = saved

    def _scan(self, stop: str) -> tuple[str, list[str]]:
        handlers: dict[str, Callable[[], str]] = {
            "$": self._dollar,
            "'": self._single_quoted,
            '"': self._double_quoted,
        }
        result: list[str] = []
        words = _Words()

        while (ch := self._peek()) != "":
            if stop and ch == stop:
                self._next()
                return "".join(result), words.finish()
            handler = handlers.get(ch)
            if handler is not None:
                piece = handler()
                result.append(piece)
                if ch == "$":
                    words.add_text(piece)
                else:
                    words.add_raw(piece)
                continue

            ch = self._next()
            if ch != self.escape:
                words.add_char(ch)
                result.append(ch)
                continue
            if self.raw_escapes:
                words.add_raw(ch)
                result.append(ch)
            ch = self._next()
            if ch == "":
                break
            words.add_raw(ch)
            result.append(ch)

        if stop:
            raise _Unterminated(stop)
        return "".join(result), words.finish()

    def _single_quoted(self) -> str:
        quote = self._next()
        result = [quote] if self.raw_quotes else []
        while (ch := self._next()) != "'":
            if ch == "":
                raise self._syntax_error("unterminated single quote")
            result.append(ch)
        if self.raw_quotes:
            result.append(ch)
        return "".join(result)

    def _double_quoted(self) -> str:
        quote = self._next()
        result = [quote] if self.raw_quotes else []
        while True:
            ch = self._peek()
            if ch == "":
                raise self._syntax_error("unterminated double quote")
            if ch == '"':
                self._next()
                if self.raw_quotes:
                    result.append(ch)
                return "".join(result)
            if ch == "$":
                result.append(self._dollar())
                continue
            ch = self._next()
            if ch == self.escape:
                if self.raw_escapes:
                    result.append(ch)
                following = self._peek()
                if following == "":
                    continue
                if following in ('"', "$", self.escape):
                    ch = self._next()
            result.append(ch)

    def _name(self) -> str:
        """Read a variable name: letters, digits and ``_``, or a special one."""
        start = self.pos
        first = self._peek()
        if first.isdecimal():
            while self._peek().isdecimal():
                self._next()
            return self.text[start : self.pos]
        if first in _SPECIAL_PARAMETERS and first:
            return self._next()
        while (ch := self._peek()) and (ch.isalpha() or ch.isdecimal() or ch == "_"):
            self._next()
        return self.text[start : self.pos]

    def _lookup(self, name: str) -> str | None:
        return self.variables.get(name)

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value = self._lookup(name)
            if value is None:
                return "$" + name if self.skip_unset else ""
            return value

        self._next()
        first = self._peek()
        if first == "":
            raise self._syntax_error("missing '}'")
        if first in "{}:":
            raise self._syntax_error("bad substitution")
        name = self._name()
        operator = self._next()
        if operator == "}":
            value = self._lookup(name)
            if value is None:
                return "${" + name + "}" if self.skip_unset else ""
            return value
        if operator == "/":
            return self._replace(name)
        if operator == "":
            raise self._syntax_error("missing '}'")
        null_is_unset = operator == ":"
        if null_is_unset:
            operator += self._next()
        if operator[-1:] not in ("+", "-", "?", "#", "%"):
            raise self._syntax_error(f"unsupported modifier ({operator})")
        return self._modifier(name, operator, null_is_unset)

    def _operand(self, stop: str, raw_escapes: bool, missing: str) -> str:
        try:
            return self._until(stop, raw_escapes)[0]
        except _Unterminated:
            raise self._syntax_error(missing) from None

    def _modifier(self, name: str, operator: str, null_is_unset: bool) -> str:
        kind = operator[-1]
        word = self._operand("}", kind in "#%", "missing '}'")
        value = self._lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + operator + word + "}"
        unset = value is None or (null_is_unset and value == "")

        if kind == "-":
            return word if unset else str(value)
        if kind == "+":
            return "" if unset else word
        if kind == "?":
            if value is None:
                message = word or "is not allowed to be unset"
            elif null_is_unset and value == "":
                message = word or "is not allowed to be empty"
            else:
                return value
            where = self.location
            raise DockerfileError(
                f"{name}: {message}",
                path=where.path if where else None,
                line=where.line if where else None,
                column=where.column if where else None,
            )

        greedy = word.startswith(kind)
        if greedy:
            word = word[1:]
        subject = value or ""
        if kind == "#":
            return self._trim_prefix(word, subject, greedy)
        reversed_result = self._trim_prefix(
            _reverse_pattern(word), subject[::-1], greedy
        )
        return reversed_result[::-1]

    def _trim_prefix(self, pattern: str, value: str, greedy: bool) -> str:
        match = self._compile(pattern, greedy).match(value)
        return value[match.end() :] if match else value

    def _replace(self, name: str) -> str:
        replace_all = self._peek() == "/"
        if replace_all:
            self._next()
        pattern = self._operand("/", True, "missing '/'")
        replacement = self._operand("}", True, "missing '}'")
        value = self._lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"

        regex = self._compile(pattern, greedy=True)
        subject = value or ""
        count = 0 if replace_all else 1
        return regex.sub(lambda _: replacement, subject, count=count)

    def _compile(self, pattern: str, greedy: bool) -> re.Pattern[str]:
        try:
            return re.compile(_pattern_to_regex(pattern, greedy))
        except ValueError as error:
            raise self._syntax_error(
                f"invalid pattern ({pattern}) in substitution: {error}"
            ) from None


class _Unterminated(Exception):
    """Internal: the end came before the ``stop`` character of an operand."""

    def __init__(self, stop: str) -> None:
        self.stop = stop
        super().__init__(stop)


def _pattern_to_regex(pattern: str, greedy: bool) -> str:
    """Turn a shell pattern (``*``, ``?``, backslash escapes) into a regex.

    Raises:
        ValueError: a backslash escapes something other than ``*``, ``?``,
            ``\\``, ``}`` or ``/``.
    """
    star = ".*" if greedy else ".*?"
    out: list[str] = []
    pos = 0
    while pos < len(pattern):
        ch = pattern[pos]
        pos += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[pos : pos + 1]
            if following in ("}", "/"):
                continue
            if following not in ("*", "?", "\\"):
                raise ValueError(f"invalid escape '\\{following}'")
            out.append("\\" + following)
            pos += 1
        elif ch in _PATTERN_SPECIALS:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each ``\\x`` escape pair in its order."""
    pieces: list[str] = []
    pos = 0
    while pos < len(pattern):
        if pattern[pos] == "\\" and pos + 1 < len(pattern):
            pieces.append(pattern[pos : pos + 2])
            pos += 2
        else:
            pieces.append(pattern[pos])
            pos += 1
    return "".join(reversed(pieces))
