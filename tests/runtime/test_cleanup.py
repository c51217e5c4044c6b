"""Nothing outlives a container: no mount on the host, no process left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from layercake.errors import ContainerTimeout
from layercake.runtime import RootfsSpec, Sandbox, SandboxSpec, run, start

MakeSpec = Callable[..., SandboxSpec]


def _host_mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as mounts:
        return [line for line in mounts if str(path) in line]


def _processes_in_pid_namespace(namespace: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_no_mount_is_visible_on_the_host_during_or_after_a_run(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    """The container's mounts live only in its own mount namespace."""
    with start(make_spec("sleep", "30")) as sandbox:
        during = _host_mounts_under(tmp_path)
        sandbox.kill()
        sandbox.wait()

    assert during == []
    assert _host_mounts_under(tmp_path) == []
    assert run(make_spec("true")).exit_code == 0
    assert _host_mounts_under(tmp_path) == []


def test_killing_pid_one_ends_every_process_of_the_container(
    make_spec: MakeSpec,
) -> None:
    """kill() leaves no process behind in the container's PID namespace."""
    sandbox = start(make_spec("sh", "-c", "sleep 30 & sleep 30 & wait"))
    namespace = os.readlink(f"/proc/{sandbox.pid}/ns/pid")
    deadline = time.monotonic() + 5
    while len(_processes_in_pid_namespace(namespace)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    sandbox.kill()

    assert sandbox.wait(timeout=5) == 137
    # The kernel ends the others when PID 1 goes; under load their last
    # moments in /proc can outlast the wait by a little.
    deadline = time.monotonic() + 5
    while _processes_in_pid_namespace(namespace) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _processes_in_pid_namespace(namespace) == []


def test_container_dies_with_the_python_process_that_started_it(
    rootfs: RootfsSpec, tmp_path: Path
) -> None:
    """When the starting process is killed, its container is killed too."""
    fields = (rootfs.lower_dirs, rootfs.upper_dir, rootfs.work_dir, rootfs.mount_point)
    script = textwrap.dedent(
        f"""
        import sys, time
        from layercake.runtime import ProcessSpec, RootfsSpec, SandboxSpec, start
        rootfs = RootfsSpec(*{fields!r})
        sandbox = start(SandboxSpec(rootfs, ProcessSpec(args=("sleep", "30"))))
        print(sandbox.pid, flush=True)
        time.sleep(30)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    namespace = os.readlink(f"/proc/{pid}/ns/pid")

    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()

    deadline = time.monotonic() + 5
    while _processes_in_pid_namespace(namespace):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_concurrent_runs_do_not_hold_each_others_output_open(
    make_spec: MakeSpec, rootfs: RootfsSpec, tmp_path: Path
) -> None:
    """A quick run finishes while a slow one started in another thread is running."""
    other = RootfsSpec(
        lower_dirs=rootfs.lower_dirs,
        upper_dir=str(tmp_path / "upper2"),
        work_dir=str(tmp_path / "work2"),
        mount_point=str(tmp_path / "merged2"),
    )
    slow = threading.Thread(
        target=run, args=(SandboxSpec(other, make_spec("sleep", "2").process),)
    )
    slow.start()
    time.sleep(0.05)
    started = time.monotonic()

    result = run(make_spec("echo", "quick"))

    elapsed = time.monotonic() - started
    slow.join()
    assert result.stdout == b"quick\n"
    assert elapsed < 1.5


def test_container_outlives_the_thread_that_started_it(make_spec: MakeSpec) -> None:
    """A container started from a thread that then ended keeps running."""
    started: list[Sandbox] = []
    thread = threading.Thread(
        target=lambda: started.append(start(make_spec("sleep", "30")))
    )
    thread.start()
    thread.join()
    sandbox = started[0]

    time.sleep(0.2)

    assert os.path.exists(f"/proc/{sandbox.pid}")
    with pytest.raises(ContainerTimeout):
        sandbox.wait(timeout=0)
    sandbox.kill()
    assert sandbox.wait(timeout=5) == 137
