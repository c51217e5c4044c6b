"""Shell-word expansion: quotes, escapes and every ${...} operator."""

from __future__ import annotations

from pathlib import Path

import pytest

from layercake.dockerfile import Location, expand, expand_words
from layercake.errors import DockerfileError, DockerfileSyntaxError

VARIABLES = {
    "FOO": "foo",
    "EMPTY": "",
    "FILE": "archive.tar.gz",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "SPACED": "a b  c",
    "STARS": "a*b*c",
}


def _cases() -> list[tuple[str, str]]:
    table = Path(__file__).with_name("expand_cases.tsv").read_text(encoding="utf-8")
    rows = [line for line in table.splitlines() if line and not line.startswith("#")]
    return [(row.split("\t", 1)[0], row.split("\t", 1)[1]) for row in rows]


@pytest.mark.parametrize(("word", "expected"), _cases())
def test_expand_table(word: str, expected: str) -> None:
    """Each row of expand_cases.tsv expands to its result or its error."""
    if expected.startswith("error: "):
        with pytest.raises(DockerfileSyntaxError) as syntax:
            expand(word, VARIABLES)
        assert syntax.value.reason == expected.removeprefix("error: ")
    elif expected.startswith("fails: "):
        with pytest.raises(DockerfileError) as failure:
            expand(word, VARIABLES)
        assert type(failure.value) is DockerfileError
        assert failure.value.reason == expected.removeprefix("fails: ")
    else:
        assert expand(word, VARIABLES) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a b", ["a", "b"]),
        ("  a   b  ", ["a", "b"]),
        ('"a b" c', ["a b", "c"]),
        ("'a  b'c d", ["a  bc", "d"]),
        ("a\\ b", ["a b"]),
        ("$SPACED", ["a", "b", "c"]),
        ('"$SPACED"', ["a b  c"]),
        ("x$SPACED", ["xa", "b", "c"]),
        ("${UNSET:-1 2}", ["1", "2"]),
        ('""', []),
        ('x""', ["x"]),
        ("'' a", ["a"]),
        ("$EMPTY", []),
        ("80/tcp 443", ["80/tcp", "443"]),
    ],
)
def test_expand_words_splits_on_unquoted_whitespace(
    text: str, words: list[str]
) -> None:
    """Unquoted whitespace, also from expanded values, separates words."""
    assert expand_words(text, VARIABLES) == words


def test_expand_keeps_whitespace_of_one_word() -> None:
    """expand() never splits: spaces from a value stay."""
    assert expand("$SPACED x", VARIABLES) == "a b  c x"


def test_backtick_escape_character() -> None:
    """With a backtick escape, the backslash is an ordinary character."""
    assert expand("C:\\dir`$FOO", VARIABLES, escape="`") == "C:\\dir$FOO"
    assert expand('"a`"b"', VARIABLES, escape="`") == 'a"b'


def test_syntax_error_carries_the_location() -> None:
    """A malformed word reports the path and line it was given."""
    where = Location("Dockerfile", 4, 4, 1)
    with pytest.raises(DockerfileSyntaxError) as caught:
        expand("${X", {}, location=where)
    assert str(caught.value) == "Dockerfile:4:1: missing '}' in '${X'"


def test_required_variable_error_names_it_and_its_message() -> None:
    """${V:?msg} on an unset V fails with V and msg, at the location."""
    where = Location("Dockerfile", 9, 9, 1)
    with pytest.raises(DockerfileError) as caught:
        expand("${VERSION:?set VERSION}", {}, location=where)
    assert str(caught.value) == "Dockerfile:9:1: VERSION: set VERSION"


def test_variables_can_be_any_mapping() -> None:
    """Any Mapping of str to str supplies the values."""
    from types import MappingProxyType

    assert expand("${A}-$B", MappingProxyType({"A": "1", "B": "2"})) == "1-2"
