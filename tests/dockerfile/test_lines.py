"""Lines, comments, continuations and parser directives."""

from __future__ import annotations

from pathlib import Path

import pytest

from layercake.dockerfile import Command, Location, Run, parse
from layercake.errors import DockerfileSyntaxError


def _run(text: str) -> Run:
    instruction = parse(text).stages[0].instructions[0]
    assert isinstance(instruction, Run)
    return instruction


def test_comment_lines_and_blank_lines_are_skipped() -> None:
    """Comments and blank lines produce no instruction."""
    dockerfile = parse("# first\n\nFROM base\n   # indented comment\n\nRUN true\n")
    assert [i.keyword for i in dockerfile.stages[0].instructions] == ["RUN"]
    assert dockerfile.stages[0].instructions[0].location == Location(None, 6, 6, 1)


def test_continuation_joins_lines_keeping_their_leading_whitespace() -> None:
    """A trailing backslash joins the next line as is, indentation included."""
    run = _run("FROM base\nRUN echo a \\\n    b\n")
    assert run.command == Command(("echo a     b",), shell=True)


def test_comment_inside_a_continuation_is_dropped() -> None:
    """A comment line between continued lines is left out of the command."""
    run = _run("FROM base\nRUN apt-get install \\\n  # the editor\n  vim\n")
    assert run.command.args == ("apt-get install   vim",)
    assert run.location == Location(None, 2, 4, 1)


def test_empty_line_inside_a_continuation_is_skipped() -> None:
    """An empty line does not end a continued instruction."""
    run = _run("FROM base\nRUN echo \\\n\n  done\n")
    assert run.command.args == ("echo   done",)


def test_whitespace_after_the_escape_character_still_continues() -> None:
    """Spaces and tabs after the trailing backslash are ignored."""
    run = _run("FROM base\nRUN a \\ \t\nb\n")
    assert run.command.args == ("a b",)


def test_continuation_at_end_of_file_ends_the_instruction() -> None:
    """A continuation on the last line simply ends the instruction."""
    run = _run("FROM base\nRUN echo a \\")
    assert run.command.args == ("echo a",)
    assert run.location == Location(None, 2, 2, 1)


def test_backtick_escape_directive_changes_the_continuation_character() -> None:
    """With escape=` a backtick continues a line and a backslash does not."""
    text = "# escape=`\nFROM base\nRUN dir c:\\\nRUN echo a `\n  b\n"
    dockerfile = parse(text)
    first, second = dockerfile.stages[0].instructions
    assert dockerfile.escape == "`"
    assert dockerfile.directives == {"escape": "`"}
    assert isinstance(first, Run) and first.command.args == ("dir c:\\",)
    assert isinstance(second, Run) and second.command.args == ("echo a   b",)


def test_crlf_line_ends_are_accepted() -> None:
    """CRLF files parse like LF files."""
    run = _run("FROM base\r\nRUN a \\\r\n  b\r\n")
    assert run.command.args == ("a   b",)
    assert run.original == "RUN a \\\n  b"


def test_utf8_byte_order_mark_is_ignored() -> None:
    """A BOM before the first line is not part of the keyword."""
    dockerfile = parse("\ufeff# syntax=docker/dockerfile:1\nFROM base\n")
    assert dockerfile.directives == {"syntax": "docker/dockerfile:1"}
    assert dockerfile.stages[0].base.image == "base"


def test_directives_are_case_insensitive_and_allow_spaces() -> None:
    """`# ESCAPE = `` is the escape directive, stored under a lower-case name."""
    dockerfile = parse("# ESCAPE = `\n#Syntax=x/y\n# check=skip=all\nFROM base\n")
    assert dockerfile.directives == {
        "escape": "`",
        "syntax": "x/y",
        "check": "skip=all",
    }
    assert dockerfile.escape == "`"


def test_directive_after_an_instruction_is_a_comment() -> None:
    """Directives stop being recognised after the first instruction."""
    dockerfile = parse("FROM base\n# escape=`\n")
    assert dockerfile.directives == {}
    assert dockerfile.escape == "\\"


def test_directive_after_a_plain_comment_is_a_comment() -> None:
    """A comment that is not a directive ends the directive section."""
    dockerfile = parse("# hello\n# escape=`\nFROM base\n")
    assert dockerfile.directives == {}


def test_directive_after_an_empty_line_is_a_comment() -> None:
    """An empty line ends the directive section."""
    dockerfile = parse("# syntax=a\n\n# escape=`\nFROM base\n")
    assert dockerfile.directives == {"syntax": "a"}
    assert dockerfile.escape == "\\"


def test_unknown_directive_is_a_comment_and_ends_directives() -> None:
    """An unknown directive is an ordinary comment; later directives are too."""
    dockerfile = parse("# unknown=value\n# escape=`\nFROM base\n")
    assert dockerfile.directives == {}


def test_duplicate_directive_is_an_error_on_its_line() -> None:
    """The same directive twice is a syntax error naming it."""
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse("# escape=`\n# escape=\\\nFROM base\n")
    assert caught.value.reason == "only one escape parser directive can be used"
    assert caught.value.line == 2
    assert str(caught.value) == (
        "<dockerfile>:2:1: only one escape parser directive can be used"
    )


def test_invalid_escape_directive_is_an_error() -> None:
    """Only a backslash or a backtick can be the escape character."""
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse("# escape=x\nFROM base\n")
    assert caught.value.reason == "invalid escape character 'x': use ` or \\"
    assert caught.value.line == 1


def test_keywords_are_accepted_in_any_case() -> None:
    """`from` and `rUn` are FROM and RUN."""
    dockerfile = parse("from base\nrUn true\n")
    assert dockerfile.stages[0].base.keyword == "FROM"
    assert dockerfile.stages[0].instructions[0].keyword == "RUN"


def test_location_gives_line_range_and_keyword_column() -> None:
    """Indented instructions report the column of their keyword."""
    run = _run("FROM base\n\n   RUN a \\\n  b \\\n  c\n")
    assert run.location == Location(None, 3, 5, 4)


def test_original_is_the_source_as_written() -> None:
    """`original` keeps continuation lines and comments inside them."""
    run = _run("FROM base\n  RUN a \\\n  # note\n  b\n")
    assert run.original == "RUN a \\\n  # note\n  b"


def test_empty_text_is_an_error() -> None:
    """A file with only comments has no instructions."""
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse("# nothing\n\n")
    assert caught.value.reason == "the dockerfile has no instructions"


def test_parse_reads_a_path_and_reports_it(tmp_path: Path) -> None:
    """A PathLike is read and becomes the path of locations and errors."""
    dockerfile_path = tmp_path / "Dockerfile"
    dockerfile_path.write_text("FROM base\nCOPY one\n")
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse(dockerfile_path)
    assert caught.value.path == str(dockerfile_path)
    assert str(caught.value).startswith(f"{dockerfile_path}:2:1: ")

    dockerfile_path.write_text("FROM base\n")
    parsed = parse(dockerfile_path)
    assert parsed.path == str(dockerfile_path)
    assert parsed.stages[0].base.location.path == str(dockerfile_path)


def test_text_with_a_path_uses_that_path() -> None:
    """`path=` names text given directly."""
    dockerfile = parse("FROM base\n", path="ctx/Dockerfile")
    assert dockerfile.stages[0].base.location == Location("ctx/Dockerfile", 1, 1, 1)
