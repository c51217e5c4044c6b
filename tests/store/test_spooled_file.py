"""Blob files written through buffers and a writer thread keep every byte in order."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from layercake.errors import StoreError
from layercake.store import StoreDirectory
from layercake.store._spooled_file import BUFFER, SpooledFile
from layercake.store._writeback import RANGE, Writeback


def _pattern(size: int, seed: int) -> bytes:
    """``size`` bytes that differ from one seed and one position to the next."""
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def test_writes_and_filled_buffers_land_in_order_before_and_after_the_thread(
    tmp_path: Path,
) -> None:
    """Small, large and in-place pieces, 40 MiB in all, reach the file in order."""
    path = tmp_path / "blob"
    observed = hashlib.sha256()
    expected = bytearray()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    spool = SpooledFile(fd, observed.update)
    try:
        for seed in range(10):
            small = _pattern(1000 + seed, seed)
            spool.write(small)
            expected += small
            large = _pattern((1 << 20) + seed, 100 + seed)
            spool.write(large)
            expected += large
            buffer = spool.take()
            length = BUFFER - seed * 4096
            buffer[:length] = _pattern(length, 200 + seed)
            spool.put(buffer, length)
            expected += _pattern(length, 200 + seed)
        spool.close()
    finally:
        spool.abandon()

    assert len(expected) > 40 << 20
    assert path.read_bytes() == bytes(expected)
    assert observed.hexdigest() == hashlib.sha256(expected).hexdigest()


@pytest.fixture
def small_tmpfs(mount_tmpfs: Callable[[str], Path]) -> Path:
    """A 24 MiB tmpfs under tmp_path, unmounted afterwards."""
    return mount_tmpfs("24m")


def test_a_full_disk_met_by_the_writer_thread_is_raised_to_the_caller(
    small_tmpfs: Path,
) -> None:
    """ENOSPC in the writer thread comes back as the OSError of a later call."""
    fd = os.open(small_tmpfs / "blob", os.O_WRONLY | os.O_CREAT, 0o600)
    spool = SpooledFile(fd, lambda view: None)
    try:
        with pytest.raises(OSError) as caught:
            for _ in range(16):
                buffer = spool.take()
                spool.put(buffer, BUFFER)
            spool.close()
    finally:
        spool.abandon()

    assert caught.value.errno == errno.ENOSPC


def test_packing_a_layer_larger_than_the_free_space_is_a_clear_store_error(
    small_tmpfs: Path, tmp_path: Path
) -> None:
    """write_layer of 40 MiB into 24 MiB: the store's message, no temp file."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for index in range(5):
        (tree / f"f{index}").write_bytes(_pattern(8 << 20, index))
    store = StoreDirectory(small_tmpfs / "store")

    with pytest.raises(StoreError) as caught:
        store.write_layer(tree)

    assert str(caught.value) == (
        "cannot write a blob: the store's file system is full "
        f"({small_tmpfs / 'store' / 'blobs'})"
    )
    assert list((small_tmpfs / "store" / "tmp").iterdir()) == []


def test_writeback_of_a_pipe_turns_itself_off_without_an_error() -> None:
    """sync_file_range refuses a pipe; the writer carries on and stops asking."""
    read_end, write_end = os.pipe()
    try:
        writeback = Writeback(write_end)
        assert writeback.due(RANGE)
        writeback.start(RANGE)
        assert not writeback.due(2 * RANGE)
    finally:
        os.close(read_end)
        os.close(write_end)
