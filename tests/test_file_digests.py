"""Tests of the remembered file digests that spare re-reading a context."""

from __future__ import annotations

import os

import layercake
from layercake import _build_context
from layercake._file_digests import FileDigests


def old_file(path, content: str):
    path.write_text(content)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    return path.stat()


def test_digest_is_remembered_across_instances(tmp_path):
    """A digest written by one process's cache is found by the next one."""
    info = old_file(tmp_path / "f", "x")
    first = FileDigests(tmp_path / "db.sqlite")
    first.put(info, "ab" * 32)
    first.close()
    second = FileDigests(tmp_path / "db.sqlite")
    assert second.get(info) == "ab" * 32
    second.close()


def test_a_changed_file_is_not_matched(tmp_path):
    """Any change of size or times misses the remembered digest."""
    path = tmp_path / "f"
    before = old_file(path, "x")
    cache = FileDigests(tmp_path / "db.sqlite")
    cache.put(before, "ab" * 32)
    cache.flush()
    after = old_file(path, "y")
    assert cache.get(after) is None
    cache.close()


def test_a_just_modified_file_is_not_persisted(tmp_path):
    """A file modified a moment ago may change again within the same tick."""
    path = tmp_path / "f"
    path.write_text("fresh")
    cache = FileDigests(tmp_path / "db.sqlite")
    cache.put(path.stat(), "cd" * 32)
    cache.close()
    assert FileDigests(tmp_path / "db.sqlite").get(path.stat()) is None


def test_rebuild_from_a_new_builder_reads_no_unchanged_file(
    busybox, store, tmp_path, write_context, monkeypatch
):
    """An unchanged context is hashed from the remembered digests only."""
    context = write_context(tmp_path / "ctx", "FROM busybox\nCOPY . /app/\n")
    for index in range(20):
        old_file(context / f"file{index}.txt", f"content {index}\n")
    old_file(context / "Dockerfile", "FROM busybox\nCOPY . /app/\n")
    first = layercake.Builder(store).build(context)

    opened: list[str] = []
    real_open = open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(_build_context, "open", spy, raising=False)
    second = layercake.Builder(store).build(context)
    assert second.id == first.id
    assert opened == []
