"""Tests for hostile layers and archives: bombs, odd names, devices, lying sizes."""

import gzip
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from layer_samples import build_tar, list_tar, member

from layercake.errors import StoreCorrupted, StoreError, UnsafeArchiveEntry
from layercake.store import (
    Descriptor,
    Digest,
    MediaType,
    StoreDirectory,
    extract_tar,
)

MIB = 1 << 20
REFUSAL = (
    "refused: its uncompressed tar is larger than {limit} bytes "
    "(the store's free space, or max_layer_size if smaller)"
)


def _store(tmp_path: Path, limit: int) -> StoreDirectory:
    return StoreDirectory(tmp_path / "store", max_layer_size=limit)


def _assert_nothing_left(store: StoreDirectory) -> None:
    assert list(store.layers_dir.iterdir()) == []
    assert list((store.root / "tmp").iterdir()) == []


def _bomb() -> tuple[bytes, bytes]:
    """A 64 MiB tar of zeros and its gzip (about 64 KiB)."""
    plain = build_tar((member("zeros"), bytes(64 * MIB)))
    return plain, gzip.compress(plain, compresslevel=9, mtime=0)


def test_gzip_bomb_layer_is_refused_naming_the_layer(tmp_path: Path) -> None:
    """A small gzip layer that expands past the limit stops at the entry; nothing stays."""
    store = _store(tmp_path, 16 * MIB)
    plain, packed = _bomb()
    assert len(packed) < MIB
    digest = store.write_blob(packed)
    diff_id = Digest.of_bytes(plain)
    layer = Descriptor(MediaType.OCI_LAYER_GZIP, digest, len(packed))
    with pytest.raises(StoreError) as info:
        store.unpacked_layer(layer, diff_id)
    limit = 16 * MIB
    assert str(info.value) == (
        f"layer {diff_id} " + REFUSAL.format(limit=limit) + " (at entry 'zeros')"
    )
    _assert_nothing_left(store)


def test_header_bomb_is_stopped_by_the_stream_limit(tmp_path: Path) -> None:
    """Thousands of empty entries past the limit are refused by the stream count."""
    store = _store(tmp_path, 64 * 1024)
    plain = build_tar(*[(member(f"e{n}"), b"") for n in range(200)])
    digest = store.write_blob(gzip.compress(plain, mtime=0))
    diff_id = Digest.of_bytes(plain)
    layer = Descriptor(MediaType.OCI_LAYER_GZIP, digest, 0)
    with pytest.raises(StoreError) as info:
        store.unpacked_layer(layer, diff_id)
    assert str(info.value) == f"layer {diff_id} " + REFUSAL.format(limit=64 * 1024)
    _assert_nothing_left(store)


def test_gzip_bomb_in_a_loaded_archive_names_the_layer(tmp_path: Path) -> None:
    """Loading an archive whose gzip layer is a bomb fails naming it; no blob appears."""
    plain, packed = _bomb()
    archive = _oci_archive(tmp_path, plain, packed, MediaType.OCI_LAYER_GZIP)
    store = _store(tmp_path, 16 * MIB)
    blobs_before = store.blob_digests()
    with pytest.raises(StoreError) as info:
        store_load(store, archive)
    diff_id = Digest.of_bytes(plain)
    where = f"{archive}:blobs/sha256/{Digest.of_bytes(packed).hex}"
    assert str(info.value) == (
        f"layer {diff_id} ({where}) " + REFUSAL.format(limit=16 * MIB)
    )
    assert store.blob_digests() == blobs_before
    _assert_nothing_left(store)
    assert store.tags() == []


def test_gzip_bomb_import_names_the_tarball(tmp_path: Path) -> None:
    """import_rootfs of a gzip bomb is refused naming the file; no blob stays."""
    from layercake.store._import import import_rootfs
    from layercake.store._models import ContainerConfig

    _, packed = _bomb()
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(packed)
    store = _store(tmp_path, 16 * MIB)
    with pytest.raises(StoreError) as info:
        import_rootfs(store, tarball, ContainerConfig())
    assert str(info.value) == f"layer {tarball} " + REFUSAL.format(limit=16 * MIB)
    assert store.blob_digests() == []
    _assert_nothing_left(store)


def test_layer_limit_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LAYERCAKE_MAX_LAYER_SIZE sets the cap; without it, free space is the limit."""
    monkeypatch.setenv("LAYERCAKE_MAX_LAYER_SIZE", "12345")
    store = StoreDirectory(tmp_path / "store")
    assert (store.max_layer_size, store.layer_size_limit()) == (12345, 12345)
    monkeypatch.delenv("LAYERCAKE_MAX_LAYER_SIZE")
    free = StoreDirectory(tmp_path / "other")
    st = os.statvfs(tmp_path)
    assert free.max_layer_size is None
    assert abs(free.layer_size_limit() - st.f_bavail * st.f_frsize) < 64 * MIB


def _pax_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    """A tar whose one entry's name (and link) travel in PAX records, as given."""
    info = member("placeholder", kind, link="placeholder" if link else "")
    info.pax_headers = {"path": name, **({"linkpath": link} if link else {})}
    return build_tar((info, b"x" if kind == tarfile.REGTYPE else None))


