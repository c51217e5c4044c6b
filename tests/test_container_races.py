"""Lifecycle commands on one container from several processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import missing

from layercake.cli import main

pytestmark = pytest.mark.usefixtures("container_runtime")


@pytest.fixture
def cli(store):
    """Run the CLI on the test's store in this process; remove what is left."""

    def run(*args: str) -> int:
        return main(["--store", str(store.path), *args])

    yield run
    for container in store.containers(all=True):
        container.remove(force=True)


def _at_once(store, *commands: tuple[str, ...]) -> list[tuple[int, str]]:
    """Run each CLI command in its own process, all at once; codes and stdout."""
    base = [sys.executable, "-m", "layercake.cli", "--store", str(store.path)]
    processes = [
        subprocess.Popen([*base, *command], stdout=subprocess.PIPE, text=True)
        for command in commands
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    return [(p.returncode, out) for p, out in zip(processes, outputs, strict=True)]


def _procs(paths: tuple[str, ...]) -> set[int]:
    """The pids in a cgroup, over all its hierarchies."""
    pids: set[int] = set()
    for path in paths:
        procs = Path(path, "cgroup.procs")
        if procs.exists():
            pids.update(int(line) for line in procs.read_text().split())
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_three_concurrent_restarts_leave_one_copy_and_rm_leaves_nothing(
    cli, store, busybox, capfd
):
    """Three `restart`s at once run one copy; `rm -f` leaves no process or cgroup."""
    assert cli("run", "-d", "--name", "cr1", "busybox", "sleep", "300") == 0
    capfd.readouterr()
    if not store.container("cr1").state().cgroup_paths:
        missing("no cgroup for a detached container on this machine")

    restart = ("restart", "-t", "1", "cr1")
    assert _at_once(store, restart, restart, restart) == [(0, "cr1\n")] * 3

    state = store.container("cr1").state()
    assert (state.status, _procs(state.cgroup_paths)) == ("running", {state.pid})
    assert cli("rm", "-f", "cr1") == 0
    assert _alive(state.pid) is False
    assert [p for p in state.cgroup_paths if os.path.exists(p)] == []


def test_stop_racing_two_starts_leaves_one_tracked_copy(cli, store, busybox, capfd):
    """`stop` overlapping two `start`s leaves at most one copy, the tracked one."""
    assert cli("run", "-d", "--name", "ssr2", "busybox", "sleep", "300") == 0
    capfd.readouterr()
    if not store.container("ssr2").state().cgroup_paths:
        missing("no cgroup for a detached container on this machine")

    for _ in range(3):
        _at_once(
            store, ("stop", "-t", "0", "ssr2"), ("start", "ssr2"), ("start", "ssr2")
        )
        state = store.container("ssr2").state()
        running = {state.pid} if state.status == "running" else set()
        assert _procs(state.cgroup_paths) == running
    assert cli("rm", "-f", "ssr2") == 0
    assert [p for p in state.cgroup_paths if os.path.exists(p)] == []
