"""The pytest plugin, run for real through pytester in child pytest processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.usefixtures("container_runtime")

WAITING_TEST = """
def test_server_is_ready(layercake_container):
    container = layercake_container(
        "busybox", ["sh", "-c", "echo starting; sleep 0.2; echo ready; sleep 30"],
        wait_for_log="^ready$",
    )
    assert container.logs() == b"starting\\nready\\n"
"""


def run(pytester, store, *args):
    return pytester.runpytest_subprocess(
        f"--layercake-store={store.path}", "-p", "no:cacheprovider", *args
    )


def test_container_fixture_waits_for_a_log_line_and_cleans_up(pytester, store, busybox):
    """wait_for_log returns once the line is out; the container is removed after."""
    pytester.makepyfile(WAITING_TEST)
    result = run(pytester, store)
    result.assert_outcomes(passed=1)
    assert list((store.path / "containers").iterdir()) == []


def test_container_that_exits_while_waited_for_fails_with_its_output(
    pytester, store, busybox
):
    """A container exiting before the log line fails the wait with code and output."""
    pytester.makepyfile(
        """
        def test_it(layercake_container):
            layercake_container("busybox", ["sh", "-c", "echo oops; exit 3"],
                                wait_for_log="never")
        """
    )
    result = run(pytester, store)
    result.assert_outcomes(errors=0, failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*ContainerError: container * exited with code 3 before its output "
                "matched 'never'; last output:"
            ),
            "*oops",
        ]
    )


def test_failure_report_shows_container_status_and_output(pytester, store, busybox):
    """A failing test's report has a section with each container's last output."""
    pytester.makepyfile(
        """
        def test_it(layercake_container):
            container = layercake_container("busybox", ["sh", "-c", "echo hello; sleep 30"],
                                            wait_for_log="hello")
            assert False
        """
    )
    result = run(pytester, store)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*- layercake container * -*", "running", "last output:", "hello"]
    )


def test_image_fixture_builds_once_per_session(pytester, store, busybox):
    """Two tests asking for the same image get the same build."""
    pytester.makepyfile(
        """
        IDS = []
        DOCKERFILE = "FROM busybox\\nENV FIXTURE=1\\n"

        def test_one(layercake_image):
            IDS.append(layercake_image(text=DOCKERFILE, tag="fixture:1"))

        def test_two(layercake_image):
            assert layercake_image(text=DOCKERFILE, tag="fixture:1") is IDS[0]
        """
    )
    result = run(pytester, store)
    result.assert_outcomes(passed=2)
    assert store.image("fixture:1").config.config.env[-1] == "FIXTURE=1"


def test_xdist_workers_share_the_store(pytester, store, busybox):
    """With -n 2, containers of both workers run and are all removed."""
    pytester.makepyfile(
        **{
            f"test_worker_{n}": WAITING_TEST.replace(
                "test_server_is_ready", f"test_{n}"
            )
            for n in range(4)
        }
    )
    result = run(pytester, store, "-n", "2")
    result.assert_outcomes(passed=4)
    assert list((store.path / "containers").iterdir()) == []


def test_containers_die_with_a_killed_test_process(pytester, store, busybox, tmp_path):
    """SIGKILL of the pytest process mid-test leaves no container process running."""
    pid_file = tmp_path / "pid"
    pytester.makepyfile(
        f"""
        import os, signal
        def test_killed(layercake_container):
            container = layercake_container("busybox", ["sleep", "60"])
            open({str(pid_file)!r}, "w").write(str(container.pid))
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    run(pytester, store)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    # The next session sweeps what the killed one left in the store.
    assert len(list((store.path / "containers").iterdir())) == 1
    for path in pytester.path.glob("test_*.py"):
        path.unlink()
    pytester.makepyfile(test_next="def test_nothing(layercake_store): pass\n")
    run(pytester, store).assert_outcomes(passed=1)
    assert [p.name for p in (store.path / "containers").iterdir()] == []


def test_an_xdist_worker_killed_mid_test_leaves_nothing_running(
    pytester, store, busybox, tmp_path
):
    """A worker SIGKILLed with a container running takes the container along;
    the other worker's tests still pass."""
    pid_file = tmp_path / "pid"
    pytester.makepyfile(
        test_killer=f"""
        import os, signal
        def test_killed(layercake_container):
            container = layercake_container("busybox", ["sleep", "60"])
            open({str(pid_file)!r}, "w").write(str(container.pid))
            os.kill(os.getpid(), signal.SIGKILL)
        """,
        test_fine=WAITING_TEST,
    )
    result = run(pytester, store, "-n", "2")
    result.stdout.fnmatch_lines(["*worker*crashed*"])
    assert result.parseoutcomes()["passed"] == 1
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")


def test_a_concurrent_session_keeps_its_exited_containers(
    pytester, store, busybox, tmp_path
):
    """A second session's sweep spares the exited container a live one still reads."""
    exited = tmp_path / "exited"
    swept = tmp_path / "swept"
    pytester.makepyfile(
        test_keeper=f"""
        import os, time
        def test_keeps(layercake_container):
            container = layercake_container("busybox", ["echo", "kept"])
            assert container.wait(timeout=10) == 0
            open({str(exited)!r}, "w").close()
            deadline = time.monotonic() + 30
            while not os.path.exists({str(swept)!r}) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1)
            assert container.logs() == b"kept\\n"
        """,
        test_sweeper=f"""
        def test_sweeps(layercake_store):
            open({str(swept)!r}, "w").close()
        """,
    )
    keeper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            f"--layercake-store={store.path}",
            "-p",
            "no:cacheprovider",
            "test_keeper.py",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not exited.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        run(pytester, store, "test_sweeper.py").assert_outcomes(passed=1)
        output, _ = keeper.communicate(timeout=60)
    finally:
        if keeper.poll() is None:
            keeper.kill()
            keeper.wait()
    assert keeper.returncode == 0, output.decode()
    assert list((store.path / "containers").iterdir()) == []
