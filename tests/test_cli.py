"""Tests of the layercake command: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from layercake.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def cli(store):
    """Run the CLI against the test's store; return the exit code."""

    def run(*args: str) -> int:
        return main(["--store", str(store.path), *args])

    return run


def test_build_prints_steps_and_cached_markers(cli, busybox, capfd, tmp_path):
    """Plain progress shows Step N/M lines and CACHED on a rebuild."""
    context = tmp_path / "ctx"
    shutil.copytree(EXAMPLES / "middle", context)
    assert cli("build", "-t", "middle", str(context)) == 0
    capfd.readouterr()

    assert cli("build", "-t", "middle", str(context)) == 0
    lines = capfd.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("Step")] == [
        "Step 1/4 : FROM busybox",
        "Step 2/4 : WORKDIR /usr/src/app",
        "Step 3/4 : COPY start.dev.sh start.prod.sh ./",
        'Step 4/4 : CMD ["sh", "start.dev.sh"]',
    ]
    assert lines.count(" ---> CACHED") == 3
    assert lines[-1] == "Successfully tagged middle:latest"


def test_quiet_build_prints_only_the_image_id(cli, busybox, store, capfd, tmp_path):
    """build -q prints the image id and nothing else, as docker build -q does."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nENV A=1\n")
    assert cli("build", "-q", "-t", "quiet", str(context)) == 0
    assert capfd.readouterr().out == store.image("quiet").id + "\n"


def test_build_with_json_progress_prints_one_event_a_line(
    cli, busybox, capfd, tmp_path
):
    """--progress json gives parseable events ending in BuildFinished."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nENV A=1\n")
    assert cli("build", "--progress", "json", "-t", "a", str(context)) == 0
    events = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [event["event"] for event in events] == [
        "StepStarted",
        "StepFinished",
        "StepStarted",
        "StepCacheMiss",
        "StepFinished",
        "BuildFinished",
    ]
    assert events[3]["reason"] == "this step has not been built before"
    assert events[-1]["tags"] == ["a:latest"]


def test_build_arg_and_file_flags(cli, busybox, capfd, tmp_path):
    """-f names another Dockerfile and --build-arg sets an ARG."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Other.dockerfile").write_text("FROM busybox\nARG V\nLABEL v=$V\n")
    assert (
        cli(
            "build",
            "-f",
            str(context / "Other.dockerfile"),
            "--build-arg",
            "V=7",
            "-t",
            "v",
            str(context),
        )
        == 0
    )
    capfd.readouterr()
    assert cli("images", "--format", "json") == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [(row["Repository"], row["Tag"]) for row in rows] == [
        ("busybox", "latest"),
        ("v", "latest"),
    ]


def test_build_error_is_one_line_and_exit_125(cli, store, capfd, tmp_path):
    """A Dockerfile error prints one line naming file and line, exit 125."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nFROM nosuch\n")
    assert cli("build", "--pull=never", str(context)) == 125
    err = capfd.readouterr().err
    assert err == (
        f"layercake: error: {context}/Dockerfile:2: "
        "base image not found in the store: nosuch\n"
    )


@pytest.mark.usefixtures("container_runtime")
def test_run_passes_output_through_and_returns_the_exit_code(cli, busybox, capfd):
    """run streams the container's output and exits with its code."""
    code = cli("run", "--rm", "-e", "X=1", "busybox", "sh", "-c", "echo $X; exit 4")
    assert (code, capfd.readouterr().out) == (4, "1\n")


@pytest.mark.usefixtures("container_runtime")
def test_run_of_a_missing_command_exits_127(cli, busybox, capfd):
    """A command that is not in PATH is an error and exits 127, as with docker;
    --rm removes the container all the same."""
    assert cli("run", "--rm", "busybox", "nosuchcmd") == 127
    captured = capfd.readouterr()
    assert (captured.out, re.sub("[0-9a-f]{12}", "ID", captured.err)) == (
        "",
        "layercake: error: container ID failed to start: "
        'exec: "nosuchcmd": executable file not found in $PATH\n',
    )
    assert busybox.store.containers(all=True) == []


def test_run_of_a_missing_image_is_125(cli, store, capfd):
    """An unknown image is an engine error naming it."""
    assert cli("run", "--rm", "nosuch") == 125
    assert capfd.readouterr().err == "layercake: error: image not found: nosuch\n"


