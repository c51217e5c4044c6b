"""Property tests: any text parses or fails with a Dockerfile error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from layercake.dockerfile import Dockerfile, dump, expand, expand_words, parse
from layercake.errors import DockerfileError

_TOKENS = st.sampled_from(
    [
        "FROM",
        "from",
        "RUN",
        "COPY",
        "ADD",
        "ARG",
        "ENV",
        "LABEL",
        "CMD",
        "ENTRYPOINT",
        "SHELL",
        "ONBUILD",
        "HEALTHCHECK",
        "NONE",
        "VOLUME",
        "EXPOSE",
        "WORKDIR",
        "USER",
        "AS",
        "base",
        "--from=x",
        "--mount=type=cache",
        "--link",
        "--",
        "-",
        " ",
        "\t",
        "\n",
        "\r\n",
        "\\",
        "`",
        "#",
        "# escape=`",
        "# syntax=x",
        "=",
        '"',
        "'",
        "[",
        "]",
        ",",
        '["a", "b"]',
        "$",
        "${",
        "}",
        ":-",
        "#",
        "%%",
        "/",
        "<<",
        "<<-",
        "EOF",
        "<<EOF",
        "\ufeff",
        "é",
        "1",
    ]
)

_DOCKERFILE_LIKE = st.lists(_TOKENS, max_size=40).map("".join)


def _check(text: str) -> None:
    try:
        result = parse(text)
    except DockerfileError:
        return
    assert isinstance(result, Dockerfile)
    assert dump(result).endswith("\n")


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_arbitrary_text_parses_or_raises_a_dockerfile_error(text: str) -> None:
    """parse() of any text returns a Dockerfile or raises DockerfileError."""
    _check(text)


@settings(max_examples=600, deadline=None)
@given(_DOCKERFILE_LIKE)
def test_dockerfile_like_text_parses_or_raises_a_dockerfile_error(text: str) -> None:
    """parse() of text made of Dockerfile tokens never fails another way."""
    _check(text)


@settings(max_examples=600, deadline=None)
@given(_DOCKERFILE_LIKE, st.sampled_from(["\\", "`"]))
def test_expansion_of_any_word_gives_text_or_a_dockerfile_error(
    word: str, escape: str
) -> None:
    """expand() and expand_words() return strings or raise DockerfileError."""
    variables = {"base": "b a s e", "EOF": "", "x": "*"}
    try:
        assert isinstance(expand(word, variables, escape=escape), str)
        words = expand_words(word, variables, escape=escape)
    except DockerfileError:
        return
    assert all(isinstance(each, str) and each for each in words)
