"""Tests for StoreDirectory's layout, blobs, tags and build cache."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from layercake.errors import BlobNotFound, DigestMismatch, StoreCorrupted, StoreError
from layercake.store import Descriptor, Digest, Manifest, MediaType, StoreDirectory

HELLO = Digest.of_bytes(b"hello")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_new_store_is_an_oci_layout(tmp_path: Path) -> None:
    """Opening a missing directory creates the layout and the store's folders."""
    store = StoreDirectory(tmp_path / "s")
    assert store.root == tmp_path / "s"
    assert _files(store.root) == [
        "blobs",
        "blobs/sha256",
        "cache",
        "containers",
        "index.json",
        "layers",
        "oci-layout",
        "tmp",
    ]
    assert (store.root / "oci-layout").read_bytes() == (
        b'{"imageLayoutVersion":"1.0.0"}'
    )
    assert (store.root / "index.json").read_bytes() == (
        b'{"schemaVersion":2,'
        b'"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    )
    assert store.containers_dir == store.root / "containers"
    assert store.layers_dir == store.root / "layers"


def test_opening_an_existing_store_rewrites_nothing(tmp_path: Path) -> None:
    """Reopening keeps index.json byte for byte, including foreign content."""
    StoreDirectory(tmp_path)
    index = tmp_path / "index.json"
    index.write_bytes(b'{"schemaVersion":2,"manifests":[]}')
    before = index.stat()
    StoreDirectory(tmp_path)
    assert index.read_bytes() == b'{"schemaVersion":2,"manifests":[]}'
    assert index.stat().st_ino == before.st_ino


def test_foreign_layout_version_is_refused(tmp_path: Path) -> None:
    """A layout of an unknown major version raises StoreCorrupted naming it."""
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion":"2.0.0"}')
    with pytest.raises(StoreCorrupted) as info:
        StoreDirectory(tmp_path)
    assert str(info.value) == (
        f"unsupported OCI layout version '2.0.0' in {tmp_path / 'oci-layout'}"
    )


def test_write_blob_stores_content_under_its_digest(tmp_path: Path) -> None:
    """A written blob lands in blobs/sha256/<hex> and reads back verified."""
    store = StoreDirectory(tmp_path)
    assert store.write_blob(b"hello") == HELLO
    assert store.blob_path(HELLO) == tmp_path / "blobs" / "sha256" / HELLO.hex
    assert store.has_blob(HELLO)
    assert store.read_blob(HELLO) == b"hello"
    with store.open_blob(HELLO) as file:
        assert file.read() == b"hello"
    assert _files(tmp_path / "tmp") == []


def test_write_blob_with_wrong_expected_digest_leaves_nothing(tmp_path: Path) -> None:
    """A digest mismatch raises and leaves neither the blob nor a temp file."""
    store = StoreDirectory(tmp_path)
    wrong = Digest.of_bytes(b"other")
    with pytest.raises(DigestMismatch) as info:
        store.write_blob(b"hello", expected=wrong)
    assert info.value.expected == str(wrong)
    assert info.value.actual == str(HELLO)
    assert not store.has_blob(HELLO)
    assert not store.has_blob(wrong)
    assert _files(tmp_path / "tmp") == []


def test_blob_writer_streams_and_reports_digest_and_size(tmp_path: Path) -> None:
    """The writer hashes while writing; digest and size are set afterwards."""
    store = StoreDirectory(tmp_path)
    with store.blob_writer(expected=HELLO) as writer:
        writer.write(b"hel")
        writer.write(b"lo")
    assert writer.digest == HELLO
    assert writer.size == 5
    assert store.read_blob(HELLO) == b"hello"


def test_blob_writer_that_raises_leaves_no_blob_and_no_temp(tmp_path: Path) -> None:
    """An exception inside the with-block discards everything written."""
    store = StoreDirectory(tmp_path)
    with pytest.raises(RuntimeError), store.blob_writer() as writer:
        writer.write(b"hello")
        raise RuntimeError("boom")
    assert not store.has_blob(HELLO)
    assert _files(tmp_path / "blobs") == ["sha256"]
    assert _files(tmp_path / "tmp") == []


def test_blob_writer_digest_before_finish_is_an_error(tmp_path: Path) -> None:
    """Asking for the digest inside the block raises StoreError."""
    store = StoreDirectory(tmp_path)
    with store.blob_writer() as writer, pytest.raises(StoreError) as info:
        writer.digest  # noqa: B018
    assert str(info.value) == "blob digest read before the blob was finished"


def test_read_missing_blob_names_digest_and_path(tmp_path: Path) -> None:
    """Reading an absent blob raises BlobNotFound with its digest and path."""
    store = StoreDirectory(tmp_path)
    path = store.blob_path(HELLO)
    with pytest.raises(BlobNotFound) as info:
        store.read_blob(HELLO)
    assert str(info.value) == f"blob not found: {HELLO} ({path})"
    assert info.value.digest == str(HELLO)
    assert info.value.path == str(path)


def test_read_corrupted_blob_is_a_digest_mismatch(tmp_path: Path) -> None:
    """A blob whose bytes changed on disk fails verification on read."""
    store = StoreDirectory(tmp_path)
    store.write_blob(b"hello")
    path = store.blob_path(HELLO)
    path.write_bytes(b"jello")
    with pytest.raises(DigestMismatch) as info:
        store.read_blob(HELLO)
    assert str(info.value) == (
        f"digest mismatch: expected {HELLO}, got {Digest.of_bytes(b'jello')} ({path})"
    )


def test_write_json_and_read_json_round_trip(tmp_path: Path) -> None:
    """A model written as JSON comes back equal, with a matching descriptor."""
    store = StoreDirectory(tmp_path)
    manifest = Manifest(Descriptor(MediaType.OCI_CONFIG, HELLO, 5), ())
    descriptor = store.write_json(manifest, MediaType.OCI_MANIFEST)
    data = store.read_blob(descriptor.digest)
    assert descriptor == Descriptor(
        MediaType.OCI_MANIFEST, Digest.of_bytes(data), len(data)
    )
    assert store.read_json(Manifest, descriptor.digest) == manifest


def _manifest(n: int) -> Descriptor:
    return Descriptor(MediaType.OCI_MANIFEST, Digest("sha256", f"{n:064x}"), n)


def test_set_tag_writes_a_ref_name_annotation(tmp_path: Path) -> None:
    """A tag is an index.json entry annotated with its ref.name."""
    store = StoreDirectory(tmp_path)
    store.set_tag("demo:latest", _manifest(1))
    entries = json.loads((tmp_path / "index.json").read_bytes())["manifests"]
    assert entries == [
        {
            "mediaType": MediaType.OCI_MANIFEST,
            "digest": f"sha256:{1:064x}",
            "size": 1,
            "annotations": {"org.opencontainers.image.ref.name": "demo:latest"},
        }
    ]
    assert store.resolve_tag("demo:latest") == _manifest(1)
    assert store.resolve_tag("other") is None


def test_set_tag_replaces_a_tag_of_the_same_name(tmp_path: Path) -> None:
    """Retagging moves the name and keeps other tags in place."""
    store = StoreDirectory(tmp_path)
    store.set_tag("b", _manifest(1))
    store.set_tag("a", _manifest(2))
    store.set_tag("b", _manifest(3))
    assert store.tags() == [("a", _manifest(2)), ("b", _manifest(3))]


def test_remove_tag_reports_whether_it_existed(tmp_path: Path) -> None:
    """Removing a tag drops its entry; removing it again returns False."""
    store = StoreDirectory(tmp_path)
    store.set_tag("a", _manifest(1))
    assert store.remove_tag("a") is True
    assert store.remove_tag("a") is False
    assert store.tags() == []


def test_untagged_index_entries_survive_tag_updates(tmp_path: Path) -> None:
    """Entries without a ref.name, written by other tools, are kept."""
    store = StoreDirectory(tmp_path)
    foreign = (
        b'{"schemaVersion":2,"manifests":[{"mediaType":"'
        + MediaType.OCI_MANIFEST.encode()
        + b'","digest":"sha256:'
        + b"c" * 64
        + b'","size":9}]}'
    )
    (tmp_path / "index.json").write_bytes(foreign)
    store.set_tag("a", _manifest(1))
    entries = json.loads((tmp_path / "index.json").read_bytes())["manifests"]
    assert [e["digest"] for e in entries] == ["sha256:" + "c" * 64, f"sha256:{1:064x}"]


def test_corrupt_index_raises_store_corrupted(tmp_path: Path) -> None:
    """A broken index.json is reported, not silently replaced."""
    store = StoreDirectory(tmp_path)
    (tmp_path / "index.json").write_bytes(b"{")
    with pytest.raises(StoreCorrupted) as caught:
        store.set_tag("a", _manifest(1))
    assert str(caught.value).startswith(
        f"{tmp_path / 'index.json'}: malformed Index json: "
    )
    assert caught.value.path == str(tmp_path / "index.json")
    assert (tmp_path / "index.json").read_bytes() == b"{"


_TAGGER = """
import sys
from layercake.store import Descriptor, Digest, MediaType, StoreDirectory
store = StoreDirectory(sys.argv[1])
worker = int(sys.argv[2])
for i in range(25):
    n = worker * 100 + i
    store.set_tag(f"w{n}", Descriptor(MediaType.OCI_MANIFEST, Digest("sha256", f"{n:064x}"), n))
"""


def test_concurrent_processes_lose_no_tag(tmp_path: Path) -> None:
    """Four processes tagging at once all see their tags in the final index."""
    StoreDirectory(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _TAGGER, str(tmp_path), str(w)], env=env
        )
        for w in range(4)
    ]
    assert [w.wait() for w in workers] == [0, 0, 0, 0]
    names = [name for name, _ in StoreDirectory(tmp_path).tags()]
    assert names == sorted(f"w{w * 100 + i}" for w in range(4) for i in range(25))
    assert _files(tmp_path / "tmp") == []


