"""A process with a pseudo terminal: /dev/pts/0 of its own devpts, one stream."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable

import pytest

from layercake.errors import ContainerConfigError
from layercake.runtime import SandboxSpec, enter, run, run_in, start
from layercake.runtime._console import set_terminal_size

MakeSpec = Callable[..., SandboxSpec]


def read_until(fd: int, text: bytes, timeout: float = 10.0) -> bytes:
    """Read ``fd`` until ``text`` was seen; fail after ``timeout`` seconds."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"never read {text!r}; got {seen!r}")
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue
        if not chunk:
            raise AssertionError(f"ended before {text!r}; got {seen!r}")
        seen += chunk
    return seen


def test_terminal_is_dev_pts_0_and_the_controlling_terminal(
    make_spec: MakeSpec,
) -> None:
    """`tty` prints /dev/pts/0, and /dev/tty opens (a controlling terminal)."""
    spec = make_spec("sh", "-c", "tty; echo ok >/dev/tty", terminal=True)

    result = run(spec)

    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        b"/dev/pts/0\r\nok\r\n",
        b"",
    )


def test_terminal_output_merges_stderr_into_one_stream(make_spec: MakeSpec) -> None:
    """stdout and stderr both go to the terminal, in the order written."""
    spec = make_spec("sh", "-c", "echo out; echo err >&2; exit 4", terminal=True)

    result = run(spec)

    assert (result.exit_code, result.stdout, result.stderr) == (
        4,
        b"out\r\nerr\r\n",
        b"",
    )


def test_terminal_size_is_set_at_start(make_spec: MakeSpec) -> None:
    """`stty size` prints the rows and columns the spec gave."""
    spec = make_spec("stty", "size", terminal=True, terminal_size=(33, 101))

    assert run(spec).stdout == b"33 101\r\n"


def test_terminal_size_out_of_range_is_refused(make_spec: MakeSpec) -> None:
    """A size beyond 65535 is a configuration error naming it."""
    spec = make_spec("true", terminal=True, terminal_size=(70000, 80))

    with pytest.raises(ContainerConfigError) as caught:
        run(spec)

    assert str(caught.value) == (
        "invalid terminal size 70000x80: rows and columns must be between 0 and 65535"
    )


def test_stdin_is_typed_into_the_terminal(make_spec: MakeSpec) -> None:
    """Input goes through the line discipline: echoed, and ^D ends it."""
    spec = make_spec("sh", "-c", "read line; echo got $line", terminal=True)

    result = run(spec, stdin=b"abc\n")

    assert result.stdout == b"abc\r\ngot abc\r\n"


def test_started_container_hands_over_the_master(make_spec: MakeSpec) -> None:
    """start() returns the master: a resize reaches the process as SIGWINCH."""
    script = "trap 'stty size' WINCH; echo ready; until read x; do :; done; echo bye $x"
    sandbox = start(make_spec("sh", "-c", script, terminal=True))
    master = sandbox.terminal
    assert master is not None
    try:
        read_until(master, b"ready\r\n")
        set_terminal_size(master, 40, 120)
        read_until(master, b"40 120\r\n")
        os.write(master, b"now\n")
        read_until(master, b"bye now\r\n")
        assert sandbox.wait(timeout=10) == 0
    finally:
        sandbox.kill()
        sandbox.wait()
        os.close(master)


def test_exec_gets_the_next_terminal_of_the_container(make_spec: MakeSpec) -> None:
    """A process entered with a terminal has /dev/pts/1 beside PID 1's pts/0."""
    sandbox = start(make_spec("sh", "-c", "read x", terminal=True))
    try:
        result = run_in(
            sandbox.pid,
            make_spec("sh", "-c", "tty; ls /dev/pts", terminal=True).process,
        )
    finally:
        sandbox.kill()
        sandbox.wait()
        assert sandbox.terminal is not None
        os.close(sandbox.terminal)

    assert result.stdout == b"/dev/pts/1\r\n0     1     ptmx\r\n"


def test_ctrl_c_interrupts_the_foreground_process(make_spec: MakeSpec) -> None:
    """^C typed into the terminal is echoed and interrupts the shell (exit 130)."""
    script = "echo ready; sleep 30; echo not reached"
    sandbox = start(make_spec("sh", "-c", script, terminal=True))
    master = sandbox.terminal
    assert master is not None
    try:
        read_until(master, b"ready\r\n")
        time.sleep(0.2)
        os.write(master, b"\x03")
        assert read_until(master, b"^C") == b"^C"
        assert sandbox.wait(timeout=10) == 130
    finally:
        sandbox.kill()
        sandbox.wait()
        os.close(master)


def test_init_puts_the_process_in_the_terminal_foreground(
    make_spec: MakeSpec,
) -> None:
    """With an init, ^C reaches the process (not the init) and ends the run."""
    script = "trap 'echo caught; exit 5' INT; echo ready; while :; do sleep 0.1; done"
    sandbox = start(make_spec("sh", "-c", script, terminal=True, init=True))
    master = sandbox.terminal
    assert master is not None
    try:
        read_until(master, b"ready\r\n")
        os.write(master, b"\x03")
        read_until(master, b"caught\r\n")
        assert sandbox.wait(timeout=10) == 5
    finally:
        sandbox.kill()
        sandbox.wait()
        os.close(master)


def test_enter_with_a_terminal_returns_its_master(make_spec: MakeSpec) -> None:
    """enter() with a terminal gives the exec'd process's master to the caller."""
    sandbox = start(make_spec("sleep", "30"))
    try:
        process = make_spec("sh", "-c", "read x; echo got $x", terminal=True)
        entered = enter(sandbox.pid, process.process)
        assert entered.terminal is not None
        os.write(entered.terminal, b"it\n")
        assert read_until(entered.terminal, b"got it\r\n") == b"it\r\ngot it\r\n"
        assert entered.wait(timeout=10) == 0
        os.close(entered.terminal)
    finally:
        sandbox.kill()
        sandbox.wait()
