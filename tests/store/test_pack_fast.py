"""Tests for the fast layer packer: its own ustar headers and the writer thread."""

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_samples import MTIME, list_tar, set_mtimes

from layercake.errors import StoreError
from layercake.store import StoreDirectory, _pack
from layercake.store._pack import pack_directory, ustar_header

KINDS = [
    tarfile.REGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.FIFOTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
]


@st.composite
def tar_infos(draw: st.DrawFn) -> tarfile.TarInfo:
    """Headers around the limits where a PAX record becomes necessary."""
    info = tarfile.TarInfo(draw(st.text(min_size=1, max_size=110)))
    info.type = draw(st.sampled_from(KINDS))
    info.linkname = draw(st.text(max_size=110))
    info.mode = draw(st.integers(0, 0o7777))
    info.uid = draw(st.integers(0, 8**7 + 2))
    info.gid = draw(st.integers(0, 8**7 + 2))
    info.size = draw(st.integers(0, 8**11 + 2))
    info.mtime = draw(st.integers(-2, 8**11 + 2))
    info.devmajor = draw(st.integers(0, 8**7 - 1))
    info.devminor = draw(st.integers(0, 8**7 - 1))
    info.uname = ""
    info.gname = ""
    return info


@given(tar_infos())
def test_ustar_header_is_what_tarfile_writes(info: tarfile.TarInfo) -> None:
    """Whenever the fast header is used, it is byte for byte tarfile's PAX header."""
    header = ustar_header(info)
    expected = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if header is not None:
        assert header == expected
        assert len(header) == 512


def test_ustar_header_defers_to_pax_for_long_and_odd_names() -> None:
    """Names over 100 bytes, non-ASCII names and huge ids need tarfile's PAX path."""
    long = tarfile.TarInfo("x" * 101)
    odd = tarfile.TarInfo(os.fsdecode(b"caf\xe9"))
    owner = tarfile.TarInfo("f")
    owner.uid = 8**7
    assert [ustar_header(long), ustar_header(odd), ustar_header(owner)] == [
        None,
        None,
        None,
    ]
    plain = tarfile.TarInfo("f")
    assert ustar_header(plain) == plain.tobuf(tarfile.PAX_FORMAT)


def test_packing_matches_tarfile_byte_for_byte(tmp_path: Path) -> None:
    """A tree of every common entry packs to the bytes tarfile.tobuf gives."""
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "small").write_bytes(b"s" * 700)
    (tree / "big").write_bytes(bytes(range(256)) * 9000)
    os.symlink("d/small", tree / "link")
    os.link(tree / "d" / "small", tree / "hard")
    os.mkfifo(tree / "fifo")
    (tree / ("n" * 150)).write_bytes(b"long name")
    os.setxattr(tree / "d" / "small", "user.note", b"\xff\x00")
    set_mtimes(tree)
    out = io.BytesIO()
    pack_directory(tree, out)

    expected = io.BytesIO()
    with tarfile.open(
        fileobj=expected,
        mode="w",
        format=tarfile.PAX_FORMAT,
        encoding="utf-8",
        errors="surrogateescape",
    ) as tar:
        for name in ["big", "d", "d/small", "fifo", "hard", "link", "n" * 150]:
            path = tree / name
            info = tar.gettarinfo(path, name)
            info.uname = info.gname = ""
            info.mtime = int(info.mtime)
            if name == "hard":
                info.type, info.linkname, info.size = tarfile.LNKTYPE, "d/small", 0
            if name in ("d/small", "hard"):
                info.pax_headers = {"SCHILY.xattr.user.note": "\udcff\x00"}
            if info.isreg():
                with open(path, "rb") as file:
                    tar.addfile(info, file)
            else:
                tar.addfile(info)
    assert out.getvalue() == expected.getvalue()[: len(out.getvalue())]
    assert [entry[:3] for entry in list_tar(out.getvalue())] == [
        ("big", "file", "0o644"),
        ("d", "dir", "0o755"),
        ("d/small", "file", "0o644"),
        ("fifo", "fifo", "0o644"),
        ("hard", "hardlink", "0o644"),
        ("link", "symlink", "0o777"),
        ("n" * 150, "file", "0o644"),
    ]


