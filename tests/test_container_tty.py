"""Container(tty=..., stdin_open=...): docker run -t / -i from the SDK."""

from __future__ import annotations

import os
import pty
import select
import shutil
import threading
import time
import tty

import pytest

import layercake
from layercake.errors import ContainerConfigError, ContainerError

pytestmark = pytest.mark.usefixtures("container_runtime")

TIMEOUT = 20.0


def read_until(fd: int, text: bytes) -> bytes:
    """Read ``fd`` until ``text`` was seen, failing after a bounded wait."""
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"never read {text!r}; got {seen!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"ended before {text!r}; got {seen!r}")
        seen += chunk
    return seen


def test_tty_run_returns_one_stream_with_crlf(busybox):
    """With tty, stdout and stderr arrive together in stdout, CRLF-ended."""
    result = busybox.run(["sh", "-c", "tty; echo err >&2; exit 2"], tty=True)

    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        b"/dev/pts/0\r\nerr\r\n",
        b"",
    )


def test_tty_size_is_the_terminal_size_at_start(busybox):
    """tty_size=(rows, cols) is what `stty size` prints inside."""
    result = busybox.run(["stty", "size"], tty=True, tty_size=(12, 34))

    assert result.stdout == b"12 34\r\n"


def test_tty_sets_term_unless_given(busybox):
    """As Docker, a terminal brings TERM=xterm; an explicit TERM wins."""
    default = busybox.run(["sh", "-c", "echo $TERM"], tty=True)
    chosen = busybox.run(["sh", "-c", "echo $TERM"], tty=True, env={"TERM": "vt100"})

    assert (default.stdout, chosen.stdout) == (b"xterm\r\n", b"vt100\r\n")


def test_tty_run_stdin_is_typed_into_the_terminal(busybox):
    """stdin bytes go through the terminal, which echoes them."""
    result = busybox.run(["sh", "-c", "read a; echo [$a]"], tty=True, stdin=b"hi\n")

    assert result.stdout == b"hi\r\n[hi]\r\n"


def test_tty_run_is_logged_as_stdout(busybox):
    """The log records a terminal's output as the stdout stream."""
    with layercake.Container(busybox, ["sh", "-c", "echo a >&2"], tty=True) as box:
        box.run()

        assert (box.logs(stderr=False), box.logs(stdout=False)) == (b"a\r\n", b"")
        assert box.inspect()["Config"]["Tty"] is True


def test_attach_with_tty_relays_a_terminal_and_resizes(busybox):
    """attach() on a pty: output as typed, resize() seen inside, exit code back."""
    controller, caller = pty.openpty()
    tty.setraw(caller)
    box = layercake.Container(busybox, ["sh"], tty=True, tty_size=(10, 40))
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(box.attach(stdin=caller, stdout=caller))
    )
    try:
        thread.start()
        read_until(controller, b"# ")
        os.write(controller, b"stty size\n")
        assert b"stty size\r\n10 40\r\n" in read_until(controller, b"10 40\r\n")
        box.resize(25, 90)
        os.write(controller, b"stty size; exit 6\n")
        assert b"exit 6\r\n25 90\r\n" in read_until(controller, b"25 90\r\n")
        thread.join(TIMEOUT)
        assert codes == [6]
    finally:
        if thread.is_alive():
            box.kill()
        thread.join(TIMEOUT)
        box.remove(force=True)
        os.close(controller)
        os.close(caller)


def test_resize_without_a_terminal_is_refused(busybox):
    """resize() of a container this process runs no terminal for says so."""
    with layercake.Container(busybox, ["true"]) as box:
        with pytest.raises(ContainerError) as caught:
            box.resize(10, 10)

        assert str(caught.value) == (
            f"container {box.short_id} has no terminal this process runs"
        )


def test_exec_with_tty_gets_the_next_terminal(busybox):
    """exec(tty=True) in a tty container: /dev/pts/1, one stream, its own size."""
    with layercake.Container(busybox, ["sh"], tty=True) as box:
        box.start()
        result = box.exec(["sh", "-c", "tty; stty size >&2"], tty=True, tty_size=(5, 6))

        assert (result.exit_code, result.stdout, result.stderr) == (
            0,
            b"/dev/pts/1\r\n5 6\r\n",
            b"",
        )


