"""Lifecycle commands on one container from several processes at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import missing

from layercake.cli import main

pytestmark = pytest.mark.usefixtures("container_runtime")


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

    for _ in range(8):
        _at_once(
            store, ("stop", "-t", "0", "ssr2"), ("start", "ssr2"), ("start", "ssr2")
        )
        state = store.container("ssr2").state()
        running = {state.pid} if state.status == "running" else set()
        assert _procs(state.cgroup_paths) == running
    assert cli("rm", "-f", "ssr2") == 0
    assert [p for p in state.cgroup_paths if os.path.exists(p)] == []


def test_rm_and_prune_remove_a_cgroup_no_state_records(cli, store, busybox, capfd):
    """A cgroup made by a `run` killed before recording it goes with rm and prune."""
    from layercake.runtime import Resources, create_cgroup

    assert cli("create", "--name", "c1", "-m", "32m", "busybox", "true") == 0
    assert cli("create", "--name", "c2", "-m", "32m", "busybox", "true") == 0
    ids = capfd.readouterr().out.split()
    # What a starter SIGKILLed between making the cgroup and writing any
    # state leaves behind.
    leftovers = [create_cgroup(i, Resources(memory=32 << 20))[0] for i in ids]
    if None in leftovers:
        missing("cgroups cannot be created on this machine")

    assert cli("rm", "c1") == 0
    assert cli("prune") == 0
    capfd.readouterr()
    assert cli("ps", "-a", "-q") == 0
    assert capfd.readouterr().out == ""
    paths = [p for cgroup in leftovers if cgroup for p in cgroup.paths]
    assert [p for p in paths if os.path.exists(p)] == []


def test_a_run_killed_at_start_leaves_no_cgroup_after_prune(cli, store, busybox):
    """SIGKILL of `run -m` at moments during its start: prune leaves no cgroup."""
    import signal
    import time

    from layercake.runtime import find_cgroup

    base = [sys.executable, "-m", "layercake.cli", "--store", str(store.path)]
    for delay in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
        process = subprocess.Popen(
            [*base, "run", "-m", "32m", "busybox", "sleep", "100"]
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
    ids = [c.id for c in store.containers(all=True)]
    assert main(["--store", str(store.path), "prune"]) == 0
    assert store.containers(all=True) == []
    assert [i for i in ids if find_cgroup(i) is not None] == []


def test_an_empty_state_file_makes_a_dead_container_rm_and_prune_remove(
    cli, store, busybox, capfd, caplog
):
    """An empty state.json: ps -a says Dead, the others still list; rm -f, prune go."""
    for name in ("corrupt", "corrupt2", "fine"):
        assert cli("create", "--name", name, "busybox", "true") == 0
    ids = capfd.readouterr().out.split()
    for container_id in ids[:2]:
        (store.path / "containers" / container_id / "state.json").write_text("")

    assert cli("ps", "-a", "--format", "json") == 0
    listed = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert sorted(
        (c["Name"], c["State"]["Status"], c["State"]["Dead"]) for c in listed
    ) == [
        ("/corrupt", "dead", True),
        ("/corrupt2", "dead", True),
        ("/fine", "created", False),
    ]
    assert cli("ps", "-a") == 0
    rows = capfd.readouterr().out.splitlines()[1:]
    assert sorted(row.split()[-1] + " " + row.split()[-2] for row in rows) == [
        "corrupt Dead",
        "corrupt2 Dead",
        "fine Created",
    ]
    state_file = store.path / "containers" / ids[0] / "state.json"
    assert (
        f"cannot read {state_file}, the container is taken as dead: "
        "Expecting value: line 1 column 1 (char 0)"
    ) in caplog.messages

    assert cli("rm", "-f", "corrupt") == 0
    assert capfd.readouterr().out == "corrupt\n"
    assert cli("prune") == 0
    deleted = capfd.readouterr().out.splitlines()[:2]
    assert sorted(deleted) == sorted(f"Deleted Container: {i}" for i in ids[1:])
    assert cli("ps", "-a", "-q") == 0
    assert capfd.readouterr().out == ""


def test_prune_removes_a_container_directory_whose_config_cannot_be_read(
    cli, store, busybox, capfd, caplog
):
    """A directory no listing can show (config.json unreadable) goes with prune."""
    assert cli("create", "--name", "broken", "busybox", "true") == 0
    assert cli("create", "--name", "kept", "busybox", "sleep", "30") == 0
    broken, kept = capfd.readouterr().out.split()
    assert cli("start", "kept") == 0
    capfd.readouterr()
    directory = store.path / "containers" / broken
    (directory / "config.json").write_text('{"id": "' + broken + '"}')

    assert cli("ps", "-a", "-q") == 0
    assert capfd.readouterr().out == kept[:12] + "\n"
    assert cli("prune") == 0
    assert capfd.readouterr().out.splitlines()[0] == f"Deleted Container: {broken}"
    assert directory.exists() is False
    assert [c.name for c in store.containers(all=True)] == ["kept"]
    assert any(
        m.startswith(f"removing container directory {directory}: cannot read its ")
        for m in caplog.messages
    )
