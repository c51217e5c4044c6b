"""Tests for packing directories into layers and unpacking them again."""

import bz2
import gzip
import io
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from layer_samples import MTIME, build_tar, list_tar, member, set_mtimes, snapshot

from layercake.errors import StoreError
from layercake.store import (
    Descriptor,
    Digest,
    MediaType,
    StoreDirectory,
    extract_tar,
)

# A valid VFS_CAP_REVISION_2 value granting cap_net_raw, effective.
CAP_NET_RAW = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown)")


def _sample_tree(root: Path) -> None:
    """Fill root with every file type a layer can hold, in overlay form."""
    root.mkdir()
    (root / "bin").mkdir()
    tool = root / "bin" / "tool"
    tool.write_text("tool")
    os.chmod(tool, 0o4755)
    os.setxattr(tool, "security.capability", CAP_NET_RAW)
    os.link(tool, root / "bin" / "tool-link")
    os.symlink("tool", root / "bin" / "sh")

    (root / "dev").mkdir()
    os.mknod(root / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "dev" / "loop0", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.chown(root / "dev" / "loop0", 0, 6)
    os.chmod(root / "dev" / "null", 0o666)
    os.chmod(root / "dev" / "loop0", 0o660)
    os.mkfifo(root / "dev" / "pipe", 0o644)

    (root / "home").mkdir(mode=0o750)
    note = root / "home" / "user.txt"
    note.write_text("hi")
    os.chown(root / "home", 1000, 1001)
    os.chown(note, 1000, 1001)
    os.chmod(note, 0o640)
    os.setxattr(note, "user.note", b"x")
    os.setxattr(note, "trusted.overlay.origin", b"junk")

    os.mknod(root / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (root / "opaque").mkdir()
    os.setxattr(root / "opaque", "trusted.overlay.opaque", b"y")
    (root / "opaque" / "new").write_text("n")
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    set_mtimes(root)


SAMPLE_ENTRIES = [
    ("bin", "dir", "0o755", 0, 0, 0, "", {}),
    ("bin/sh", "symlink", "0o777", 0, 0, 0, "tool", {}),
    ("bin/tool", "file", "0o4755", 0, 0, 4, "", {"security.capability": CAP_NET_RAW}),
    (
        "bin/tool-link",
        "hardlink",
        "0o4755",
        0,
        0,
        0,
        "bin/tool",
        {"security.capability": CAP_NET_RAW},
    ),
    ("dev", "dir", "0o755", 0, 0, 0, "", {}),
    ("dev/loop0", "block", "0o660", 0, 6, 0, "7:0", {}),
    ("dev/null", "char", "0o666", 0, 0, 0, "1:3", {}),
    ("dev/pipe", "fifo", "0o644", 0, 0, 0, "", {}),
    (".wh.gone", "file", "0o600", 0, 0, 0, "", {}),
    ("home", "dir", "0o750", 1000, 1001, 0, "", {}),
    ("home/user.txt", "file", "0o640", 1000, 1001, 2, "", {"user.note": b"x"}),
    ("opaque", "dir", "0o755", 0, 0, 0, "", {}),
    ("opaque/.wh..wh..opq", "file", "0o600", 0, 0, 0, "", {}),
    ("opaque/new", "file", "0o644", 0, 0, 1, "", {}),
    ("tmp", "dir", "0o1777", 0, 0, 0, "", {}),
]


@needs_root
def test_write_layer_packs_every_file_type(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """The layer tar lists each entry with exact type, mode, owner and xattrs."""
    _sample_tree(tmp_path / "tree")
    layer = layout.write_layer(tmp_path / "tree")
    data = layout.read_blob(layer.digest)
    assert layer == Descriptor(MediaType.OCI_LAYER, Digest.of_bytes(data), len(data))
    assert list_tar(data) == SAMPLE_ENTRIES


@needs_root
def test_write_layer_is_deterministic(layout: StoreDirectory, tmp_path: Path) -> None:
    """Two equal trees pack to the same digest, with mtimes in whole seconds."""
    _sample_tree(tmp_path / "a")
    _sample_tree(tmp_path / "b")
    assert layout.write_layer(tmp_path / "a") == layout.write_layer(tmp_path / "b")
    data = layout.read_blob(layout.write_layer(tmp_path / "a").digest)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {m.mtime for m in tar} == {MTIME}


def _mount_overlay(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    result = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount overlay: {result.stderr.strip()}")


@needs_root
def test_write_layer_of_a_real_overlay_upper_dir(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """Deleting and replacing through overlayfs yields OCI whiteouts."""
    lower, upper, work, merged = (tmp_path / n for n in ("l", "u", "w", "m"))
    for folder in (lower / "a", lower / "d", upper, work, merged):
        folder.mkdir(parents=True)
    (lower / "a" / "keep").write_text("k")
    (lower / "a" / "drop").write_text("d")
    (lower / "d" / "old").write_text("o")

    _mount_overlay(lower, upper, work, merged)
    try:
        (merged / "a" / "drop").unlink()
        shutil.rmtree(merged / "d")
        (merged / "d").mkdir()
        (merged / "d" / "new").write_text("new")
    finally:
        subprocess.run(["umount", str(merged)], check=True)

    set_mtimes(upper)
    names = [
        (e[0], e[1], e[5])
        for e in list_tar(layout.read_blob(layout.write_layer(upper).digest))
    ]
    assert names == [
        ("a", "dir", 0),
        ("a/.wh.drop", "file", 0),
        ("d", "dir", 0),
        ("d/.wh..wh..opq", "file", 0),
        ("d/new", "file", 3),
    ]


@needs_root
def test_unpacked_layer_restores_the_tree_in_overlay_form(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """Unpacking a packed tree gives back the same files, owners and xattrs."""
    _sample_tree(tmp_path / "tree")
    layer = layout.write_layer(tmp_path / "tree")
    path = layout.unpacked_layer(layer, layer.digest)

    assert path == layout.layers_dir / layer.digest.hex
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    expected = [
        entry if entry[0] != "home/user.txt" else (*entry[:6], {"user.note": b"x"})
        for entry in snapshot(tmp_path / "tree")
    ]
    assert snapshot(path) == expected
    assert (path / "bin" / "tool").stat().st_ino == (
        path / "bin" / "tool-link"
    ).stat().st_ino
    assert list((layout.root / "tmp").iterdir()) == []


@needs_root
def test_unpack_then_pack_gives_the_same_layer(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """An unpacked layer packs back to the exact same digest."""
    _sample_tree(tmp_path / "tree")
    layer = layout.write_layer(tmp_path / "tree")
    path = layout.unpacked_layer(layer, layer.digest)
    assert layout.write_layer(path) == layer


def test_unpacked_layer_is_extracted_once(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """A second call returns the existing directory without re-extracting."""
    data = build_tar((member("f"), b"1"))
    digest = layout.write_blob(data)
    layer = Descriptor(MediaType.OCI_LAYER, digest, len(data))
    path = layout.unpacked_layer(layer, digest)
    (path / "marker").write_text("still here")
    assert layout.unpacked_layer(layer, digest) == path
    assert (path / "marker").read_text() == "still here"


@pytest.mark.parametrize(
    ("media_type", "compress"),
    [
        (MediaType.OCI_LAYER_GZIP, gzip.compress),
        (MediaType.DOCKER_LAYER_GZIP, gzip.compress),
        (
            MediaType.OCI_LAYER_ZSTD,
            lambda data: (
                subprocess.run(
                    ["zstd", "-c"], input=data, capture_output=True, check=True
                ).stdout
            ),
        ),
    ],
)
def test_compressed_layers_unpack_and_verify_the_diff_id(
    layout: StoreDirectory, media_type: str, compress: object
) -> None:
    """gzip and zstd layers unpack when their uncompressed digest is the diff id."""
    if media_type == MediaType.OCI_LAYER_ZSTD and shutil.which("zstd") is None:
        pytest.skip("zstd program not installed")
    plain = build_tar(
        (member("dir", tarfile.DIRTYPE, mode=0o755), None), (member("dir/f"), b"x")
    )
    blob = compress(plain)  # type: ignore[operator]
    layer = Descriptor(media_type, layout.write_blob(blob), len(blob))
    path = layout.unpacked_layer(layer, Digest.of_bytes(plain))
    assert (path / "dir" / "f").read_text() == "x"


def test_adopt_unpacked_moves_a_staged_tree(layout: StoreDirectory) -> None:
    """A staged directory is renamed into layers/<diff hex>."""
    diff_id = Digest.of_bytes(b"layer")
    staged = layout.tmp_dir("stage-")
    (staged / "f").write_text("x")
    path = layout.adopt_unpacked(staged, diff_id)
    assert path == layout.layers_dir / diff_id.hex
    assert (path / "f").read_text() == "x"
    assert not staged.exists()


def test_adopt_unpacked_twice_keeps_the_first_and_drops_the_second(
    layout: StoreDirectory,
) -> None:
    """When the layer is already unpacked the staged copy is removed."""
    diff_id = Digest.of_bytes(b"layer")
    first, second = layout.tmp_dir(), layout.tmp_dir()
    (first / "f").write_text("first")
    (second / "f").write_text("second")
    layout.adopt_unpacked(first, diff_id)
    path = layout.adopt_unpacked(second, diff_id)
    assert (path / "f").read_text() == "first"
    assert not second.exists()


def test_extract_tar_keeps_whiteouts_as_files_by_default(tmp_path: Path) -> None:
    """ADD-style extraction leaves .wh. entries as plain files."""
    data = build_tar((member(".wh.x"), b""), (member("d/.wh..wh..opq"), b""))
    extract_tar(io.BytesIO(data), tmp_path / "out")
    assert sorted(
        str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")
    ) == [
        ".wh.x",
        "d",
        "d/.wh..wh..opq",
    ]


@needs_root
def test_extract_tar_overlay_mode_makes_overlay_whiteouts(tmp_path: Path) -> None:
    """In overlay mode .wh.NAME is a 0:0 char device and .wh..wh..opq an xattr."""
    data = build_tar(
        (member("x"), b"old"),
        (member(".wh.x"), b""),
        (member("d", tarfile.DIRTYPE, mode=0o755), None),
        (member("d/.wh..wh..opq"), b""),
    )
    out = tmp_path / "out"
    extract_tar(io.BytesIO(data), out, whiteouts="overlay")
    st = os.lstat(out / "x")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(out / "d", "trusted.overlay.opaque") == b"y"
    assert sorted(p.name for p in out.iterdir()) == ["d", "x"]


def _zstd(data: bytes) -> bytes:
    if shutil.which("zstd") is None:
        pytest.skip("zstd program not installed")
    run = subprocess.run(["zstd", "-c"], input=data, capture_output=True, check=True)
    return run.stdout


@pytest.mark.parametrize(
    "compress", [gzip.compress, bz2.compress, lzma.compress, _zstd]
)
def test_extract_tar_detects_compression(tmp_path: Path, compress: object) -> None:
    """gzip, bzip2, xz and zstd archives are recognised by their magic bytes."""
    data = compress(build_tar((member("a/b", mode=0o600), b"hello")))  # type: ignore[operator]
    extract_tar(io.BytesIO(data), tmp_path)
    assert (tmp_path / "a" / "b").read_text() == "hello"
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o600
    assert int((tmp_path / "a" / "b").stat().st_mtime) == MTIME


def test_extract_tar_replaces_existing_entries(tmp_path: Path) -> None:
    """A later entry replaces an earlier one of another type at the same path."""
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "inner").write_text("x")
    data = build_tar(
        (member("p", tarfile.SYMTYPE, link="elsewhere"), None), (member("p"), b"file")
    )
    extract_tar(io.BytesIO(data), tmp_path)
    assert (tmp_path / "p").read_text() == "file"


def test_long_and_non_utf8_names_round_trip(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """Names over 100 bytes and names that are not UTF-8 survive pack and unpack."""
    tree = tmp_path / "tree"
    deep = tree / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    (deep / ("f" * 200)).write_text("long")
    odd = os.fsdecode(b"caf\xe9")
    (tree / odd).write_text("latin-1")
    set_mtimes(tree)
    layer = layout.write_layer(tree)
    path = layout.unpacked_layer(layer, layer.digest)
    assert (path / ("d" * 120) / ("e" * 120) / ("f" * 200)).read_text() == "long"
    assert (path / odd).read_text() == "latin-1"
    assert snapshot(path) == snapshot(tree)


def test_large_file_streams_through_in_chunks(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """A file bigger than the copy chunk keeps its exact bytes."""
    tree = tmp_path / "tree"
    tree.mkdir()
    content = os.urandom(3 * 1024 * 1024 + 17)
    (tree / "big").write_bytes(content)
    layer = layout.write_layer(tree)
    path = layout.unpacked_layer(layer, layer.digest)
    assert (path / "big").read_bytes() == content


_UNPACKER = """
import sys
from layercake.store import Descriptor, Digest, MediaType, StoreDirectory
store = StoreDirectory(sys.argv[1])
digest = Digest.parse(sys.argv[2])
layer = Descriptor(MediaType.OCI_LAYER, digest, store.blob_path(digest).stat().st_size)
print(store.unpacked_layer(layer, digest))
"""


def test_concurrent_unpacks_of_one_layer_agree(layout: StoreDirectory) -> None:
    """Processes unpacking the same layer at once all get one complete dir."""
    files = [(member(f"d{i // 50}/f{i}"), os.urandom(2048)) for i in range(400)]
    digest = layout.write_blob(build_tar(*files))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", _UNPACKER, str(layout.root), str(digest)]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = {worker.communicate()[0].strip() for worker in workers}
    assert [worker.returncode for worker in workers] == [0, 0, 0, 0]
    assert outputs == {str(layout.layers_dir / digest.hex)}
    assert [p.name for p in layout.layers_dir.iterdir()] == [digest.hex]
    assert len(list((layout.layers_dir / digest.hex).rglob("f*"))) == 400
    assert list((layout.root / "tmp").iterdir()) == []


@needs_root
def test_write_layer_refuses_metacopy_entries(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """An upper dir whose file data lives in a lower layer cannot be packed."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_text("")
    os.setxattr(tree / "f", "trusted.overlay.metacopy", b"")
    with pytest.raises(StoreError) as info:
        layout.write_layer(tree)
    assert str(info.value) == (
        f"cannot pack {tree / 'f'}: its trusted.overlay.metacopy xattr means the "
        "content is in a lower layer (mount overlayfs with "
        "metacopy=off,redirect_dir=off)"
    )
    assert list((layout.root / "tmp").iterdir()) == []
    assert list((layout.root / "blobs" / "sha256").iterdir()) == []
