"""Fixtures for the store tests."""

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from layercake.store import StoreDirectory


@pytest.fixture
def layout(tmp_path: Path) -> StoreDirectory:
    """A fresh StoreDirectory in its own folder under tmp_path."""
    return StoreDirectory(tmp_path / "store")


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs of a given size (``"4m"``) under tmp_path; unmounted after.

    Skips without root, or fails where LAYERCAKE_REQUIRE_RUNTIME=1 requires it.
    """
    if os.geteuid() != 0:
        # As tests/conftest.py's missing(): skip, or fail where CI requires it.
        if os.environ.get("LAYERCAKE_REQUIRE_RUNTIME") == "1":
            pytest.fail("required but missing: mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mountpoint = tmp_path / f"tmpfs-{size}"
        mountpoint.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
            check=True,
        )
        mounted.append(mountpoint)
        return mountpoint

    try:
        yield mount
    finally:
        for mountpoint in reversed(mounted):
            subprocess.run(["umount", str(mountpoint)], check=True)
