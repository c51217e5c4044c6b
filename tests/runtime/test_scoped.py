"""resolve_in_root: container paths resolved on the host without escaping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from layercake.runtime._scoped import resolve_in_root


def test_absolute_symlink_is_resolved_inside_the_root(tmp_path: Path) -> None:
    """A link to /etc/real points at the root's etc/real, not the host's."""
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/real", tmp_path / "etc" / "link")
    created: list[str] = []

    path = resolve_in_root(str(tmp_path), "/etc/link/x", create="file", created=created)

    assert path == f"{tmp_path}/etc/real/x"
    assert created == ["/etc/real", "/etc/real/x"]
    assert (tmp_path / "etc" / "real" / "x").is_file()


def test_dot_dot_stops_at_the_root(tmp_path: Path) -> None:
    """Leading ".." components cannot climb above the root."""
    created: list[str] = []

    path = resolve_in_root(str(tmp_path), "/../../a", create="dir", created=created)

    assert (path, created) == (f"{tmp_path}/a", ["/a"])


def test_relative_symlink_with_dot_dot_stays_inside(tmp_path: Path) -> None:
    """A relative link climbing out with ".." lands at the root instead."""
    os.symlink("../../../../outside", tmp_path / "up")
    created: list[str] = []

    path = resolve_in_root(str(tmp_path), "/up", create="dir", created=created)

    assert (path, created) == (f"{tmp_path}/outside", ["/outside"])


def test_existing_path_creates_nothing(tmp_path: Path) -> None:
    """An existing target is returned as is and nothing is recorded."""
    (tmp_path / "proc").mkdir()
    created: list[str] = []

    path = resolve_in_root(str(tmp_path), "/proc", create="dir", created=created)

    assert (path, created) == (f"{tmp_path}/proc", [])


def test_file_in_the_way_of_a_directory_is_refused(tmp_path: Path) -> None:
    """A regular file where a directory is needed raises ENOTDIR."""
    (tmp_path / "etc").write_text("")

    with pytest.raises(NotADirectoryError):
        resolve_in_root(str(tmp_path), "/etc/hosts", create="file", created=[])


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    """A link pointing at itself raises ELOOP instead of spinning."""
    os.symlink("/loop", tmp_path / "loop")

    with pytest.raises(OSError) as caught:
        resolve_in_root(str(tmp_path), "/loop/x", create="dir", created=[])

    assert caught.value.errno == 40
