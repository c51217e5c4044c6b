"""Every instruction: forms, flags, arguments and their errors."""

from __future__ import annotations

import pytest

from layercake.dockerfile import (
    Add,
    Arg,
    Cmd,
    Command,
    Copy,
    Entrypoint,
    Env,
    Expose,
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
    parse,
    parse_instruction,
)
from layercake.errors import DockerfileError, DockerfileSyntaxError


def _one(line: str) -> Instruction:
    """Parse `line` as the only instruction of a stage based on `base`."""
    instructions = parse(f"FROM base\n{line}\n").stages[0].instructions
    assert len(instructions) == 1
    return instructions[0]


def _error(text: str) -> DockerfileSyntaxError:
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse(text)
    return caught.value


def test_from_with_platform_and_stage_name() -> None:
    """FROM keeps the raw image, lower-cases the name and keeps --platform."""
    base = parse("FROM --platform=$BUILDPLATFORM ${IMG}:1 AS Builder\n").stages[0]
    assert (base.base.image, base.base.name, base.base.platform) == (
        "${IMG}:1",
        "builder",
        "$BUILDPLATFORM",
    )
    assert base.name == "builder"
    assert base.index == 0


def test_from_alone_is_an_error() -> None:
    """FROM needs an image."""
    error = _error("FROM\n")
    assert (error.reason, error.line) == (
        "FROM requires either one or three arguments",
        1,
    )


def test_from_with_two_words_is_an_error() -> None:
    """`FROM a b` is neither `FROM a` nor `FROM a AS b`."""
    assert _error("FROM a b\n").reason == "FROM requires either one or three arguments"


def test_invalid_stage_name_is_an_error() -> None:
    """A stage name must start with a letter."""
    assert _error("FROM a AS 1x\n").reason == (
        "invalid name for build stage: '1x', name can't start with a number "
        "or contain symbols"
    )


def test_duplicate_stage_name_is_an_error() -> None:
    """Two stages cannot share a name, whatever its case."""
    error = _error("FROM a AS one\nFROM b AS ONE\n")
    assert (error.reason, error.line) == ("duplicate stage name 'one'", 2)


def test_stage_lookup_by_name_and_index() -> None:
    """Dockerfile.stage finds a stage by name (any case) or by index."""
    dockerfile = parse("FROM a AS build\nFROM b\n")
    assert dockerfile.stage("BUILD").base.image == "a"
    assert dockerfile.stage(1).base.image == "b"
    with pytest.raises(DockerfileError) as caught:
        dockerfile.stage("nope")
    assert caught.value.reason == "no stage named 'nope'"
    with pytest.raises(DockerfileError) as caught:
        dockerfile.stage(2)
    assert caught.value.reason == "no stage with index 2 (the dockerfile has 2)"


def test_arg_with_several_names_gives_one_arg_each() -> None:
    """`ARG a=b c` is two Args sharing the location and original text."""
    dockerfile = parse('ARG a="x y" c\nFROM base\nARG d=\n')
    first, second = dockerfile.global_args
    assert (first.name, first.default) == ("a", '"x y"')
    assert (second.name, second.default) == ("c", None)
    assert first.location == second.location == Location(None, 1, 1, 1)
    assert first.original == second.original == 'ARG a="x y" c'
    assert dockerfile.stages[0].instructions == (
        Arg("d", "", location=Location(None, 3, 3, 1), original="ARG d="),
    )


def test_instruction_before_first_from_other_than_arg_is_an_error() -> None:
    """Only ARG can come before the first FROM."""
    error = _error("ARG x\nRUN true\nFROM base\n")
    assert (error.reason, error.line) == (
        "RUN cannot come before the first FROM (only ARG can)",
        2,
    )


def test_dockerfile_without_from_is_an_error() -> None:
    """ARGs alone make no build stage."""
    assert _error("ARG x\n").reason == "the dockerfile has no FROM instruction"


def test_env_pairs_keep_raw_values() -> None:
    """ENV name=value pairs keep quotes and escapes for later expansion."""
    env = _one('ENV A=1 B="two words" C=a\\ b D=')
    assert env == Env(
        (("A", "1"), ("B", '"two words"'), ("C", "a\\ b"), ("D", "")),
        location=Location(None, 2, 2, 1),
        original='ENV A=1 B="two words" C=a\\ b D=',
    )


