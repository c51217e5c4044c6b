"""start() and Sandbox: detached processes, waiting, signals, kill, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from layercake.errors import CommandNotStarted, ContainerError, ContainerTimeout
from layercake.runtime import ProcessSpec, RootfsSpec, SandboxSpec, enter, start

MakeSpec = Callable[..., SandboxSpec]


def test_kill_of_a_sleeping_container_gives_137(make_spec: MakeSpec) -> None:
    """kill() ends a sleeping container and wait() reports 128 + SIGKILL."""
    sandbox = start(make_spec("sleep", "30"))

    sandbox.kill()

    assert sandbox.wait(timeout=5) == 137


def test_wait_timeout_raises_a_timeout_error(make_spec: MakeSpec) -> None:
    """wait(timeout) on a running container raises ContainerTimeout, a TimeoutError."""
    with (
        start(make_spec("sleep", "30")) as sandbox,
        pytest.raises(TimeoutError) as caught,
    ):
        sandbox.wait(timeout=0.1)

    assert isinstance(caught.value, ContainerTimeout)
    assert str(caught.value) == (
        f"container process {sandbox.pid} still running after 0.1 seconds"
    )
    assert sandbox.exit_code == 137


def test_signal_with_a_handler_reaches_pid_one(make_spec: MakeSpec) -> None:
    """send_signal delivers to PID 1, whose trap decides the exit code."""
    read_end, write_end = os.pipe()
    spec = make_spec(
        "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    )
    sandbox = start(spec, stdout=write_end)
    os.close(write_end)

    with os.fdopen(read_end, "rb") as output:
        assert output.readline() == b"ready\n"
        sandbox.send_signal(signal.SIGTERM)
        assert sandbox.wait(timeout=5) == 42


def test_file_descriptors_given_are_the_process_stdio(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    """stdout and stderr descriptors passed to start() receive the output."""
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out, open(tmp_path / "in", "wb+") as given:
        given.write(b"from file\n")
        given.seek(0)
        sandbox = start(
            make_spec("sh", "-c", "cat; echo err >&2"),
            stdin=given.fileno(),
            stdout=out.fileno(),
            stderr=out.fileno(),
        )
        assert sandbox.wait(timeout=5) == 0

    assert out_path.read_bytes() == b"from file\nerr\n"


def test_pid_is_the_host_pid_of_the_container_process(make_spec: MakeSpec) -> None:
    """Sandbox.pid names the container's PID 1 as the host sees it."""
    with start(make_spec("sleep", "30")) as sandbox:
        with open(f"/proc/{sandbox.pid}/cmdline", "rb") as cmdline:
            assert cmdline.read() == b"sleep\x0030\x00"
        with open(f"/proc/{sandbox.pid}/status", "rb") as status:
            assert b"NSpid:\t%d\t1\n" % sandbox.pid in status.read()


def test_setup_failure_names_the_step_and_the_error(
    runtime: None, tmp_path: Path
) -> None:
    """A missing lower directory fails start() with the overlay step and errno."""
    rootfs = RootfsSpec(
        lower_dirs=(str(tmp_path / "missing"),),
        upper_dir=str(tmp_path / "upper"),
        work_dir=str(tmp_path / "work"),
        mount_point=str(tmp_path / "merged"),
    )
    with pytest.raises(ContainerError) as caught:
        start(SandboxSpec(rootfs=rootfs, process=ProcessSpec(args=("true",))))

    assert str(caught.value) == (
        f"container set-up failed: mount overlay on {tmp_path}/merged: "
        "no such file or directory (errno 2)"
    )


def _children() -> list[str]:
    with open(f"/proc/self/task/{os.getpid()}/children") as file:
        return file.read().split()


@pytest.mark.parametrize("terminal", [False, True])
def test_start_of_a_missing_command_raises_before_returning(
    make_spec: MakeSpec, terminal: bool
) -> None:
    """start() (through its relay) raises for a command it cannot exec, with
    exit code 127, and leaves no process of its own behind."""
    before = _children()
    with pytest.raises(CommandNotStarted) as caught:
        start(make_spec("nosuchcmd", terminal=terminal))

    assert (str(caught.value), caught.value.exit_code, _children()) == (
        'exec: "nosuchcmd": executable file not found in $PATH',
        127,
        before,
    )


def test_enter_of_a_missing_command_raises_before_returning(
    make_spec: MakeSpec,
) -> None:
    """enter() raises for a command it cannot exec; the container runs on."""
    with start(make_spec("sleep", "30")) as sandbox:
        with pytest.raises(CommandNotStarted) as caught:
            enter(sandbox.pid, ProcessSpec(args=("/etc/passwd",)))

        assert (str(caught.value), caught.value.exit_code, sandbox.exit_code) == (
            'exec: "/etc/passwd": permission denied',
            126,
            None,
        )
        os.kill(sandbox.pid, 0)


def test_caller_with_closed_stdio_still_gets_output(rootfs: RootfsSpec) -> None:
    """A caller whose fds 0 and 1 are closed still runs and captures correctly."""
    fields = (rootfs.lower_dirs, rootfs.upper_dir, rootfs.work_dir, rootfs.mount_point)
    script = textwrap.dedent(
        f"""
        import os
        from layercake.runtime import ProcessSpec, RootfsSpec, SandboxSpec, run
        os.close(0)
        os.close(1)
        spec = SandboxSpec(RootfsSpec(*{fields!r}), ProcessSpec(args=("echo", "hi")))
        result = run(spec)
        os.write(2, repr((result.exit_code, result.stdout)).encode())
        """
    )

    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=False, timeout=30
    )

    assert completed.stderr == b"(0, b'hi\\n')"
