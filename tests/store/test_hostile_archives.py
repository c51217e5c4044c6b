"""Tests that hostile tar archives are refused without writing outside."""

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from layer_samples import build_tar, member

from layercake.errors import DigestMismatch, StoreCorrupted, UnsafeArchiveEntry
from layercake.store import Descriptor, Digest, MediaType, StoreDirectory, extract_tar

DIR = tarfile.DIRTYPE
SYM = tarfile.SYMTYPE
LNK = tarfile.LNKTYPE


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    return outside


HOSTILE = [
    pytest.param(
        lambda out: build_tar((member("/abs/evil"), b"x")),
        "/abs/evil",
        "path '/abs/evil' is absolute",
        id="absolute",
    ),
    pytest.param(
        lambda out: build_tar((member("a/../../outside/evil"), b"x")),
        "a/../../outside/evil",
        "path 'a/../../outside/evil' contains '..'",
        id="dotdot",
    ),
    pytest.param(
        lambda out: build_tar(
            (member("link", SYM, link=str(out)), None), (member("link/evil"), b"x")
        ),
        "link/evil",
        "its parent 'link' is a symbolic link",
        id="write-through-symlink",
    ),
    pytest.param(
        lambda out: build_tar(
            (member("d", DIR, mode=0o755), None),
            (member("d/link", SYM, link="../../outside"), None),
            (member("d/link/evil"), b"x"),
        ),
        "d/link/evil",
        "its parent 'd/link' is a symbolic link",
        id="write-through-relative-symlink",
    ),
    pytest.param(
        lambda out: build_tar((member("h", LNK, link=str(out / "secret")), None)),
        "h",
        "hard link target '{secret}' is absolute",
        id="hardlink-absolute",
    ),
    pytest.param(
        lambda out: build_tar((member("h", LNK, link="../outside/secret"), None)),
        "h",
        "hard link target '../outside/secret' contains '..'",
        id="hardlink-dotdot",
    ),
    pytest.param(
        lambda out: build_tar(
            (member("s", SYM, link=str(out)), None),
            (member("h", LNK, link="s/secret"), None),
        ),
        "h",
        "its parent 's' is a symbolic link",
        id="hardlink-through-symlink",
    ),
    pytest.param(
        lambda out: build_tar((member("h", LNK, link="missing"), None)),
        "h",
        "hard link target 'missing' is not in the archive",
        id="hardlink-missing",
    ),
]


@pytest.mark.parametrize(("make", "entry", "reason"), HOSTILE)
def test_extract_tar_refuses_hostile_entries(
    tmp_path: Path, make: object, entry: str, reason: str
) -> None:
    """Each hostile entry raises UnsafeArchiveEntry naming it; outside is intact."""
    outside = _outside(tmp_path)
    data = make(outside)  # type: ignore[operator]
    reason = reason.replace("{secret}", str(outside / "secret"))
    with pytest.raises(UnsafeArchiveEntry) as info:
        extract_tar(io.BytesIO(data), tmp_path / "target")
    assert str(info.value) == f"unsafe archive entry {entry!r}: {reason}"
    assert info.value.entry == entry
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "secret"
    assert not Path("/abs").exists()


@pytest.mark.parametrize(("make", "entry", "reason"), HOSTILE)
def test_hostile_layer_leaves_no_unpacked_dir(
    layout: StoreDirectory, tmp_path: Path, make: object, entry: str, reason: str
) -> None:
    """A refused layer leaves neither layers/<hex> nor a staging directory."""
    outside = _outside(tmp_path)
    data = make(outside)  # type: ignore[operator]
    digest = layout.write_blob(data)
    with pytest.raises(UnsafeArchiveEntry):
        layout.unpacked_layer(
            Descriptor(MediaType.OCI_LAYER, digest, len(data)), digest
        )
    assert list(layout.layers_dir.iterdir()) == []
    assert list((layout.root / "tmp").iterdir()) == []
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_wrong_diff_id_is_a_digest_mismatch(layout: StoreDirectory) -> None:
    """A layer whose tar does not hash to the diff id is refused and removed."""
    data = build_tar((member("f"), b"x"))
    digest = layout.write_blob(data)
    wrong = Digest.of_bytes(b"not the tar")
    with pytest.raises(DigestMismatch) as info:
        layout.unpacked_layer(Descriptor(MediaType.OCI_LAYER, digest, len(data)), wrong)
    assert info.value.expected == str(wrong)
    assert info.value.actual == str(digest)
    assert info.value.path == str(layout.blob_path(digest))
    assert list(layout.layers_dir.iterdir()) == []
    assert list((layout.root / "tmp").iterdir()) == []


def test_tampered_blob_is_a_digest_mismatch(layout: StoreDirectory) -> None:
    """A blob whose bytes changed on disk is caught while unpacking."""
    good = build_tar((member("f"), b"good"))
    digest = layout.write_blob(good)
    layout.blob_path(digest).write_bytes(build_tar((member("f"), b"evil")))
    with pytest.raises(DigestMismatch) as info:
        layout.unpacked_layer(
            Descriptor(MediaType.OCI_LAYER, digest, len(good)), digest
        )
    assert info.value.expected == str(digest)
    assert list(layout.layers_dir.iterdir()) == []


def test_whiteout_names_cannot_escape(tmp_path: Path) -> None:
    """A whiteout for '..' is refused in overlay mode."""
    data = build_tar((member("d/.wh.."), b""))
    with pytest.raises(UnsafeArchiveEntry) as info:
        extract_tar(io.BytesIO(data), tmp_path / "t", whiteouts="overlay")
    assert str(info.value) == "unsafe archive entry 'd/.wh..': invalid whiteout name"


def test_overlay_xattrs_in_an_archive_are_ignored(tmp_path: Path) -> None:
    """An archive cannot smuggle trusted.overlay.* attributes into a layer."""
    info = member("d", DIR, mode=0o755)
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
    extract_tar(
        io.BytesIO(build_tar((info, None))), tmp_path / "t", whiteouts="overlay"
    )
    assert "trusted.overlay.opaque" not in os.listxattr(tmp_path / "t" / "d")


def test_not_a_tar_is_store_corrupted(tmp_path: Path) -> None:
    """Random bytes are reported as an invalid tar archive."""
    with pytest.raises(StoreCorrupted) as info:
        extract_tar(io.BytesIO(b"\x01" * 1024), tmp_path / "t")
    assert str(info.value).startswith("invalid tar archive: ")


def test_refusal_inside_a_zstd_stream_is_reported_as_unsafe(tmp_path: Path) -> None:
    """A hostile entry in a zstd archive raises UnsafeArchiveEntry, not a zstd error."""
    if shutil.which("zstd") is None:
        pytest.skip("zstd program not installed")
    plain = build_tar((member("../evil"), b"x" * 100_000), (member("f"), b"y"))
    data = subprocess.run(
        ["zstd", "-c"], input=plain, capture_output=True, check=True
    ).stdout
    with pytest.raises(UnsafeArchiveEntry) as info:
        extract_tar(io.BytesIO(data), tmp_path / "t")
    assert info.value.entry == "../evil"