def test_images_table(cli, busybox, capfd):
    """images lists repository, tag, short id, age and size."""
    assert cli("images") == 0
    header, row = capfd.readouterr().out.splitlines()
    assert header.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert row.split()[:3] == ["busybox", "latest", busybox.short_id]


def test_file_flag_is_relative_to_the_current_directory(
    cli, busybox, capfd, tmp_path, monkeypatch
):
    """-f names a Dockerfile from where the command runs, as docker's CLI does."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "files").mkdir()
    (tmp_path / "files/Custom").write_text("FROM busybox\nLABEL from=custom\n")
    monkeypatch.chdir(tmp_path)
    assert cli("build", "-f", "files/Custom", "-t", "custom", "ctx") == 0


def test_dockerfile_from_stdin(cli, busybox, capfd, tmp_path, monkeypatch):
    """-f - reads the Dockerfile from standard input."""
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("FROM busybox\nLABEL from=stdin\n"))
    assert cli("build", "-f", "-", "-t", "stdin", str(tmp_path)) == 0


def test_version_flag(capfd):
    """--version prints the version and exits 0."""
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert (caught.value.code, capfd.readouterr().out) == (0, "layercake 0.1.0\n")


def test_missing_context_is_one_clear_line(cli, store, capfd, tmp_path):
    """A context that does not exist is named, as docker names it."""
    assert cli("build", str(tmp_path / "nope")) == 125
    assert capfd.readouterr().err == (
        "layercake: error: unable to prepare the build context: "
        f"{tmp_path / 'nope'} does not exist\n"
    )


@pytest.mark.usefixtures("container_runtime")
def test_sigterm_during_run_removes_the_container(busybox, store, tmp_path):
    """Repeated SIGTERM to `layercake run` kills the container; nothing is left."""
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layercake.cli",
            "--store",
            str(store.path),
            "run",
            "--rm",
            "busybox",
            "sleep",
            "30",
        ],
    )
    containers = store.path / "containers"
    deadline = time.monotonic() + 10

    def started() -> bool:
        # Hidden entries are the storage driver's trial mounts, not containers.
        return containers.is_dir() and any(
            not entry.name.startswith(".") for entry in containers.iterdir()
        )

    while not started() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    # The first SIGTERM goes to the container (sleep as PID 1 ignores it, as
    # under docker); a second one kills it.
    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 137
    assert list(containers.iterdir()) == []


@pytest.mark.usefixtures("container_runtime")
def test_sigterm_reaches_the_container_like_docker_run(busybox, store):
    """A container that traps SIGTERM handles it and decides the exit code."""
    import signal
    import subprocess
    import sys

    script = (
        "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layercake.cli",
            "--store",
            str(store.path),
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            script,
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    with process.stdout:
        assert process.stdout.readline() == b"ready\n"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert process.stdout.read() == b"got TERM\n"


def test_check_prints_the_tree_and_warns_of_undeclared_build_args(cli, capfd, tmp_path):
    """build --check parses only, and reports build args no ARG declares."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nARG USED\n")
    assert (
        cli(
            "build",
            "--check",
            "--build-arg",
            "USED=1",
            "--build-arg",
            "NOPE=1",
            str(context),
        )
        == 0
    )
    out = capfd.readouterr().out
    assert out.endswith(
        "warning: build argument 'NOPE' was given but no ARG declares it\n"
    )
    assert "USED" in out


def test_bare_build_arg_takes_the_environment_value(
    cli, busybox, capfd, tmp_path, monkeypatch
):
    """--build-arg FOO (no value) reads FOO from the environment, as docker does."""
    monkeypatch.setenv("FOO", "from-env")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nARG FOO\nLABEL foo=$FOO\n")
    assert cli("build", "--build-arg", "FOO", "-t", "foo", str(context)) == 0
    capfd.readouterr()
    assert cli("inspect", "foo") == 0
    assert json.loads(capfd.readouterr().out)[0]["Config"]["Labels"] == {
        "foo": "from-env"
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--bogus", "busybox", "true"], "unrecognized arguments: --bogus"),
        (
            ["run", "--cpus", "abc", "busybox", "true"],
            "argument --cpus: invalid float value: 'abc'",
        ),
    ],
)
def test_argument_errors_exit_125_as_docker(args, message, capfd):
    """A flag error prints usage and the error, and exits 125 as docker."""
    with pytest.raises(SystemExit) as caught:
        main(args)
    err = capfd.readouterr().err
    assert caught.value.code == 125
    assert err.startswith("usage: layercake")
    assert err.endswith(f"error: {message}\n")