def test_cache_put_then_get_returns_the_manifest(tmp_path: Path) -> None:
    """A cache entry maps a key to a manifest digest, replacing old values."""
    store = StoreDirectory(tmp_path)
    assert store.cache_get("ab12") is None
    store.cache_put("ab12", HELLO)
    store.cache_put("ab12", _manifest(7).digest)
    assert store.cache_get("ab12") == _manifest(7).digest
    assert (tmp_path / "cache" / "ab12").read_text() == f"{_manifest(7).digest}\n"


def test_cache_key_must_be_hex(tmp_path: Path) -> None:
    """A key that is not lowercase hex is refused before touching disk."""
    store = StoreDirectory(tmp_path)
    with pytest.raises(StoreError) as info:
        store.cache_put("../x", HELLO)
    assert str(info.value) == "invalid build cache key '../x': expected lowercase hex"


def test_corrupt_cache_entry_is_reported(tmp_path: Path) -> None:
    """A cache file that holds no digest raises StoreCorrupted naming the key."""
    store = StoreDirectory(tmp_path)
    (tmp_path / "cache" / "ff").write_text("junk")
    with pytest.raises(StoreCorrupted) as info:
        store.cache_get("ff")
    assert str(info.value) == "corrupt build cache entry ff: 'junk' is not a digest"


def test_tmp_dir_is_fresh_and_inside_the_store(tmp_path: Path) -> None:
    """Each call gives a new empty directory under root/tmp."""
    store = StoreDirectory(tmp_path)
    first, second = store.tmp_dir("x-"), store.tmp_dir("x-")
    assert first != second
    assert first.parent == second.parent == tmp_path / "tmp"
    assert first.name.startswith("x-")
    assert list(first.iterdir()) == []
