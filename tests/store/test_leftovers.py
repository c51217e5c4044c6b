"""Temp entries carry their creator's pid; a dead creator's go at once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from layercake.store import StoreDirectory
from layercake.store._leftovers import owner_pid, sweep_dead, temp_prefix
from layercake.store._space import prune


def _writing_child(root: Path) -> int:
    """Fork a child that writes a blob forever; return once its temp file grows."""
    pid = os.fork()
    if pid == 0:
        try:
            store = StoreDirectory(root)
            with store.blob_writer() as writer:
                while True:
                    writer.write(b"x" * 65536)
                    time.sleep(0.001)
        finally:
            os._exit(1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = list((root / "tmp").glob("blob-*"))
        if entries and entries[0].stat().st_size > 0:
            return pid
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the child never started its blob")


def test_temp_prefix_names_the_current_process() -> None:
    """A temp prefix is the kind, then pid<N>, ready for mkstemp's suffix."""
    assert temp_prefix("blob") == f"blob-pid{os.getpid()}-"
    assert temp_prefix("layer-") == f"layer-pid{os.getpid()}-"
    assert owner_pid(f"blob-pid{os.getpid()}-k2j3h4_z") == os.getpid()
    assert owner_pid("blob-k2j3h4_z") is None


def test_blob_of_a_killed_writer_is_removed_when_the_store_is_opened_again(
    tmp_path: Path,
) -> None:
    """A SIGKILLed blob writer's temp file is gone once the store is reopened."""
    root = tmp_path / "store"
    StoreDirectory(root)
    pid = _writing_child(root)
    [entry] = (root / "tmp").iterdir()
    assert entry.name.startswith(f"blob-pid{pid}-")

    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    StoreDirectory(root)

    assert list((root / "tmp").iterdir()) == []


def test_blob_of_a_killed_but_unreaped_writer_is_removed(tmp_path: Path) -> None:
    """A killed child its parent has not reaped yet counts as gone."""
    root = tmp_path / "store"
    StoreDirectory(root)
    pid = _writing_child(root)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
            break
        time.sleep(0.01)

    StoreDirectory(root)
    os.waitpid(pid, 0)

    assert list((root / "tmp").iterdir()) == []


def test_entries_of_live_processes_and_unnamed_ones_stay(tmp_path: Path) -> None:
    """Sweeping keeps this process's staging dirs and entries without a pid."""
    store = StoreDirectory(tmp_path / "store")
    staging = store.tmp_dir("layer-")
    legacy = store.root / "tmp" / "blob-abc123"
    legacy.write_bytes(b"old")

    assert sweep_dead(store.root / "tmp") == (0, 0)
    assert sorted(p.name for p in (store.root / "tmp").iterdir()) == sorted(
        ["blob-abc123", staging.name]
    )
    assert staging.name.startswith(f"layer-pid{os.getpid()}-")


def test_prune_removes_a_dead_process_staging_dir_without_grace(
    tmp_path: Path,
) -> None:
    """Prune removes a fresh leftover of an exited pid and counts its bytes."""
    store = StoreDirectory(tmp_path / "store")
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    dead = store.root / "tmp" / f"layer-pid{pid}-q1w2e3r4"
    dead.mkdir()
    (dead / "file").write_bytes(b"z" * 1000)
    mine = store.tmp_dir("save-")

    report = prune(store, dangling=True, cache_older_than=None, grace=3600.0)

    assert (report.tmp_entries_deleted, report.space_reclaimed) == (1, 1000)
    assert [p.name for p in (store.root / "tmp").iterdir()] == [mine.name]


def test_prune_removes_a_live_process_entry_only_after_the_grace(
    tmp_path: Path,
) -> None:
    """A live pid's entry stays while young and goes once older than grace."""
    store = StoreDirectory(tmp_path / "store")
    young = store.tmp_dir("layer-")
    old = store.tmp_dir("save-")
    (old / "file").write_bytes(b"y" * 300)
    stamp = time.time() - 7200
    os.utime(old, (stamp, stamp))

    report = prune(store, dangling=True, cache_older_than=None, grace=3600.0)

    assert (report.tmp_entries_deleted, report.space_reclaimed) == (1, 300)
    assert [p.name for p in (store.root / "tmp").iterdir()] == [young.name]
