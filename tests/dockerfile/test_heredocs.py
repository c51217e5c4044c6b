"""Here-documents on RUN, COPY and ADD."""

from __future__ import annotations

import pytest

from layercake.dockerfile import (
    Command,
    Copy,
    Env,
    Heredoc,
    Instruction,
    Location,
    Run,
    parse,
)
from layercake.errors import DockerfileSyntaxError


def _instructions(body: str) -> list[Instruction]:
    return list(parse("FROM base\n" + body).stages[0].instructions)


def test_run_heredoc_body_and_location() -> None:
    """The body is attached to RUN; the command keeps the marker."""
    (run, after) = _instructions("RUN <<EOF\necho hi\n# not a comment\nEOF\nUSER x\n")
    assert isinstance(run, Run)
    assert run.command == Command(("<<EOF",), shell=True)
    assert run.heredocs == (Heredoc("EOF", "echo hi\n# not a comment\n", True, False),)
    assert run.location == Location(None, 2, 5, 1)
    assert run.original == "RUN <<EOF\necho hi\n# not a comment\nEOF"
    assert after.location == Location(None, 6, 6, 1)


def test_dash_heredoc_strips_leading_tabs() -> None:
    """`<<-` removes leading tabs from the body and the terminator line."""
    (run,) = _instructions("RUN <<-EOT\n\t\techo a\n\t  b\n\tEOT\n")
    assert isinstance(run, Run)
    assert run.heredocs == (Heredoc("EOT", "echo a\n  b\n", True, True),)


@pytest.mark.parametrize(
    ("marker", "name"),
    [("<<'EOF'", "EOF"), ('<<"EOF"', "EOF"), ('<<E"O"F', "EOF"), ("<<-'EOF'", "EOF")],
)
def test_quoted_delimiter_turns_off_expansion(marker: str, name: str) -> None:
    """Any quote in the delimiter means the body is not expanded."""
    (run,) = _instructions(f"RUN cat {marker}\n$HOME\n{name}\n")
    assert isinstance(run, Run)
    assert [(doc.name, doc.expand, doc.content) for doc in run.heredocs] == [
        (name, False, "$HOME\n")
    ]


def test_several_heredocs_on_one_line_are_read_in_order() -> None:
    """Bodies follow each other in the order the markers appear."""
    text = "RUN python3 - <<PY && sh <<'SH' > out\nprint(1)\nPY\necho $X\nSH\n"
    (run,) = _instructions(text)
    assert isinstance(run, Run)
    assert run.command.args == ("python3 - <<PY && sh <<'SH' > out",)
    assert run.heredocs == (
        Heredoc("PY", "print(1)\n", True, False),
        Heredoc("SH", "echo $X\n", False, False),
    )
    assert run.location.end_line == 6


def test_copy_heredoc_becomes_a_file() -> None:
    """COPY <<NAME writes the body to a file called NAME; markers are not sources."""
    (copy,) = _instructions(
        "COPY --chmod=644 a <<conf.txt /etc/\nkey=value\nconf.txt\n"
    )
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest) == (("a",), "/etc/")
    assert copy.heredocs == (Heredoc("conf.txt", "key=value\n", True, False),)
    assert copy.flags == {"chmod": "644"}


def test_heredoc_as_copy_destination_is_an_error() -> None:
    """A heredoc cannot be where COPY writes to."""
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse("FROM base\nCOPY a <<EOF\nx\nEOF\n")
    assert (caught.value.reason, caught.value.line) == (
        "COPY cannot accept a heredoc as a destination",
        2,
    )


def test_unterminated_heredoc_is_an_error_at_its_instruction() -> None:
    """A heredoc without its terminator line names the delimiter."""
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse("FROM base\n  RUN <<EOF\necho\nEOFX\n")
    assert str(caught.value) == "<dockerfile>:2:3: unterminated heredoc 'EOF'"


def test_exec_form_and_other_instructions_have_no_heredocs() -> None:
    """JSON-form RUN and ENV leave `<<` alone and the next line is parsed."""
    run, env = _instructions('RUN ["cat", "<<EOF"]\nENV A=<<EOF\n')
    assert isinstance(run, Run) and run.heredocs == ()
    assert run.command == Command(("cat", "<<EOF"), shell=False)
    assert isinstance(env, Env) and env.pairs == (("A", "<<EOF"),)


def test_crlf_heredoc_body_uses_lf() -> None:
    """Bodies from CRLF files end their lines with \\n."""
    dockerfile = parse("FROM base\r\nRUN <<EOF\r\na\r\nb\r\nEOF\r\n")
    (run,) = dockerfile.stages[0].instructions
    assert isinstance(run, Run)
    assert run.heredocs == (Heredoc("EOF", "a\nb\n", True, False),)


def test_shift_operator_is_not_a_heredoc() -> None:
    """`<<` inside a word or quotes opens nothing."""
    (run, user) = _instructions('RUN echo "a<<b" x<<y $((1<<2))\nUSER me\n')
    assert isinstance(run, Run) and run.heredocs == ()
    assert user.location.line == 3