def test_env_legacy_form_takes_the_rest_of_the_line() -> None:
    """`ENV key value with spaces` is one pair."""
    env = _one('ENV KEY some "value" here')
    assert isinstance(env, Env)
    assert env.pairs == (("KEY", 'some "value" here'),)


def test_env_without_arguments_is_an_error() -> None:
    """ENV needs at least one pair."""
    error = _error("FROM base\nENV\n")
    assert (error.reason, error.line) == ("ENV requires at least one argument", 2)


def test_env_legacy_form_needs_a_value() -> None:
    """`ENV KEY` alone has no value."""
    assert _error("FROM base\nENV KEY\n").reason == "ENV must have two arguments"


def test_env_pair_without_equals_is_an_error() -> None:
    """In the name=value form every word needs an `=`."""
    assert _error("FROM base\nENV a=1 b\n").reason == (
        "can't find = in 'b': must be of the form name=value"
    )


def test_env_blank_name_is_an_error() -> None:
    """`ENV =x` has no name."""
    assert _error("FROM base\nENV =x\n").reason == "ENV names can not be blank"


def test_label_pairs() -> None:
    """LABEL is parsed like ENV."""
    label = _one('LABEL "com.example.a"="b c" d=e')
    assert isinstance(label, Label)
    assert label.pairs == (('"com.example.a"', '"b c"'), ("d", "e"))


def test_run_shell_form_keeps_the_text() -> None:
    """Shell form RUN is one argument, handed to the shell."""
    run = _one("RUN echo $HOME && ls")
    assert isinstance(run, Run)
    assert run.command == Command(("echo $HOME && ls",), shell=True)
    assert run.flags == {}


def test_run_exec_form_is_the_json_list() -> None:
    """JSON form RUN is the list."""
    run = _one('RUN ["echo", "a b"]')
    assert isinstance(run, Run)
    assert run.command == Command(("echo", "a b"), shell=False)


def test_run_flags_may_repeat_mount() -> None:
    """--mount can be given more than once; every flag is a tuple."""
    run = _one(
        "RUN --mount=type=cache,target=/a --network=none "
        '--mount="type=secret,id=x" make'
    )
    assert isinstance(run, Run)
    assert run.flags == {
        "mount": ("type=cache,target=/a", "type=secret,id=x"),
        "network": ("none",),
    }
    assert run.command.args == ("make",)


def test_run_without_a_command_is_an_error() -> None:
    """RUN needs something to run."""
    assert _error("FROM base\nRUN\n").reason == "RUN requires at least one argument"


def test_invalid_json_falls_back_to_shell_form() -> None:
    """Single quotes are not JSON, so the line is shell form."""
    cmd = _one("CMD [ \"a\", 'b' ]")
    assert isinstance(cmd, Cmd)
    assert cmd.command == Command(("[ \"a\", 'b' ]",), shell=True)


def test_json_array_of_non_strings_is_an_error() -> None:
    """A valid JSON array must hold strings only."""
    assert _error('FROM base\nCMD ["a", 1]\n').reason == (
        "when using JSON array syntax, arrays must be comprised of strings only"
    )


def test_cmd_and_entrypoint_forms() -> None:
    """CMD and ENTRYPOINT take either form; an empty one is the empty list."""
    assert _one('ENTRYPOINT ["/bin/app", "-v"]') == Entrypoint(
        Command(("/bin/app", "-v"), shell=False),
        location=Location(None, 2, 2, 1),
        original='ENTRYPOINT ["/bin/app", "-v"]',
    )
    cmd = _one("CMD")
    assert isinstance(cmd, Cmd)
    assert cmd.command == Command((), shell=False)


def test_shell_requires_json() -> None:
    """SHELL only takes the JSON form."""
    shell = _one('SHELL ["/bin/bash", "-c"]')
    assert isinstance(shell, Shell)
    assert shell.args == ("/bin/bash", "-c")
    assert _error("FROM base\nSHELL /bin/bash -c\n").reason == (
        "SHELL requires the arguments to be in JSON form"
    )


def test_copy_shell_form_splits_on_whitespace_with_flags() -> None:
    """COPY splits its arguments on whitespace; flags are strings."""
    copy = _one("COPY --from=build --chown=1:1 --link a  b /dest/")
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest) == (("a", "b"), "/dest/")
    assert copy.flags == {"from": "build", "chown": "1:1", "link": "true"}


def test_copy_exec_form_allows_spaces() -> None:
    """The JSON form of COPY keeps spaces in paths."""
    copy = _one('COPY ["my file", "other", "/my dest/"]')
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest) == (("my file", "other"), "/my dest/")