@pytest.mark.parametrize(
    ("data", "entry", "reason"),
    [
        pytest.param(
            _pax_member("a\0b"), "a\0b", "path 'a\\x00b' contains a NUL byte", id="nul"
        ),
        pytest.param(
            _pax_member("d/" + "n" * 256),
            "d/" + "n" * 256,
            f"path {'d/' + 'n' * 256!r} has a component of 256 bytes "
            "(at most 255 are allowed)",
            id="long-component",
        ),
        pytest.param(
            _pax_member("s", tarfile.SYMTYPE, link="t\0u"),
            "s",
            "symlink target 't\\x00u' contains a NUL byte",
            id="nul-symlink-target",
        ),
        pytest.param(
            _pax_member("h", tarfile.LNKTYPE, link="x\0y"),
            "h",
            "hard link target 'x\\x00y' contains a NUL byte",
            id="nul-hardlink-target",
        ),
    ],
)
def test_names_no_file_can_have_are_refused(
    tmp_path: Path, data: bytes, entry: str, reason: str
) -> None:
    """NUL bytes and over-long components raise UnsafeArchiveEntry naming the entry."""
    with pytest.raises(UnsafeArchiveEntry) as info:
        extract_tar(io.BytesIO(data), tmp_path / "t")
    assert (info.value.entry, info.value.reason) == (entry, reason)
    assert list((tmp_path / "t").iterdir()) == []


def test_component_of_255_bytes_is_stored(tmp_path: Path) -> None:
    """A component exactly at the Linux limit extracts."""
    extract_tar(io.BytesIO(_pax_member("n" * 255)), tmp_path / "t")
    assert (tmp_path / "t" / ("n" * 255)).read_bytes() == b"x"


def test_non_utf8_names_round_trip_byte_for_byte(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """Latin-1 bytes in a ustar name and in a PAX path survive unpack and repack."""
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT, encoding="latin-1"
    ) as tar:
        info = member("caf\xe9")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    # The ustar entry (header and one data block), then a PAX-named entry.
    pax = build_tar((_raw_pax_path(b"na\xefve"), b"pax"))
    data = buffer.getvalue()[:1024] + pax

    digest = layout.write_blob(data)
    path = layout.unpacked_layer(Descriptor(MediaType.OCI_LAYER, digest, 0), digest)
    assert sorted(os.listdir(os.fsencode(path))) == [b"caf\xe9", b"na\xefve"]
    assert (path / os.fsdecode(b"caf\xe9")).read_bytes() == b"ok"
    assert (path / os.fsdecode(b"na\xefve")).read_bytes() == b"pax"
    repacked = layout.write_layer(path)
    names = [entry[0] for entry in list_tar(layout.read_blob(repacked.digest))]
    assert [os.fsencode(name) for name in names] == [b"caf\xe9", b"na\xefve"]


def _raw_pax_path(name: bytes) -> tarfile.TarInfo:
    info = member("placeholder")
    info.pax_headers = {"path": os.fsdecode(name)}
    return info


