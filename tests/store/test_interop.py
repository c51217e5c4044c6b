"""Tests that other OCI tools (skopeo, umoci) read a store directly."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from layer_samples import set_mtimes, snapshot

from layercake.store import (
    ContainerConfig,
    Descriptor,
    ImageConfig,
    Manifest,
    MediaType,
    RootFS,
    StoreDirectory,
    extract_tar,
    host_platform,
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _demo_image(
    layout: StoreDirectory, tmp_path: Path
) -> tuple[Descriptor, Descriptor]:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "motd").write_text("hello from layercake\n")
    os.symlink("motd", tree / "etc" / "motd.link")
    layer = layout.write_layer(tree)
    platform = host_platform()
    config = ImageConfig(
        architecture=platform.architecture,
        os=platform.os,
        config=ContainerConfig(cmd=("/bin/sh",), env=("A=1",)),
        rootfs=RootFS((layer.digest,)),
    )
    config_descriptor = layout.write_json(config, MediaType.OCI_CONFIG)
    manifest = layout.write_json(
        Manifest(config_descriptor, (layer,)), MediaType.OCI_MANIFEST
    )
    return manifest, layer


def test_skopeo_inspects_a_hand_filled_store(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """skopeo inspect oci:STORE:demo:latest reports the layer we wrote."""
    skopeo = _tool("skopeo")
    manifest, layer = _demo_image(layout, tmp_path)
    layout.set_tag("demo:latest", manifest)
    result = subprocess.run(
        [skopeo, "inspect", f"oci:{layout.root}:demo:latest"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["Digest"] == str(manifest.digest)
    assert report["Layers"] == [str(layer.digest)]
    assert report["Env"] == ["A=1"]


def test_skopeo_accepts_a_ref_name_with_a_registry_port(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """A tag like localhost:5000/app:dev works with skopeo's oci transport."""
    skopeo = _tool("skopeo")
    manifest, layer = _demo_image(layout, tmp_path)
    layout.set_tag("localhost:5000/app:dev", manifest)
    result = subprocess.run(
        [skopeo, "inspect", f"oci:{layout.root}:localhost:5000/app:dev"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Layers"] == [str(layer.digest)]


def test_umoci_unpacks_a_hand_filled_store(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """umoci unpack --image STORE:demo:latest gives back the tree we packed."""
    umoci = _tool("umoci")
    manifest, _ = _demo_image(layout, tmp_path)
    layout.set_tag("demo:latest", manifest)
    bundle = tmp_path / "bundle"
    result = subprocess.run(
        [umoci, "unpack", "--image", f"{layout.root}:demo:latest", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rootfs = bundle / "rootfs"
    assert sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*")) == [
        "etc",
        "etc/motd",
        "etc/motd.link",
    ]
    assert (rootfs / "etc" / "motd").read_text() == "hello from layercake\n"
    assert os.readlink(rootfs / "etc" / "motd.link") == "motd"


def test_store_reads_what_umoci_writes(layout: StoreDirectory, tmp_path: Path) -> None:
    """After umoci repacks an image into the store, its tag resolves and unpacks."""
    umoci = _tool("umoci")
    manifest, _ = _demo_image(layout, tmp_path)
    layout.set_tag("demo:latest", manifest)
    bundle = tmp_path / "bundle"
    subprocess.run(
        [umoci, "unpack", "--image", f"{layout.root}:demo:latest", str(bundle)],
        check=True,
        capture_output=True,
    )
    (bundle / "rootfs" / "etc" / "motd").unlink()
    (bundle / "rootfs" / "new").write_text("new")
    subprocess.run(
        [umoci, "repack", "--image", f"{layout.root}:demo:v2", str(bundle)],
        check=True,
        capture_output=True,
    )

    tagged = layout.resolve_tag("demo:v2")
    assert tagged is not None
    new = layout.read_json(Manifest, tagged.digest)
    config = layout.read_json(ImageConfig, new.config.digest)
    top = layout.unpacked_layer(new.layers[-1], config.rootfs.diff_ids[-1])
    assert sorted(p.name for p in top.rglob("*")) == ["etc", "motd", "new"]
    assert os.lstat(top / "etc" / "motd").st_rdev == 0
    assert [name for name, _ in layout.tags()] == ["demo:latest", "demo:v2"]


def _xattr_tree(root: Path) -> None:
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "file").write_text("content")
    os.chmod(root / "dir" / "file", 0o640)
    os.setxattr(root / "dir" / "file", "user.origin", b"layercake")
    os.symlink("dir/file", root / "link")
    os.link(root / "dir" / "file", root / "hard")
    set_mtimes(root)


def test_gnu_tar_extracts_what_write_layer_packs(
    layout: StoreDirectory, tmp_path: Path
) -> None:
    """GNU tar unpacks a layer blob to the same tree, xattrs included."""
    tar = _tool("tar")
    _xattr_tree(tmp_path / "tree")
    layer = layout.write_layer(tmp_path / "tree")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [
            tar,
            "--xattrs",
            "--xattrs-include=*",
            "-xpf",
            str(layout.blob_path(layer.digest)),
            "-C",
            str(out),
        ],
        check=True,
    )
    assert snapshot(out) == snapshot(tmp_path / "tree")


def test_extract_tar_reads_what_gnu_tar_writes(tmp_path: Path) -> None:
    """A GNU tar PAX archive with xattrs and links extracts to the same tree."""
    tar = _tool("tar")
    _xattr_tree(tmp_path / "tree")
    archive = tmp_path / "a.tar.gz"
    subprocess.run(
        [
            tar,
            "--format=pax",
            "--xattrs",
            "--numeric-owner",
            "-czf",
            str(archive),
            "-C",
            str(tmp_path / "tree"),
            ".",
        ],
        check=True,
    )
    with archive.open("rb") as stream:
        extract_tar(stream, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "tree")
