"""run -it, exec -it and -i as a user types them, driven through a real pty."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from layercake.cli import main

pytestmark = pytest.mark.usefixtures("container_runtime")

TIMEOUT = 20.0

# Run in the pty's child: the CLI as a subprocess, then whether it left the
# terminal's modes as it found them. Its exit code is the CLI's.
WRAPPER = """
import os, subprocess, sys, termios
before = termios.tcgetattr(0)
code = subprocess.call([sys.executable, "-m", "layercake.cli", *sys.argv[1:]])
same = termios.tcgetattr(0) == before
os.write(1, b"[modes restored]" if same else b"[modes changed]")
sys.exit(code)
"""


class Terminal:
    """The layercake CLI running on the slave of a pty this test types into."""

    def __init__(self, store: Path, *args: str, rows: int = 24, cols: int = 80):
        pid, master = pty.fork()
        if pid == 0:
            try:
                set_size(0, rows, cols)
                argv = [sys.executable, "-c", WRAPPER, "--store", str(store), *args]
                os.execv(sys.executable, argv)
            finally:
                os._exit(127)
        self.pid = pid
        self.master = master
        self.seen = b""

    def read_until(self, text: bytes) -> bytes:
        """Read until ``text`` appears; return what came since the last call.

        busybox's line editing asks the terminal where the cursor is
        (``ESC [6n``); no answer is needed, and the queries are dropped.
        """
        deadline = time.monotonic() + TIMEOUT
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"never read {text!r}; got {self.seen!r}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"ended before {text!r}; got {self.seen!r}")
            self.seen = (self.seen + chunk).replace(b"\x1b[6n", b"")
        index = self.seen.index(text) + len(text)
        got, self.seen = self.seen[:index], self.seen[index:]
        return got

    def type(self, keys: bytes) -> None:
        """Type ``keys``, as a user's keyboard would send them."""
        os.write(self.master, keys)

    def exit_code(self) -> int:
        """Read to the end and wait for the CLI; return its exit status."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if not select.select([self.master], [], [], 0.2)[0]:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    break
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen = (self.seen + chunk).replace(b"\x1b[6n", b"")
        _, status = os.waitpid(self.pid, 0)
        os.close(self.master)
        return os.waitstatus_to_exitcode(status)

    def kill(self) -> None:
        """End the CLI and its wrapper if the test failed half-way."""
        try:
            os.killpg(self.pid, 9)
            os.waitpid(self.pid, 0)
            os.close(self.master)
        except OSError:
            pass


def set_size(fd: int, rows: int, cols: int) -> None:
    """Set the window size of the terminal ``fd`` is a side of."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@pytest.fixture
def terminal(store, busybox):
    """Start the CLI on a pty with the test's store; kill it at the end."""
    started: list[Terminal] = []

    def start(*args: str, rows: int = 24, cols: int = 80) -> Terminal:
        session = Terminal(store.path, *args, rows=rows, cols=cols)
        started.append(session)
        return session

    yield start
    for session in started:
        session.kill()
    for container in store.containers(all=True):
        container.remove(force=True)


def test_run_it_gives_an_interactive_shell_on_dev_pts_0(terminal):
    """run -it busybox sh: a prompt, commands typed run, `tty` is /dev/pts/0."""
    session = terminal("run", "--rm", "-it", "busybox", "sh", rows=30, cols=100)

    session.read_until(b"/ # ")
    session.type(b"tty\r")
    assert session.read_until(b"/ # ") == b"tty\r\n/dev/pts/0\r\n/ # "
    session.type(b"stty size\r")
    assert session.read_until(b"/ # ") == b"stty size\r\n30 100\r\n/ # "
    session.type(b"echo $TERM\r")
    assert session.read_until(b"/ # ") == b"echo $TERM\r\nxterm\r\n/ # "
    session.type(b"exit 3\r")

    assert session.exit_code() == 3
    assert session.seen == b"exit 3\r\n[modes restored]"


def test_window_change_reaches_the_container(terminal):
    """Resizing the caller's terminal resizes the container's (SIGWINCH)."""
    session = terminal("run", "--rm", "-it", "busybox", "sh")
    session.read_until(b"/ # ")
    session.type(b"stty size\r")
    session.read_until(b"24 80\r\n/ # ")

    set_size(session.master, 50, 132)
    time.sleep(0.3)
    session.type(b"stty size\r")

    # The shell redraws its prompt for the new width, then runs the command.
    assert session.read_until(b"50 132\r\n").endswith(b"stty size\r\n50 132\r\n")
    session.type(b"exit\r")
    assert session.exit_code() == 0


def test_ctrl_c_reaches_the_container_as_a_key(terminal):
    """Ctrl-C interrupts the command in the container; the shell and CLI stay."""
    session = terminal("run", "--rm", "-it", "busybox", "sh")
    session.read_until(b"/ # ")
    session.type(b"sleep 30\r")
    session.read_until(b"sleep 30\r\n")
    time.sleep(0.3)

    session.type(b"\x03")
    session.read_until(b"/ # ")
    session.type(b"echo status $?\r")

    assert session.read_until(b"/ # ") == b"echo status $?\r\nstatus 130\r\n/ # "
    session.type(b"exit\r")
    assert session.exit_code() == 0


def test_run_t_without_i_prints_through_a_terminal(terminal):
    """run -t: output has the terminal's CRLF; stdin is not read."""
    session = terminal("run", "--rm", "-t", "busybox", "sh", "-c", "tty; exit 4")

    assert session.exit_code() == 4
    # Not in raw mode, the caller's terminal adds its own \r before \n.
    assert session.seen == b"/dev/pts/0\r\r\n[modes restored]"


def test_exec_it_gets_its_own_terminal(cli_store, terminal, capfd):
    """exec -it into a running container: a shell on the next /dev/pts."""
    main(["--store", cli_store, "run", "-d", "-t", "--name", "box", "busybox", "sh"])
    capfd.readouterr()
    session = terminal("exec", "-it", "box", "sh", rows=20, cols=70)

    session.read_until(b"/ # ")
    session.type(b"tty; stty size\r")
    assert (
        session.read_until(b"/ # ") == b"tty; stty size\r\n/dev/pts/1\r\n20 70\r\n/ # "
    )
    session.type(b"exit 7\r")

    assert session.exit_code() == 7
    assert session.seen == b"exit 7\r\n[modes restored]"


@pytest.fixture
def cli_store(store, busybox) -> str:
    """The test store's path, for calling the CLI in this process."""
    return str(store.path)


def spawn(store: str, *args: str) -> subprocess.Popen[bytes]:
    """The CLI with pipes for stdin, stdout and stderr (no terminal)."""
    return subprocess.Popen(
        [sys.executable, "-m", "layercake.cli", "--store", store, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_line(process: subprocess.Popen[bytes], stream: str = "stdout") -> bytes:
    """One line of the process's stdout (or stderr), failing after a bounded
    wait."""
    pipe = process.stdout if stream == "stdout" else process.stderr
    assert pipe is not None
    fd = pipe.fileno()
    line = b""
    deadline = time.monotonic() + TIMEOUT
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"no whole line; got {line!r}")
        byte = os.read(fd, 1)
        if not byte:
            raise AssertionError(f"output ended; got {line!r}")
        line += byte
    return line


def echo_lines(process: subprocess.Popen[bytes]) -> list[bytes]:
    """Write two lines one at a time, reading each echo before the next."""
    assert process.stdin is not None
    echoed = []
    for line in (b"one\n", b"two\n"):
        process.stdin.write(line)
        process.stdin.flush()
        echoed.append(read_line(process))
    process.stdin.close()
    return echoed


def test_run_i_streams_stdin_line_by_line(cli_store):
    """run -i busybox cat echoes each line as it is written, before stdin ends."""
    with spawn(cli_store, "run", "--rm", "-i", "busybox", "cat") as process:
        try:
            assert echo_lines(process) == [b"one\n", b"two\n"]
            assert process.wait(timeout=TIMEOUT) == 0
        finally:
            process.kill()


def test_exec_i_streams_stdin_line_by_line(cli_store, capfd):
    """exec -i box cat echoes each line as it is written, before stdin ends."""
    main(["--store", cli_store, "run", "-d", "--name", "box", "busybox", "sleep", "60"])
    capfd.readouterr()
    with spawn(cli_store, "exec", "-i", "box", "cat") as process:
        try:
            assert echo_lines(process) == [b"one\n", b"two\n"]
            assert process.wait(timeout=TIMEOUT) == 0
        finally:
            process.kill()


@pytest.mark.parametrize("verb", ["run", "exec"])
def test_it_without_a_terminal_is_refused_as_docker_does(cli_store, verb):
    """-it with stdin not a terminal: docker's message, exit 125, nothing runs."""
    target = "busybox" if verb == "run" else "anything"
    process = subprocess.run(
        [sys.executable, "-m", "layercake.cli", "--store", cli_store]
        + [verb, "-it", target, "true"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert (process.returncode, process.stdout, process.stderr) == (
        125,
        b"",
        b"layercake: error: the input device is not a TTY\n",
    )


def test_run_dt_logs_terminal_output_as_stdout(cli_store, store, capfd):
    """run -dt: the monitor holds the terminal; logs have its output as stdout."""
    script = "tty; echo err >&2; exec sleep 60"
    assert (
        main(
            ["--store", cli_store, "run", "-dt", "--name", "tt", "busybox"]
            + ["sh", "-c", script]
        )
        == 0
    )
    capfd.readouterr()
    container = store.container("tt")
    container.wait_for_log("err")

    assert container.logs(stderr=False) == b"/dev/pts/0\r\nerr\r\n"
    assert container.logs(stdout=False) == b""
    assert container.inspect()["Config"]["Tty"] is True
    container.remove(force=True)


def test_run_di_keeps_stdin_open(cli_store, store, capfd):
    """run -di busybox sh: the shell waits on an open stdin instead of exiting."""
    assert (
        main(["--store", cli_store, "run", "-di", "--name", "ss", "busybox", "sh"]) == 0
    )
    capfd.readouterr()
    container = store.container("ss")
    time.sleep(0.5)

    assert container.status == "running"
    assert container.inspect()["Config"]["OpenStdin"] is True
    container.remove(force=True)


def test_attach_to_a_detached_terminal_and_detach_with_ctrl_p_ctrl_q(
    cli_store, terminal, capfd
):
    """run -dit, then attach: the shell's terminal, resized; Ctrl-P Ctrl-Q leaves."""
    main(["--store", cli_store, "run", "-dit", "--name", "bg", "busybox", "sh"])
    capfd.readouterr()
    session = terminal("attach", "bg", rows=33, cols=77)
    time.sleep(0.3)

    session.type(b"tty; stty size\r")
    assert session.read_until(b"77\r\n").endswith(b"/dev/pts/0\r\n33 77\r\n")
    session.type(b"\x10\x11")
    assert session.exit_code() == 1
    assert session.seen.endswith(b"read escape sequence\r\n[modes restored]")

    again = terminal("attach", "bg")
    time.sleep(0.3)
    again.type(b"exit 5\r")
    assert again.exit_code() == 5
    assert again.seen.endswith(b"[modes restored]")


def test_attach_streams_an_open_stdin_without_a_terminal(cli_store, capfd):
    """run -di busybox cat, then attach: lines typed come back one by one."""
    main(["--store", cli_store, "run", "-di", "--name", "cat", "busybox", "cat"])
    capfd.readouterr()
    with spawn(cli_store, "attach", "cat") as process:
        try:
            time.sleep(0.3)
            assert echo_lines(process) == [b"one\n", b"two\n"]
        finally:
            process.kill()
    main(["--store", cli_store, "stop", "-t", "0", "cat"])
    capfd.readouterr()
    main(["--store", cli_store, "logs", "cat"])
    assert capfd.readouterr().out == "one\ntwo\n"


# Says "out" on stdout and "err" on stderr ten times a second; exits 7 on
# SIGTERM, after saying so.
SAYER = (
    "sh",
    "-c",
    "trap 'echo term; exit 7' TERM; "
    "while :; do echo out; echo err >&2; sleep 0.1; done",
)


def test_attach_to_a_container_without_terminal_or_stdin(cli_store, capfd):
    """attach to a plain run -d container: its output as it comes, stdout to
    stdout and stderr to stderr; SIGTERM is passed on and the container's
    exit code is attach's, as docker attach."""
    main(["--store", cli_store, "run", "-d", "--name", "say", "busybox", *SAYER])
    capfd.readouterr()
    with spawn(cli_store, "attach", "say") as process:
        try:
            said = (read_line(process), read_line(process, "stderr"))
            assert said == (b"out\n", b"err\n")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=TIMEOUT) == 7
            out, err = process.communicate()
        finally:
            process.kill()
    lines = out.splitlines()
    assert set(lines[:-1]) <= {b"out"} and lines[-1] == b"term"
    assert set(err.splitlines()) <= {b"err"}
    main(["--store", cli_store, "inspect", "say"])
    state = json.loads(capfd.readouterr().out)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 7)


def test_attach_with_sig_proxy_false_leaves_the_container_running(cli_store, capfd):
    """attach --sig-proxy=false: Ctrl-C (SIGINT) ends attach alone (exit 130)."""
    main(["--store", cli_store, "run", "-d", "--name", "say", "busybox", *SAYER])
    capfd.readouterr()
    with spawn(cli_store, "attach", "--sig-proxy=false", "say") as process:
        try:
            assert read_line(process) == b"out\n"
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=TIMEOUT) == 130
        finally:
            process.kill()
    main(["--store", cli_store, "inspect", "say"])
    state = json.loads(capfd.readouterr().out)[0]["State"]
    main(["--store", cli_store, "rm", "-f", "say"])
    assert state["Status"] == "running"


def test_attach_errors_say_what_is_wrong(cli_store, capfd):
    """A stopped container, or keys docker would not take, are one-line errors."""
    main(["--store", cli_store, "create", "--name", "idle", "busybox", "true"])
    capfd.readouterr()

    assert main(["--store", cli_store, "attach", "idle"]) == 125
    assert capfd.readouterr().err == (
        "layercake: error: You cannot attach to a stopped container, start it first\n"
    )
    assert main(["--store", cli_store, "attach", "--detach-keys", "ctrl-", "x"]) == 125
    assert capfd.readouterr().err == (
        "layercake: error: invalid detach keys (ctrl-) provided\n"
    )


def test_run_it_of_a_missing_command_restores_the_terminal(terminal):
    """A command that cannot run: docker's message on the terminal, exit 127,
    and the caller's terminal modes back as they were."""
    session = terminal("run", "--rm", "-it", "busybox", "nosuchcommand")

    assert session.exit_code() == 127
    assert re.sub(rb"[0-9a-f]{12}", b"ID", session.seen) == (
        b"layercake: error: container ID failed to start: exec: "
        b'"nosuchcommand": executable file not found in $PATH\r\n'
        b"[modes restored]"
    )


def fetch(port: int) -> bytes:
    """The body of GET / from 127.0.0.1:port."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=TIMEOUT) as r:
        return r.read()


def test_run_attached_publishes_ports_while_it_runs(cli_store, capfd):
    """run -i -p without -d streams output, forwards the port while attached,
    and passes the exit code through, as docker run does."""
    script = (
        "mkdir /w; echo hello > /w/index.html; httpd -p 80 -h /w; "
        "echo ready; read line; echo got $line; exit 4"
    )
    args = ("run", "--rm", "-i", "--name", "web", "-p", "127.0.0.1:0:80")
    with spawn(cli_store, *args, "busybox", "sh", "-c", script) as process:
        try:
            assert read_line(process) == b"ready\n"
            assert main(["--store", cli_store, "port", "web", "80"]) == 0
            address = capfd.readouterr().out
            assert address.startswith("127.0.0.1:")
            assert fetch(int(address.strip().rpartition(":")[2])) == b"hello\n"

            assert process.stdin is not None
            process.stdin.write(b"bye\n")
            process.stdin.close()
            assert read_line(process) == b"got bye\n"
            assert process.wait(timeout=TIMEOUT) == 4
            assert process.stderr is not None
            assert process.stderr.read() == b""
        finally:
            process.kill()
    assert main(["--store", cli_store, "ps", "-a", "-q"]) == 0
    assert capfd.readouterr().out == ""


def test_closing_the_terminal_of_run_it_ends_the_cli_and_the_container(
    cli_store, store
):
    """When the terminal of run -it hangs up (its master closes), the CLI
    ends and so does the container it attached, which --rm removes."""
    pid, master = pty.fork()
    if pid == 0:
        try:
            args = ["run", "-it", "--rm", "--name", "hup", "busybox", "sh"]
            argv = [sys.executable, "-m", "layercake.cli", "--store", cli_store]
            os.execv(sys.executable, argv + args)
        finally:
            os._exit(127)
    try:
        seen = b""
        deadline = time.monotonic() + TIMEOUT
        while b"# " not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 4096)
        os.write(master, b"sleep 1000\r")
        deadline = time.monotonic() + TIMEOUT
        while b"sleep 1000\r\n" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 4096)
        assert store.container("hup").status == "running"
        os.close(master)
        master = -1

        deadline = time.monotonic() + TIMEOUT
        ended = 0
        while not ended and time.monotonic() < deadline:
            ended, status = os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        assert ended == pid
        assert os.waitstatus_to_exitcode(status) == 137
        assert store.containers(all=True) == []
    finally:
        if master >= 0:
            os.close(master)
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