def test_exec_attach_streams_to_the_given_descriptors(busybox):
    """exec_attach() without tty: stdout and stderr apart, exit code back."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    with layercake.Container(busybox, ["sleep", "60"]) as box:
        box.start()
        code = box.exec_attach(
            ["sh", "-c", "echo out; echo err >&2; exit 9"], stdout=out_w, stderr=err_w
        )
    os.close(out_w)
    os.close(err_w)

    assert (code, os.read(out_r, 100), os.read(err_r, 100)) == (9, b"out\n", b"err\n")
    os.close(out_r)
    os.close(err_r)


def test_started_tty_container_keeps_its_shell_running(busybox):
    """start() with tty: the monitor holds the terminal, so `sh` waits for input."""
    with layercake.Container(busybox, ["sh"], tty=True) as box:
        box.start()
        time.sleep(0.5)

        assert box.status == "running"


def test_stdin_open_keeps_a_started_container_reading(busybox):
    """stdin_open: a started `cat` waits on open stdin; without it, it ends."""
    with (
        layercake.Container(busybox, ["cat"], stdin_open=True) as waiting,
        layercake.Container(busybox, ["cat"]) as ending,
    ):
        waiting.start()
        ending.start()

        assert ending.wait(timeout=TIMEOUT) == 0
        assert waiting.status == "running"


def test_tty_with_an_oci_executor_is_refused(busybox):
    """tty needs the built-in executor: a configuration error says so."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    with pytest.raises(ContainerConfigError) as caught:
        layercake.Container(busybox, ["sh"], tty=True, executor="runc")

    assert str(caught.value) == "tty=True needs the built-in executor, not runc"


def test_attach_to_a_started_terminal_resizes_and_detaches(busybox, store):
    """attach() to a started tty container: typed input, resize through the
    monitor, detach keys return -1 and leave it running; a later attach gets
    the exit code."""
    controller, caller = pty.openpty()
    tty.setraw(caller)
    box = layercake.Container(busybox, ["sh"], tty=True, stdin_open=True)
    other = store.container(box.id)
    results: list[int] = []

    def attach() -> None:
        results.append(
            other.attach(stdin=caller, stdout=caller, detach_keys=b"\x10\x11")
        )

    try:
        box.start(detach=True)
        thread = threading.Thread(target=attach)
        thread.start()
        time.sleep(0.3)
        box.resize(21, 61)
        os.write(controller, b"stty size\n")
        assert b"21 61\r\n" in read_until(controller, b"21 61\r\n")
        os.write(controller, b"\x10\x11")
        thread.join(TIMEOUT)
        assert (results, box.status) == ([-1], "running")

        thread = threading.Thread(target=attach)
        thread.start()
        time.sleep(0.3)
        os.write(controller, b"exit 4\n")
        thread.join(TIMEOUT)
        assert results == [-1, 4]
    finally:
        box.remove(force=True)
        os.close(controller)
        os.close(caller)


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data


def test_attach_to_a_started_container_without_terminal_or_stdin(busybox, store):
    """attach() to a plain started container relays its output from then on
    (not what was logged before), stdout and stderr apart, and returns its
    exit code, as docker attach."""
    script = (
        "echo early; while [ ! -e /stop ]; do echo out; echo err >&2; "
        "sleep 0.05; done; exit 3"
    )
    box = layercake.Container(busybox, ["sh", "-c", script])
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    results: list[int] = []

    def attach() -> None:
        results.append(store.container(box.id).attach(stdout=out_w, stderr=err_w))

    try:
        box.start(detach=True)
        box.wait_for_log("early")
        thread = threading.Thread(target=attach)
        thread.start()
        assert select.select([out_r], [], [], TIMEOUT)[0] == [out_r]
        box.exec(["touch", "/stop"])
        thread.join(TIMEOUT)
        os.close(out_w)
        os.close(err_w)
        out, err = _read_all(out_r), _read_all(err_r)
        assert (results, set(out.splitlines()), set(err.splitlines())) == (
            [3],
            {b"out"},
            {b"err"},
        )
    finally:
        box.remove(force=True)
        os.close(out_r)
        os.close(err_r)


def test_attach_to_a_container_run_attached_elsewhere_is_refused(busybox, store):
    """A container run() attached by another thread or process has no monitor
    to attach to: attach() says so."""
    box = layercake.Container(busybox, ["sleep", "30"])
    runner = threading.Thread(target=box.run)
    try:
        runner.start()
        deadline = time.monotonic() + TIMEOUT
        while box.status != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(ContainerError) as caught:
            store.container(box.id).attach()
        assert str(caught.value) == (
            f"container {box.short_id} cannot be attached to: it is not running "
            "under a monitor"
        )
    finally:
        box.kill()
        runner.join(TIMEOUT)
        box.remove(force=True)


def test_a_detach_key_prefix_waits_for_the_next_key():
    """Ctrl-P alone is held; Ctrl-P then another key sends both, as Docker does."""
    from layercake._attach import _scan

    keys = b"\x10\x11"

    assert _scan(b"ab\x10", keys) == (b"ab", b"\x10", False)
    assert _scan(b"\x10x", keys) == (b"\x10x", b"", False)
    assert _scan(b"a\x10\x11b", keys) == (b"a", b"", True)
    assert _scan(b"a\x10", b"") == (b"a\x10", b"", False)
