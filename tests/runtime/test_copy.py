"""The copy driver's merge of layers into one root, as overlayfs would show it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from layercake.runtime import copied_at, materialize


def make_layers(tmp_path: Path) -> tuple[str, str]:
    """Two layers: the lower has files and links, the upper deletes and hides."""
    lower = tmp_path / "lower"
    (lower / "keep").mkdir(parents=True)
    (lower / "keep" / "a").write_text("a\n")
    os.link(lower / "keep" / "a", lower / "keep" / "a-link")
    (lower / "gone").write_text("gone\n")
    (lower / "hidden").mkdir()
    (lower / "hidden" / "old").write_text("old\n")
    (lower / "link").symlink_to("/keep/a")
    os.chmod(lower / "keep" / "a", 0o4755)

    upper = tmp_path / "upper"
    (upper / "hidden").mkdir(parents=True)
    (upper / "hidden" / "new").write_text("new\n")
    os.setxattr(upper / "hidden", "user.overlay.opaque", b"y")
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "keep").mkdir()
    (upper / "keep" / "b").write_text("b\n")
    return str(upper), str(lower)


def tree(root: Path) -> list[str]:
    """Every path under ``root``, relative and sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_materialize_merges_layers_as_overlay_shows_them(tmp_path: Path) -> None:
    """Whiteouts delete, opaque directories hide, upper files join lower ones."""
    root = tmp_path / "root"
    work = tmp_path / "work"
    root.mkdir()
    work.mkdir()

    materialize(make_layers(tmp_path), str(root), str(work))

    assert tree(root) == [
        "hidden",
        "hidden/new",
        "keep",
        "keep/a",
        "keep/a-link",
        "keep/b",
        "link",
    ]
    assert os.readlink(root / "link") == "/keep/a"
    assert stat.S_IMODE(os.stat(root / "keep" / "a").st_mode) == 0o4755
    assert os.listxattr(root / "hidden") == []


def test_materialize_keeps_hard_links_but_shares_no_inode_with_layers(
    tmp_path: Path,
) -> None:
    """Links within a layer stay links; every file is a new inode."""
    root = tmp_path / "root"
    work = tmp_path / "work"
    root.mkdir()
    work.mkdir()

    materialize(make_layers(tmp_path), str(root), str(work))

    copied = os.stat(root / "keep" / "a")
    assert os.stat(root / "keep" / "a-link").st_ino == copied.st_ino
    assert copied.st_ino != os.stat(tmp_path / "lower" / "keep" / "a").st_ino
    (root / "keep" / "a").write_text("changed\n")
    assert (tmp_path / "lower" / "keep" / "a").read_text() == "a\n"


def test_materialize_copies_once_and_redoes_an_unfinished_copy(
    tmp_path: Path,
) -> None:
    """The mark makes later calls no-ops; without it the root is copied afresh."""
    root = tmp_path / "root"
    work = tmp_path / "work"
    root.mkdir()
    work.mkdir()
    layers = make_layers(tmp_path)
    assert copied_at(str(work)) is None

    materialize(layers, str(root), str(work))
    mark = copied_at(str(work))
    (root / "written").write_text("by the container\n")
    materialize(layers, str(root), str(work))

    assert mark is not None and copied_at(str(work)) == mark
    assert (root / "written").exists()
    os.unlink(work / "copied")
    (root / "keep" / "a").unlink()
    materialize(layers, str(root), str(work))
    assert not (root / "written").exists()
    assert (root / "keep" / "a").read_text() == "a\n"