def test_copy_with_one_argument_is_an_error() -> None:
    """COPY needs a source and a destination."""
    error = _error("FROM base\nCOPY onlyone\n")
    assert (error.reason, error.line, error.column) == (
        "COPY requires at least two arguments: one or more sources and a destination",
        2,
        1,
    )


def test_copy_exclude_may_repeat() -> None:
    """--exclude patterns are all kept, in order."""
    copy = _one("COPY --exclude=*.md --exclude=tmp . /src")
    assert isinstance(copy, Copy)
    assert copy.excludes == ("*.md", "tmp")
    assert copy.flags == {"exclude": "*.md\ntmp"}


def test_add_flags() -> None:
    """ADD accepts its own flags, --checksum and --keep-git-dir among them."""
    add = _one("ADD --checksum=sha256:abc --keep-git-dir=false https://x/y.tgz /y")
    assert isinstance(add, Add)
    assert add.flags == {"checksum": "sha256:abc", "keep-git-dir": "false"}
    assert (add.sources, add.dest) == (("https://x/y.tgz",), "/y")


def test_unknown_flag_names_flag_and_instruction_with_a_suggestion() -> None:
    """A misspelt flag is named, with the closest flag of that instruction."""
    error = _error("FROM base\nCOPY --form=build a /b\n")
    assert error.reason == "unknown flag --form for COPY (did you mean --from?)"
    assert error.line == 2


def test_flag_of_another_instruction_is_unknown() -> None:
    """--mount belongs to RUN, not COPY."""
    assert _error("FROM base\nCOPY --mount=x a /b\n").reason == (
        "unknown flag --mount for COPY"
    )


def test_any_flag_on_an_instruction_without_flags_is_unknown() -> None:
    """ENV takes no flags at all."""
    assert _error("FROM base\nENV --x=1 a=b\n").reason == "unknown flag --x for ENV"


def test_duplicate_flag_is_an_error() -> None:
    """A single-valued flag can be given once."""
    assert _error("FROM base\nCOPY --from=a --from=b x /y\n").reason == (
        "duplicate flag --from for COPY"
    )


def test_flag_without_a_value_is_an_error() -> None:
    """String flags need `=value`."""
    assert _error("FROM base\nCOPY --from x /y\n").reason == (
        "missing a value on flag --from for COPY"
    )


def test_boolean_flag_values() -> None:
    """A boolean flag is true, `=true`, `=false`, and nothing else."""
    copy = _one("COPY --link=FALSE --parents a /b")
    assert isinstance(copy, Copy)
    assert copy.flags == {"link": "false", "parents": "true"}
    assert _error("FROM base\nCOPY --link=maybe a /b\n").reason == (
        "expecting a boolean value for flag --link, not 'maybe'"
    )


def test_unknown_instruction_suggests_a_close_keyword() -> None:
    """A misspelt keyword is named with the closest real one."""
    error = _error("FROM base\nCOPPY a /b\n")
    assert str(error) == (
        "<dockerfile>:2:1: unknown instruction: COPPY (did you mean COPY?)"
    )


def test_unknown_instruction_without_a_close_keyword() -> None:
    """No suggestion when nothing is close."""
    assert _error("FROM base\nXYZZY\n").reason == "unknown instruction: XYZZY"


def test_workdir_user_stopsignal_maintainer_take_the_rest_raw() -> None:
    """These take the whole rest of the line as one raw value."""
    assert _one("WORKDIR /a b/$X") == Workdir(
        "/a b/$X", location=Location(None, 2, 2, 1), original="WORKDIR /a b/$X"
    )
    user = _one("USER app:app")
    assert isinstance(user, User) and user.user == "app:app"
    signal = _one("STOPSIGNAL SIGKILL")
    assert isinstance(signal, StopSignal) and signal.signal == "SIGKILL"
    maintainer = _one("MAINTAINER Jo <jo@example.com>")
    assert isinstance(maintainer, Maintainer)
    assert maintainer.name == "Jo <jo@example.com>"


def test_workdir_without_a_path_is_an_error() -> None:
    """WORKDIR needs its path."""
    assert _error("FROM base\nWORKDIR\n").reason == (
        "WORKDIR requires exactly one argument"
    )


