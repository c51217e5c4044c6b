"""A store survives a process killed mid-write, and a full disk gives a clear error.

Each crash test starts a child Python process that works on a store,
SIGKILLs it once its temp file or directory is growing, then reopens the
store and checks that nothing partial is visible, ``verify`` finds nothing
wrong and ``prune`` clears ``tmp/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import layercake
from layercake.errors import StoreError
from layercake.store import StoreDirectory

_DEADLINE = 60.0


def _run_and_kill(script: str, store: Path, ready: str) -> None:
    """Run ``script`` in a child, SIGKILL it once ``tmp/`` holds a ``ready*`` entry."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + _DEADLINE
        while time.monotonic() < deadline:
            started = [p for p in (store / "tmp").glob(f"{ready}*")]
            if started and _size(started[0]) > 0:
                break
            if child.poll() is not None:
                raise AssertionError(f"child ended early: {child.stderr.read()!r}")
            time.sleep(0.01)
        else:
            raise AssertionError("child never started writing")
        time.sleep(0.05)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stderr.close()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(1 for _ in path.rglob("*"))
    return path.stat().st_size


def _blob_files(store: Path) -> set[str]:
    return {p.name for p in (store / "blobs" / "sha256").iterdir()}


def _assert_clean_after_prune(store: Path, blobs_before: set[str]) -> None:
    # The killed process's temp entries carry its pid, so reopening the
    # store removes them at once; nothing is left for prune.
    assert list((store / "tmp").iterdir()) != []
    opened = layercake.Store(store)
    assert list((store / "tmp").iterdir()) == []
    assert _blob_files(store) == blobs_before
    assert opened.verify().problems == ()
    report = opened.prune(grace=0, dangling=False)
    assert report.tmp_entries_deleted == 0


def test_killed_while_writing_a_big_blob_leaves_no_blob(tmp_path: Path) -> None:
    """SIGKILL mid-blob leaves only a temp file; the blob never appears."""
    store = tmp_path / "store"
    StoreDirectory(store)
    before = _blob_files(store)
    _run_and_kill(
        """
        import sys
        from layercake.store import StoreDirectory
        store = StoreDirectory(sys.argv[1])
        with store.blob_writer() as writer:
            while True:
                writer.write(b"x" * (1 << 20))
        """,
        store,
        "blob-",
    )

    _assert_clean_after_prune(store, before)


def test_killed_while_loading_an_archive_leaves_no_image(tmp_path: Path) -> None:
    """SIGKILL during load() leaves no tag and no partial blob."""
    source = layercake.Store(tmp_path / "source")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "big").write_bytes(os.urandom(128 << 20))
    image_tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(image_tar), "."], check=True)
    source.import_rootfs(image_tar, tag="big:1").save(
        tmp_path / "big.tar", compression="none"
    )
    store = tmp_path / "store"
    StoreDirectory(store)
    before = _blob_files(store)

    _run_and_kill(
        """
        import sys
        import layercake
        layercake.Store(sys.argv[1]).load(sys.argv[1] + "/../big.tar")
        """,
        store,
        "blob-",
    )

    _assert_clean_after_prune(store, before)
    assert layercake.Store(store).images() == []


def test_killed_while_unpacking_leaves_no_layer(tmp_path: Path) -> None:
    """SIGKILL during unpacking leaves layers/ empty; the next use unpacks afresh."""
    store_path = tmp_path / "store"
    store = layercake.Store(store_path)
    rootfs = tmp_path / "rootfs"
    for n in range(120):
        (rootfs / f"d{n}").mkdir(parents=True)
        (rootfs / f"d{n}" / "f").write_bytes(os.urandom(1 << 20))
    image_tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(image_tar), "."], check=True)
    image = store.import_rootfs(image_tar, tag="many:1")
    layer = image.layers[0]
    store._directory.remove_unpacked(layer.diff_id)
    before = _blob_files(store_path)

    _run_and_kill(
        """
        import sys
        import layercake
        layercake.Store(sys.argv[1]).image("many:1").layers[0].unpacked_path()
        """,
        store_path,
        "layer-",
    )

    assert list((store_path / "layers").iterdir()) == []
    _assert_clean_after_prune(store_path, before)
    assert (layer.unpacked_path() / "d7" / "f").stat().st_size == 1 << 20


@pytest.fixture
def tiny_tmpfs(mount_tmpfs: Callable[[str], Path]) -> Path:
    """A 4 MiB tmpfs mounted under tmp_path, unmounted afterwards."""
    return mount_tmpfs("4m")


def test_full_disk_while_writing_a_blob_is_a_clear_store_error(
    tiny_tmpfs: Path,
) -> None:
    """A blob larger than the free space raises StoreError and leaves no temp file."""
    store = StoreDirectory(tiny_tmpfs / "store")

    with pytest.raises(StoreError) as caught:
        store.write_blob(b"x" * (8 << 20))

    assert str(caught.value) == (
        "cannot write a blob: the store's file system is full "
        f"({tiny_tmpfs / 'store' / 'blobs'})"
    )
    assert list((tiny_tmpfs / "store" / "tmp").iterdir()) == []


def test_full_disk_while_loading_is_a_clear_store_error(
    tiny_tmpfs: Path, tmp_path: Path
) -> None:
    """load() of an archive bigger than the free space fails cleanly, no tag set."""
    source = layercake.Store(tmp_path / "source")
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "big").write_bytes(os.urandom(8 << 20))
    image_tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(image_tar), "."], check=True)
    source.import_rootfs(image_tar, tag="big:1").save(tmp_path / "big.tar")
    store = layercake.Store(tiny_tmpfs / "store")

    with pytest.raises(StoreError) as caught:
        store.load(tmp_path / "big.tar")

    assert "the store's file system is full" in str(caught.value)
    assert store.images() == []