def test_write_layer_digest_is_the_hash_of_the_tar(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """The layer blob and its digest are exactly the bytes pack_directory writes."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for n in range(40):
        (tree / f"f{n}").write_bytes(os.urandom(n * 37_000))
    set_mtimes(tree)
    out = io.BytesIO()
    pack_directory(tree, out)
    layer = layout.write_layer(tree)
    assert layer.digest.hex == hashlib.sha256(out.getvalue()).hexdigest()
    assert layer.size == len(out.getvalue())
    assert layout.blob_path(layer.digest).read_bytes() == out.getvalue()


def _tarfile_bytes(tree: Path, clamp: int | None = None) -> bytes:
    """The tar ``tarfile`` writes of a tree of directories and plain files.

    Without the padding ``tarfile`` adds after the two end blocks to fill
    its last 10 KiB record, which a layer does not carry.
    """
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(tree):
            dirnames.sort()
            names = sorted(dirnames + filenames)
            for name in names:
                path = Path(dirpath) / name
                info = tar.gettarinfo(path, str(path.relative_to(tree)))
                info.uname = info.gname = ""
                info.mtime = int(info.mtime)
                if clamp is not None:
                    info.mtime = min(info.mtime, clamp)
                if info.isreg():
                    with open(path, "rb") as file:
                        tar.addfile(info, file)
                else:
                    tar.addfile(info)
        end = tar.offset + 2 * tarfile.BLOCKSIZE
    return out.getvalue()[:end]


def _boundary_tree(root: Path) -> Path:
    """Files whose ends fall just before, on and after the stream's buffer ends."""
    chunk = _pack._CHUNK
    tree = root / "tree"
    (tree / "small").mkdir(parents=True)
    sizes = [0, 1, 511, 512, 513, chunk - 1536, chunk - 512, chunk, chunk + 1]
    for n, size in enumerate(sizes + [2 * chunk + 700]):
        (tree / f"f{n:02}").write_bytes(os.urandom(size))
    for n in range(200):
        (tree / "small" / f"s{n:03}").write_bytes(os.urandom(n * 131))
    set_mtimes(tree)
    return tree


def test_files_across_buffer_ends_pack_as_tarfile_does(tmp_path: Path) -> None:
    """Files that straddle the 2 MiB buffer's end give tarfile's bytes."""
    tree = _boundary_tree(tmp_path)
    out = io.BytesIO()
    pack_directory(tree, out)
    assert out.getvalue() == _tarfile_bytes(tree)


def test_write_layer_of_files_across_buffer_ends_is_tarfiles_tar(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """The stored blob is tarfile's tar, and its digest is that tar's sha256."""
    tree = _boundary_tree(tmp_path)
    expected = _tarfile_bytes(tree)
    layer = layout.write_layer(tree)
    assert layer.digest.hex == hashlib.sha256(expected).hexdigest()
    assert layout.blob_path(layer.digest).read_bytes() == expected


def test_clamped_mtimes_pack_as_tarfile_does(tmp_path: Path) -> None:
    """The plain-file header path clamps mtimes exactly like the TarInfo path."""
    tree = _boundary_tree(tmp_path)
    os.utime(tree / "f03", (MTIME + 50, MTIME + 50))
    out = io.BytesIO()
    pack_directory(tree, out, clamp_mtime=MTIME - 10)
    assert out.getvalue() == _tarfile_bytes(tree, clamp=MTIME - 10)


def test_a_header_larger_than_a_buffer_reaches_the_sink_in_order() -> None:
    """Data bigger than one buffer goes out whole, after what came before it."""
    big = b"h" * (_pack._CHUNK + 5)
    out = io.BytesIO()
    stream = _pack._TarStream(out)
    stream.add(b"a" * 512)
    stream.add(big)
    stream.add(b"z" * 512)
    stream.flush()
    assert out.getvalue() == b"a" * 512 + big + b"z" * 512


def test_file_that_shrinks_while_packing_is_an_error(tmp_path: Path) -> None:
    """A file shorter than its stat size names itself in a StoreError."""
    (tmp_path / "f").write_bytes(b"abc")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        with pytest.raises(StoreError) as info:
            _pack._TarStream(io.BytesIO()).add_file(fd, 10, str(tmp_path / "f"))
    finally:
        os.close(fd)
    assert str(info.value) == f"file shrank while packing a layer: {tmp_path / 'f'}"


class _FailingSink:
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.seen.append(bytes(data))
        if len(self.seen) == 2:
            raise OSError(28, "No space left on device")
        return len(data)


def test_sinks_error_comes_out_of_pack_directory(tmp_path: Path) -> None:
    """A failing sink stops the pack with its own error; no write follows it."""
    tree = _boundary_tree(tmp_path)
    sink = _FailingSink()
    with pytest.raises(OSError) as info:
        pack_directory(tree, sink)
    assert info.value.strerror == "No space left on device"
    assert b"".join(sink.seen) == _tarfile_bytes(tree)[: 2 * _pack._CHUNK]


def test_compression_is_named_by_magic_number() -> None:
    """Each supported compression is recognised by its first bytes; tar is None."""
    from layercake.store._unpack import compression

    samples = [
        b"\x1f\x8b\x08\x00",
        b"BZh91AY",
        b"\xfd7zXZ\x00",
        b"\x28\xb5\x2f\xfd\x00",
        b"etc/\x00\x00",
    ]
    assert [compression(magic) for magic in samples] == [
        "gzip",
        "bzip2",
        "xz",
        "zstd",
        None,
    ]


def test_uncompressed_layer_with_a_wrong_diff_id_is_still_refused(
    layout: StoreDirectory,
) -> None:
    """Hashing a plain blob once still checks the diff id separately."""
    from layercake.errors import DigestMismatch
    from layercake.store import Descriptor, Digest, MediaType

    data = b"content"
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("f")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    digest = layout.write_blob(tar.getvalue())
    wrong = Digest.of_bytes(data)
    with pytest.raises(DigestMismatch) as info_:
        layout.unpacked_layer(
            Descriptor(MediaType.OCI_LAYER, digest, len(tar.getvalue())), wrong
        )
    assert (info_.value.expected, info_.value.actual) == (str(wrong), str(digest))
    assert list(layout.layers_dir.iterdir()) == []