def test_expose_and_volume() -> None:
    """EXPOSE splits on whitespace; VOLUME takes JSON or whitespace words."""
    expose = _one("EXPOSE 80/tcp  443 $PORT")
    assert isinstance(expose, Expose)
    assert expose.ports == ("80/tcp", "443", "$PORT")
    volume = _one("VOLUME /data /logs")
    assert isinstance(volume, Volume) and volume.paths == ("/data", "/logs")
    volume = _one('VOLUME ["/my data"]')
    assert isinstance(volume, Volume) and volume.paths == ("/my data",)


def test_volume_with_an_empty_path_is_an_error() -> None:
    """An empty JSON string is not a volume."""
    assert _error('FROM base\nVOLUME ["/a", " "]\n').reason == (
        "VOLUME specified can not be an empty string"
    )


def test_healthcheck_forms() -> None:
    """HEALTHCHECK NONE has no command; CMD takes either form and flags."""
    check = _one("HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/")
    assert isinstance(check, Healthcheck)
    assert check.command == Command(("curl -f http://x/",), shell=True)
    assert check.flags == {"interval": "5s", "retries": "3"}
    check = _one('HEALTHCHECK CMD ["true"]')
    assert isinstance(check, Healthcheck)
    assert check.command == Command(("true",), shell=False)
    check = _one("HEALTHCHECK none")
    assert isinstance(check, Healthcheck) and check.command is None


def test_healthcheck_errors() -> None:
    """Unknown types, NONE with arguments and CMD without one are errors."""
    assert _error("FROM b\nHEALTHCHECK SHELL x\n").reason == (
        "unknown type 'SHELL' in HEALTHCHECK (try CMD)"
    )
    assert _error("FROM b\nHEALTHCHECK NONE x\n").reason == (
        "HEALTHCHECK NONE takes no arguments"
    )
    assert _error("FROM b\nHEALTHCHECK CMD\n").reason == (
        "missing command after HEALTHCHECK CMD"
    )


def test_onbuild_keeps_the_trigger_text() -> None:
    """ONBUILD stores the inner instruction as written."""
    onbuild = _one("onbuild  RUN echo $X")
    assert isinstance(onbuild, OnBuild)
    assert onbuild.trigger == "RUN echo $X"


def test_onbuild_rejects_chaining_from_and_bad_triggers() -> None:
    """ONBUILD ONBUILD, ONBUILD FROM and broken triggers are errors."""
    assert _error("FROM b\nONBUILD ONBUILD RUN x\n").reason == (
        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    )
    assert _error("FROM b\nONBUILD FROM x\n").reason == (
        "FROM isn't allowed as an ONBUILD trigger"
    )
    assert _error("FROM b\nONBUILD COPY x\n").reason == (
        "COPY requires at least two arguments: one or more sources and a destination"
    )


def test_parse_instruction_parses_a_trigger() -> None:
    """An ONBUILD trigger can be parsed on its own when a child is built."""
    where = Location("parent", 7, 7, 1)
    copy = parse_instruction("COPY --chown=a . /app", location=where)
    assert copy == Copy(
        (".",), "/app", {"chown": "a"}, location=where, original="COPY --chown=a . /app"
    )


def test_instructions_are_hashable_values() -> None:
    """Parsing the same text twice gives equal, hashable instructions."""
    text = "FROM a\nRUN --mount=type=tmpfs,target=/t x\nCOPY --link a /b\n"
    assert parse(text) == parse(text)
    assert hash(parse(text)) == hash(parse(text))


@pytest.mark.parametrize(
    ("flag", "reason"),
    [
        ("--interval=5", "invalid duration '5' for --interval"),
        ("--timeout=1x", "invalid duration '1x' for --timeout"),
        ("--start-period=500us", "--start-period cannot be less than 1ms"),
        ("--retries=many", "--retries must be an integer, not 'many'"),
        ("--retries=-1", "--retries cannot be negative (-1)"),
    ],
)
def test_healthcheck_flag_values_are_checked(flag: str, reason: str) -> None:
    """Durations must be Go durations of 0 or at least 1ms; retries >= 0."""
    assert _error(f"FROM b\nHEALTHCHECK {flag} CMD true\n").reason == reason


def test_healthcheck_accepts_go_durations() -> None:
    """Compound and fractional Go durations, and 0, are accepted."""
    check = _one(
        "HEALTHCHECK --interval=1m30s --timeout=1.5s --start-period=0 "
        "--start-interval=2ms --retries=0 CMD true"
    )
    assert isinstance(check, Healthcheck)
    assert check.flags["interval"] == "1m30s"
