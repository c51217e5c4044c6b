"""Tests of reading an image's files through its unpacked layers."""

import os
from pathlib import Path

from layercake._layer_stack import LayerStack


def make_layers(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/motd").write_text("lower motd\n")
    (lower / "etc/gone").write_text("deleted above\n")
    (lower / "data/old").mkdir(parents=True)
    (lower / "data/old/file").write_text("hidden by opaque\n")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/motd").write_text("upper motd\n")
    os.mknod(upper / "etc/gone", 0o600 | 0o020000, os.makedev(0, 0))
    (upper / "data").mkdir()
    os.setxattr(upper / "data", "trusted.overlay.opaque", b"y")
    os.symlink("/etc", upper / "conf")
    return upper, lower


def test_top_layer_wins(tmp_path):
    """The top-most layer's version of a file is the one read."""
    stack = LayerStack(make_layers(tmp_path))
    assert stack.read_text("/etc/motd") == "upper motd\n"


def test_whiteout_hides_the_lower_file(tmp_path):
    """A whiteout device in an upper layer deletes the lower file."""
    stack = LayerStack(make_layers(tmp_path))
    assert stack.lookup("/etc/gone") is None


def test_opaque_directory_hides_everything_beneath_it(tmp_path):
    """An opaque directory hides the lower layers' contents, at any depth."""
    stack = LayerStack(make_layers(tmp_path))
    assert stack.lookup("/data/old/file") is None
    assert stack.is_dir("/data") is True


def test_resolve_follows_links_inside_the_image(tmp_path):
    """Links resolve against the image root, and `..` cannot climb above it."""
    stack = LayerStack(make_layers(tmp_path))
    assert stack.resolve("/conf/motd") == "/etc/motd"
    assert stack.resolve("/../../etc") == "/etc"
