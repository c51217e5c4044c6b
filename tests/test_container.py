"""Tests of Container and Image.run: docker run semantics and clean-up."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

import layercake
from layercake.errors import ContainerConfigError, ContainerError

pytestmark = pytest.mark.usefixtures("container_runtime")


def host_mounts_under(path: Path) -> list[str]:
    with open("/proc/mounts") as mounts:
        return [line.split()[1] for line in mounts if str(path) in line.split()[1]]


def test_run_returns_exit_code_stdout_and_stderr(busybox):
    """Output streams and the exit code come back separately."""
    result = busybox.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")


def test_env_workdir_and_user_overrides(busybox):
    """-e, -w and -u as docker run takes them; the workdir is created."""
    result = busybox.run(
        ["sh", "-c", 'echo "$GREETING $(pwd) $(id -u):$(id -g) $HOME"'],
        env={"GREETING": "hello"},
        workdir="/made/here",
        user="app",
    )
    assert result.stdout == b"hello /made/here 1000:1000 /home/app\n"


def test_entrypoint_override_with_command(busybox):
    """--entrypoint replaces the Entrypoint and the command becomes its args."""
    result = busybox.run(["a", "b"], entrypoint="echo")
    assert result.stdout == b"a b\n"


def test_missing_command_is_127_with_dockers_message(busybox):
    """A command not in PATH exits 127, as docker run reports it."""
    result = busybox.run(["no-such-command"])
    assert result.exit_code == 127
    assert b'exec: "no-such-command": executable file not found in $PATH' in (
        result.stderr
    )


def test_image_without_command_is_a_clear_error(store):
    """An image with neither Entrypoint nor Cmd cannot run without a command."""
    image = layercake.Builder(store).build(None, text="FROM scratch\nLABEL a=b\n")
    with pytest.raises(ContainerConfigError) as caught:
        image.run()
    assert str(caught.value) == (
        "no command specified: the image has no Entrypoint or Cmd and none was given"
    )


def test_unknown_user_is_a_clear_error(busybox):
    """A user name the image lacks fails before anything runs."""
    with pytest.raises(ContainerConfigError) as caught:
        busybox.run(["true"], user="ghost")
    assert str(caught.value) == (
        "unable to find user ghost: no matching entries in passwd file"
    )


def test_writes_stay_in_the_container_not_the_image(busybox):
    """A file written in one container is not in the image's next container."""
    busybox.run(["sh", "-c", "echo x > /etc/marker"])
    assert busybox.run(["cat", "/etc/marker"]).exit_code == 1


def test_container_is_isolated_pid_1_with_its_own_hostname(busybox):
    """The command is PID 1 and sees its own hostname and only loopback."""
    result = busybox.run(
        ["sh", "-c", "echo $$; hostname; ls /sys/class/net"],
    )
    lines = result.stdout.decode().split()
    assert lines[0] == "1"
    assert lines[2:] == ["lo"]


def test_started_container_logs_wait_and_removal(busybox):
    """start() runs in the background, logs are kept, remove() deletes all."""
    container = layercake.Container(busybox, ["sh", "-c", "echo started"])
    container.start()
    assert container.wait(timeout=10) == 0
    assert container.logs() == b"started\n"
    path = container.path
    container.remove()
    assert not path.exists()
    assert host_mounts_under(path) == []


def test_context_manager_kills_and_removes_a_running_container(busybox):
    """Leaving the block stops what still runs and deletes the container."""
    with layercake.Container(busybox, ["sleep", "60"]) as container:
        container.start()
        path = container.path
    assert container.exit_code == 128 + signal.SIGKILL
    assert not path.exists()


def test_stop_sends_sigterm_then_reports_the_exit(busybox):
    """stop() delivers the StopSignal; a shell trapping it exits cleanly."""
    script = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    with layercake.Container(busybox, ["sh", "-c", script]) as container:
        container.start()
        # Like any PID 1, the shell ignores SIGTERM until its trap is set.
        deadline = time.monotonic() + 10
        while container.logs() != b"ready\n" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert container.stop(timeout=10) == 0


def test_wait_before_start_is_an_error(busybox):
    """wait() on a container that never started says so."""
    with (
        layercake.Container(busybox, ["true"]) as container,
        pytest.raises(ContainerError) as caught,
    ):
        container.wait()
    assert str(caught.value) == f"container {container.short_id} is not started"