def test_device_nodes_are_created_as_root(tmp_path: Path) -> None:
    """As root a char and a block device keep their numbers, as Docker's ADD does."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    char = member("dev/null", tarfile.CHRTYPE, mode=0o666)
    char.devmajor, char.devminor = 1, 3
    block = member("dev/loop9", tarfile.BLKTYPE, mode=0o660)
    block.devmajor, block.devminor = 7, 9
    extract_tar(io.BytesIO(build_tar((char, None), (block, None))), tmp_path / "t")
    null = os.lstat(tmp_path / "t" / "dev" / "null")
    loop = os.lstat(tmp_path / "t" / "dev" / "loop9")
    assert (stat.S_ISCHR(null.st_mode), oct(stat.S_IMODE(null.st_mode))) == (
        True,
        "0o666",
    )
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISBLK(loop.st_mode)
    assert (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)


_ROOTLESS = """
import io, logging, sys, tarfile
from pathlib import Path
from layercake.store import extract_tar
logging.basicConfig(format="%(levelname)s %(message)s")
extract_tar(open(sys.argv[1], "rb"), Path(sys.argv[2]))
"""


def test_device_nodes_are_skipped_without_root(tmp_path: Path) -> None:
    """In a user namespace (rootless), device entries are skipped with a warning."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1)")
    char = member("dev/null", tarfile.CHRTYPE, mode=0o666)
    char.devmajor, char.devminor = 1, 3
    archive = tmp_path / "devices.tar"
    archive.write_bytes(build_tar((char, None), (member("dev/ok"), b"ok")))
    result = subprocess.run(
        [unshare, "--user", sys.executable, "-c", _ROOTLESS, archive, tmp_path / "t"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "WARNING skipping device node 'dev/null': not root\n"
    assert sorted(os.listdir(tmp_path / "t" / "dev")) == ["ok"]


def store_load(store: StoreDirectory, archive: Path) -> None:
    """Load ``archive`` into ``store`` (the archive loader, without the Store API)."""
    from layercake.store._archive_load import load_archive

    load_archive(store, archive)


def _oci_archive(
    tmp_path: Path,
    plain: bytes,
    layer: bytes,
    media_type: str,
    *,
    layer_size: int | None = None,
    manifest_size_delta: int = 0,
) -> Path:
    """Write a one-image OCI archive by hand, with sizes as told."""
    diff_id = Digest.of_bytes(plain)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_MANIFEST,
            "config": {
                "mediaType": MediaType.OCI_CONFIG,
                "digest": str(Digest.of_bytes(config)),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": media_type,
                    "digest": str(Digest.of_bytes(layer)),
                    "size": len(layer) if layer_size is None else layer_size,
                }
            ],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": MediaType.OCI_MANIFEST,
                    "digest": str(Digest.of_bytes(manifest)),
                    "size": len(manifest) + manifest_size_delta,
                    "annotations": {"org.opencontainers.image.ref.name": "x:1"},
                }
            ],
        }
    ).encode()
    files = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": index,
        f"blobs/sha256/{Digest.of_bytes(config).hex}": config,
        f"blobs/sha256/{Digest.of_bytes(manifest).hex}": manifest,
        f"blobs/sha256/{Digest.of_bytes(layer).hex}": layer,
    }
    path = tmp_path / "image.oci.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_layer_with_a_wrong_declared_size_is_refused(tmp_path: Path) -> None:
    """A layer whose descriptor size differs from its bytes fails naming the blob."""
    plain = build_tar((member("f"), b"content"))
    archive = _oci_archive(
        tmp_path, plain, plain, MediaType.OCI_LAYER, layer_size=len(plain) - 512
    )
    store = StoreDirectory(tmp_path / "store")
    with pytest.raises(StoreCorrupted) as info:
        store_load(store, archive)
    name = f"blobs/sha256/{Digest.of_bytes(plain).hex}"
    assert str(info.value) == (
        f"invalid image archive {archive}: {name} is {len(plain)} bytes, "
        f"its descriptor says {len(plain) - 512}"
    )
    assert store.tags() == []
    assert not store.has_blob(Digest.of_bytes(plain))
    _assert_nothing_left(store)


def test_manifest_with_a_wrong_declared_size_is_refused(tmp_path: Path) -> None:
    """An index entry whose size differs from its manifest's bytes is refused."""
    plain = build_tar((member("f"), b"content"))
    archive = _oci_archive(
        tmp_path, plain, plain, MediaType.OCI_LAYER, manifest_size_delta=1
    )
    store = StoreDirectory(tmp_path / "store")
    with pytest.raises(StoreCorrupted) as info:
        store_load(store, archive)
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    entry = index["manifests"][0]
    name = "blobs/sha256/" + entry["digest"].removeprefix("sha256:")
    assert str(info.value) == (
        f"invalid image archive {archive}: {name} is {entry['size'] - 1} bytes, "
        f"its descriptor says {entry['size']}"
    )
    assert store.tags() == []


def test_archive_with_true_sizes_loads(tmp_path: Path) -> None:
    """The same hand-made archive with honest sizes loads and unpacks."""
    plain = build_tar((member("f"), b"content"))
    archive = _oci_archive(tmp_path, plain, plain, MediaType.OCI_LAYER)
    store = StoreDirectory(tmp_path / "store")
    store_load(store, archive)
    assert [name for name, _ in store.tags()] == ["x:1"]


def test_extract_tar_stops_a_gzip_bomb_at_its_limit(tmp_path: Path) -> None:
    """extract_tar (ADD of a context tarball) refuses a bomb past its limit."""
    _, packed = _bomb()
    with pytest.raises(StoreError) as info:
        extract_tar(io.BytesIO(packed), tmp_path / "t", limit=16 * MIB)
    assert str(info.value) == (
        f"archive refused: it expands past {16 * MIB} bytes (at entry 'zeros')"
    )
    assert list((tmp_path / "t").iterdir()) == []


def test_extract_tar_limit_defaults_to_the_free_space(tmp_path: Path) -> None:
    """On an 8 MiB tmpfs, a 64 MiB bomb is refused before it fills the disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)], check=True
    )
    try:
        st = os.statvfs(small)
        free = st.f_bavail * st.f_frsize
        _, packed = _bomb()
        with pytest.raises(StoreError) as info:
            extract_tar(io.BytesIO(packed), small)
        assert str(info.value) == (
            f"archive refused: it expands past {free} bytes, the free space of "
            f"the file system of {small} (at entry 'zeros')"
        )
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
