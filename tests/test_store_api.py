"""The public Store and Image API for archives, imports, exports and lifecycle."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

import layercake
from layercake.errors import (
    BlobNotFound,
    DigestMismatch,
    ImageInUse,
    ImageNotFound,
    StoreCorrupted,
    StoreError,
    UnsafeArchiveEntry,
)
from layercake.store import (
    ContainerConfig,
    Descriptor,
    Digest,
    ImageConfig,
    Manifest,
    MediaType,
    Platform,
    RootFS,
    host_platform,
)


def _small_image(
    store: layercake.Store, tmp_path: Path, write_context, tag: str = "demo:1"
):
    context = write_context(
        tmp_path / f"ctx-{tag.replace(':', '-')}",
        'FROM scratch\nCOPY hello /hello\nCMD ["/hello"]\n',
        hello=f"hello from {tag}\n",
    )
    return layercake.Builder(store).build(context, tag=tag)


def _layer_bytes(layer: layercake.Layer) -> bytes:
    with layer.open() as file:
        return file.read()


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {
            info.name: tar.extractfile(info).read()  # type: ignore[union-attr]
            for info in tar.getmembers()
            if info.isfile()
        }


def _tar_bytes(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def test_docker_archive_has_current_dockers_layout_with_gzip_layers(
    store, tmp_path, write_context
):
    """save() writes oci-layout, index.json, blobs and manifest.json; layers gzipped."""
    image = _small_image(store, tmp_path, write_context)
    archive = tmp_path / "demo.tar"
    image.save(archive)

    members = _members(archive)
    layer = image.layers[0]
    gz_layer = gzip.compress(_layer_bytes(layer), mtime=0)
    config = f"blobs/sha256/{image.manifest.config.digest.hex}"
    manifest = json.loads(members["manifest.json"])
    assert manifest[0]["Config"] == config
    assert manifest[0]["RepoTags"] == ["demo:1"]
    (layer_name,) = manifest[0]["Layers"]
    assert gzip.decompress(members[layer_name]) == _layer_bytes(layer)
    assert (
        layer_name == f"blobs/sha256/{hashlib.sha256(members[layer_name]).hexdigest()}"
    )
    assert len(members[layer_name]) < len(gz_layer) + 64
    assert members["oci-layout"] == b'{"imageLayoutVersion":"1.0.0"}'
    index = json.loads(members["index.json"])
    assert index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": "docker.io/library/demo:1",
        "org.opencontainers.image.ref.name": "1",
    }
    oci_manifest = json.loads(
        members[index["manifests"][0]["digest"].replace("sha256:", "blobs/sha256/")]
    )
    assert oci_manifest["layers"][0]["mediaType"] == (
        "application/vnd.oci.image.layer.v1.tar+gzip"
    )
    assert sorted(members) == sorted(
        [
            "oci-layout",
            "index.json",
            "manifest.json",
            config,
            layer_name,
            index["manifests"][0]["digest"].replace("sha256:", "blobs/sha256/"),
        ]
    )


def test_save_then_load_keeps_image_id_manifest_and_tags(
    store, tmp_path, write_context
):
    """A docker archive loaded into another store gives the same id, manifest and tag."""
    image = _small_image(store, tmp_path, write_context)
    archive = tmp_path / "demo.tar"
    image.save(archive)

    other = layercake.Store(tmp_path / "other")
    (loaded,) = other.load(archive)
    assert loaded.id == image.id
    assert loaded.digest == image.digest
    assert loaded.tags == ("demo:1",)
    assert _layer_bytes(loaded.layers[0]) == _layer_bytes(image.layers[0])


def test_oci_archive_without_compression_carries_stored_layers(
    store, tmp_path, write_context
):
    """format="oci", compression="none" writes the stored layer blob as is."""
    image = _small_image(store, tmp_path, write_context)
    archive = tmp_path / "demo.oci.tar"
    image.save(archive, format="oci", compression="none")

    members = _members(archive)
    assert "manifest.json" not in members
    layer = image.layers[0]
    assert members[f"blobs/sha256/{layer.digest.hex}"] == _layer_bytes(layer)
    index = json.loads(members["index.json"])
    assert index["manifests"][0]["annotations"] == {
        "org.opencontainers.image.ref.name": "demo:1"
    }
    (loaded,) = layercake.Store(tmp_path / "other").load(archive)
    assert (loaded.digest, loaded.tags) == (image.digest, ("demo:1",))


def test_store_save_writes_several_images_and_tags_in_one_archive(
    store, tmp_path, write_context
):
    """Store.save() of two tags of one image and another image loads all three tags."""
    first = _small_image(store, tmp_path, write_context, "one:1")
    first.tag("one:alias")
    second = _small_image(store, tmp_path, write_context, "two:1")
    archive = tmp_path / "both.tar"
    store.save(["one:1", "one:alias", second], archive)

    other = layercake.Store(tmp_path / "other")
    loaded = other.load(archive)
    assert [(i.id, i.tags) for i in loaded] == [
        (first.id, ("one:1", "one:alias")),
        (second.id, ("two:1",)),
    ]
    assert json.loads(_members(archive)["manifest.json"])[0]["RepoTags"] == [
        "one:1",
        "one:alias",
    ]


def test_save_by_image_id_writes_no_tag(store, tmp_path, write_context):
    """An image saved by id is loaded untagged."""
    image = _small_image(store, tmp_path, write_context)
    archive = tmp_path / "byid.tar"
    store.save([image.short_id], archive)

    assert json.loads(_members(archive)["manifest.json"])[0]["RepoTags"] is None
    (loaded,) = layercake.Store(tmp_path / "other").load(archive)
    assert (loaded.id, loaded.tags) == (image.id, ())


def test_load_reads_the_classic_docker_save_layout(store, tmp_path, write_context):
    """manifest.json + <id>/layer.tar (one a symlink) + repositories loads and tags."""
    image = _small_image(store, tmp_path, write_context)
    layer = _layer_bytes(image.layers[0])
    config = image.store._directory.read_blob(image.manifest.config.digest)
    config_json = json.loads(config)
    config_json["rootfs"]["diff_ids"] *= 2
    doubled = json.dumps(config_json).encode()
    doubled_id = hashlib.sha256(doubled).hexdigest()
    archive = tmp_path / "classic.tar"
    archive.write_bytes(
        _tar_bytes(
            {
                "aaaa/layer.tar": layer,
                "aaaa/VERSION": b"1.0",
                f"{doubled_id}.json": doubled,
                "manifest.json": json.dumps(
                    [
                        {
                            "Config": f"{doubled_id}.json",
                            "RepoTags": ["docker.io/library/classic:latest"],
                            "Layers": ["aaaa/layer.tar", "bbbb/layer.tar"],
                        }
                    ]
                ).encode(),
                "repositories": b'{"classic":{"latest":"bbbb"}}',
            },
            links={"bbbb/layer.tar": "../aaaa/layer.tar"},
        )
    )

    (loaded,) = store.load(archive)
    assert loaded.id == f"sha256:{doubled_id}"
    assert loaded.tags == ("classic:latest",)
    assert [layer.digest for layer in loaded.layers] == [image.layers[0].digest] * 2


def test_load_refuses_a_damaged_layer_and_sets_no_tag(store, tmp_path, write_context):
    """A layer whose bytes do not match the config's diff id fails the load; no tag."""
    image = _small_image(store, tmp_path, write_context)
    config = image.store._directory.read_blob(image.manifest.config.digest)
    config_id = hashlib.sha256(config).hexdigest()
    diff_id = image.layers[0].diff_id
    archive = tmp_path / "damaged.tar"
    archive.write_bytes(
        _tar_bytes(
            {
                "x/layer.tar": _tar_bytes({"evil": b"not the layer"}),
                f"{config_id}.json": config,
                "manifest.json": json.dumps(
                    [
                        {
                            "Config": f"{config_id}.json",
                            "RepoTags": ["bad:1"],
                            "Layers": ["x/layer.tar"],
                        }
                    ]
                ).encode(),
            }
        )
    )
    other = layercake.Store(tmp_path / "other")

    with pytest.raises(DigestMismatch) as caught:
        other.load(archive)
    assert caught.value.expected == str(diff_id)
    assert str(caught.value).endswith(f" ({archive}:x/layer.tar)")
    assert other.images() == []
    assert not other._directory.has_blob(diff_id)
    assert list((other.path / "tmp").iterdir()) == []


def test_load_of_a_tar_without_manifest_says_it_is_no_image_archive(store, tmp_path):
    """A plain tar with neither manifest.json nor index.json is refused by name."""
    archive = tmp_path / "plain.tar"
    archive.write_bytes(_tar_bytes({"etc/hostname": b"x\n"}))

    with pytest.raises(StoreCorrupted) as caught:
        store.load(archive)
    assert str(caught.value) == (
        f"not an image archive: {archive} has neither manifest.json nor index.json"
    )


def _tar_entries(*entries: tuple[str, str, bytes | str]) -> bytes:
    """A tar from (kind, name, data-or-link-target) with kind f, d, h (hard link)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "d":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
                tar.addfile(info)
            else:
                assert isinstance(data, bytes)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _image_of_layers(
    store: layercake.Store, tag: str, *layers: bytes
) -> layercake.Image:
    directory = store._directory
    descriptors = tuple(
        Descriptor(MediaType.OCI_LAYER, directory.write_blob(data), len(data))
        for data in layers
    )
    platform = host_platform()
    config = ImageConfig(
        architecture=platform.architecture,
        os=platform.os,
        config=ContainerConfig(),
        rootfs=RootFS(tuple(d.digest for d in descriptors)),
    )
    manifest = directory.write_json(
        Manifest(directory.write_json(config, MediaType.OCI_CONFIG), descriptors),
        MediaType.OCI_MANIFEST,
    )
    directory.set_tag(tag, manifest)
    return store.image(tag)


def test_import_rootfs_makes_a_one_layer_image_with_the_changes(store, tmp_path):
    """import_rootfs() of a gzip tarball stores it uncompressed with cmd and env set."""
    plain = _tar_entries(("d", "bin", b""), ("f", "bin/hello", b"hi\n"))
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(gzip.compress(plain))

    image = store.import_rootfs(
        tarball,
        tag="imported:1",
        changes=ContainerConfig(env=("A=1",)),
        cmd=["/bin/hello"],
    )

    assert image.tags == ("imported:1",)
    assert image.config.config == ContainerConfig(env=("A=1",), cmd=("/bin/hello",))
    assert _layer_bytes(image.layers[0]) == plain
    assert image.layers[0].digest == image.layers[0].diff_id
    assert [(h.created_by, h.comment) for h in image.history] == [
        ("layercake import", "imported from rootfs.tar.gz")
    ]
    assert (image.layers[0].unpacked_path() / "bin/hello").read_bytes() == b"hi\n"


def test_import_rootfs_refuses_an_escaping_entry_and_makes_no_image(store, tmp_path):
    """A tarball entry with .. is refused and no image or tag appears."""
    tarball = tmp_path / "evil.tar"
    tarball.write_bytes(_tar_entries(("f", "../escape", b"x")))

    with pytest.raises(UnsafeArchiveEntry) as caught:
        store.import_rootfs(tarball, tag="evil:1")
    assert caught.value.entry == "../escape"
    assert store.images() == []
    assert not (tmp_path / "escape").exists()


def test_import_rootfs_of_a_missing_file_names_it(store, tmp_path):
    """A missing tarball gives a StoreError naming the path."""
    with pytest.raises(StoreError) as caught:
        store.import_rootfs(tmp_path / "nope.tar")
    assert (
        str(caught.value)
        == f"cannot read {tmp_path / 'nope.tar'}: No such file or directory"
    )


def test_export_writes_the_merged_tree_with_whiteouts_applied(store, tmp_path):
    """export() shows upper files over lower ones and drops whited-out paths."""
    base = _tar_entries(
        ("d", "etc", b""),
        ("f", "etc/keep", b"old\n"),
        ("h", "etc/keep2", "etc/keep"),
        ("f", "etc/gone", b"gone\n"),
        ("d", "opt", b""),
        ("d", "opt/old", b""),
        ("f", "opt/old/x", b"x\n"),
    )
    upper = _tar_entries(
        ("d", "etc", b""),
        ("f", "etc/.wh.gone", b""),
        ("f", "etc/keep", b"new\n"),
        ("d", "opt", b""),
        ("f", "opt/.wh..wh..opq", b""),
        ("f", "opt/new", b"n\n"),
    )
    image = _image_of_layers(store, "merged:1", base, upper)
    target = tmp_path / "rootfs.tar"

    image.export(target)

    with tarfile.open(target) as tar:
        found = {
            info.name: (
                tar.extractfile(info).read() if info.isfile() else info.type  # type: ignore[union-attr]
            )
            for info in tar.getmembers()
        }
    assert found == {
        "etc": tarfile.DIRTYPE,
        "etc/keep": b"new\n",
        "etc/keep2": b"old\n",
        "opt": tarfile.DIRTYPE,
        "opt/new": b"n\n",
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_imported_busybox_runs(store, busybox_rootfs, container_runtime):
    """A busybox rootfs imported with a cmd runs that cmd."""
    image = store.import_rootfs(busybox_rootfs, cmd=["echo", "imported"])

    assert image.run().stdout == b"imported\n"


def test_untag_of_the_last_tag_leaves_a_dangling_image(store, tmp_path, write_context):
    """untag() removes the name; the image is then listed as dangling."""
    image = _small_image(store, tmp_path, write_context)

    store.untag("demo:1")

    assert store.images() == [image]
    assert store.images({"dangling": "true"})[0].tags == ()
    assert store.images({"dangling": "false"}) == []
    with pytest.raises(ImageNotFound) as caught:
        store.untag("demo:1")
    assert str(caught.value) == "image not found: demo:1"


def test_retagging_a_name_leaves_the_old_image_dangling(store, tmp_path, write_context):
    """A tag moved to a new build leaves the previous image dangling, as Docker does."""
    old = _small_image(store, tmp_path, write_context, "demo:1")
    context = write_context(tmp_path / "ctx2", "FROM scratch\nCOPY x /x\n", x="2\n")
    new = layercake.Builder(store).build(context, tag="demo:1")

    assert store.images({"dangling": True}) == [old]
    assert store.images({"dangling": False}) == [new]


def test_remove_of_one_of_several_tags_only_untags(store, tmp_path, write_context):
    """remove("a") of an image also tagged b keeps the image under b."""
    image = _small_image(store, tmp_path, write_context, "a:1")
    image.tag("b:1")

    assert store.remove("a:1") == ["Untagged: a:1"]
    assert store.image("b:1") == image


def test_remove_by_id_of_a_multi_tagged_image_needs_force(
    store, tmp_path, write_context
):
    """An id naming an image with two tags is refused unless forced, then all go."""
    image = _small_image(store, tmp_path, write_context, "a:1")
    image.tag("b:1")

    with pytest.raises(ImageInUse) as caught:
        store.remove(image.short_id)
    assert str(caught.value) == (
        f"unable to delete {image.short_id} (must be forced): image is "
        "referenced in 2 tags"
    )
    assert store.remove(image.short_id, force=True) == [
        "Untagged: a:1",
        "Untagged: b:1",
        f"Deleted: {image.id}",
    ]
    assert store.images() == []


def test_remove_is_refused_while_a_container_uses_the_image(
    store, tmp_path, write_context
):
    """containers/<id>/image naming the manifest blocks remove unless forced."""
    image = _small_image(store, tmp_path, write_context)
    container = store.path / "containers" / "c0ffee"
    container.mkdir()
    (container / "image").write_text(str(image.digest))

    with pytest.raises(ImageInUse) as caught:
        store.remove("demo:1")
    assert str(caught.value) == (
        f"unable to remove demo:1: container c0ffee uses image {image.short_id} "
        "(force to remove anyway)"
    )
    assert caught.value.container_ids == ("c0ffee",)
    assert store.remove("demo:1", force=True) == [
        "Untagged: demo:1",
        f"Deleted: {image.id}",
    ]
    # The container still needs its blobs: prune keeps them.
    store.prune(grace=0)
    assert store._directory.has_blob(image.digest)
    assert image.layers[0].unpacked_path().is_dir()


def test_inspect_uses_dockers_field_names(store, tmp_path, write_context, monkeypatch):
    """inspect() returns Docker's keys with the image's values."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    image = _small_image(store, tmp_path, write_context)
    layer = image.layers[0]

    assert image.inspect() == {
        "Id": image.id,
        "RepoTags": ["demo:1"],
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": "2023-11-14T22:13:20Z",
        "DockerVersion": "",
        "Author": "",
        "Config": {
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ],
            "Cmd": ["/hello"],
        },
        "Architecture": image.config.architecture,
        "Os": "linux",
        "Size": layer.size,
        "RootFS": {"Type": "layers", "Layers": [str(layer.diff_id)]},
        "Metadata": {"LastTagTime": ""},
        "Descriptor": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": str(image.digest),
            "size": (store.path / "blobs/sha256" / image.digest.hex).stat().st_size,
        },
    }
    assert [h.created_by for h in image.history] == [
        "COPY hello /hello # buildkit",
        'CMD ["/hello"]',
    ]


def test_images_filters_by_label_and_reference(store, tmp_path, write_context):
    """label= needs every label to match; reference= globs stop at slashes."""
    context = write_context(
        tmp_path / "ctx-l", "FROM scratch\nLABEL tier=web team=a\nCOPY f /f\n", f="1"
    )
    web = layercake.Builder(store).build(context, tag="shop/web:1")
    other = _small_image(store, tmp_path, write_context, "shop:2")

    assert store.images({"label": "tier=web"}) == [web]
    assert store.images({"label": ["tier=web", "team=b"]}) == []
    assert store.images({"label": "tier"}) == [web]
    assert store.images({"reference": "shop"}) == [other]
    assert store.images({"reference": "shop/*"}) == [web]
    assert store.images({"reference": "shop*:2"}) == [other]
    with pytest.raises(ValueError) as caught:
        store.images({"colour": "red"})
    assert str(caught.value) == (
        "invalid filter 'colour': use one of dangling, label, reference"
    )


def test_prune_removes_dangling_images_and_their_blobs_only(
    store, tmp_path, write_context
):
    """prune() deletes a dangling image, its blobs and unpacked layer; keeps the rest."""
    kept = _small_image(store, tmp_path, write_context, "keep:1")
    gone = _small_image(store, tmp_path, write_context, "gone:1")
    gone_layer = gone.layers[0]
    gone_layer.unpacked_path()
    kept.layers[0].unpacked_path()
    store.untag("gone:1")
    (store.path / "tmp" / "leftover").write_bytes(b"12345")
    before = store.df()

    report = store.prune(grace=0, cache_older_than=0)

    assert report.images_deleted == (str(gone.digest),)
    assert report.layers_deleted == 1
    assert report.tmp_entries_deleted == 1
    assert report.cache_entries_deleted == before.cache_entries
    assert store.images() == [kept]
    assert not store._directory.has_blob(gone_layer.digest)
    assert not (store.path / "layers" / gone_layer.diff_id.hex).exists()
    assert (
        kept.layers[0].unpacked_path() / "hello"
    ).read_bytes() == b"hello from keep:1\n"
    assert store.verify().problems == ()
    after = store.df()
    assert after.images == 1
    assert after.unreferenced_size == 0
    assert after.cache_entries == 0


def test_prune_keeps_blobs_younger_than_the_grace_period(store, tmp_path):
    """A fresh unreferenced blob (a build in progress) survives prune()."""
    digest = store._directory.write_blob(b"in flight")

    assert store.prune().blobs_deleted == 0
    assert store._directory.has_blob(digest)
    assert store.prune(grace=0).blobs_deleted == 1


def test_df_counts_shared_blobs_once(store, tmp_path, write_context):
    """Two tags of one image are one image; a layer two images share is shared."""
    base = _small_image(store, tmp_path, write_context, "base:1")
    context = write_context(tmp_path / "ctx-top", 'FROM base:1\nCMD ["/x"]\n')
    top = layercake.Builder(store).build(context, tag="top:1")
    base.tag("base:alias")

    usage = store.df()

    layer = base.layers[0]
    assert top.layers[0].digest == layer.digest
    assert usage.images == 2
    assert usage.shared_size == layer.size
    blob_sizes = {
        d: (store.path / "blobs/sha256" / d.hex).stat().st_size
        for image in (base, top)
        for d in (image.digest, image.manifest.config.digest, layer.digest)
    }
    assert usage.images_size == sum(blob_sizes.values())


def test_verify_moves_a_damaged_blob_away_and_reports_it(
    store, tmp_path, write_context
):
    """A flipped byte in a layer blob is reported and the blob is not served again."""
    image = _small_image(store, tmp_path, write_context)
    layer = image.layers[0]
    path = store.path / "blobs/sha256" / layer.digest.hex
    data = bytearray(path.read_bytes())
    data[600] ^= 1
    path.write_bytes(bytes(data))
    actual = "sha256:" + hashlib.sha256(data).hexdigest()

    report = store.verify()

    (problem, missing) = report.problems
    assert problem.startswith(
        f"blob {layer.digest} is damaged: its content hashes to {actual} (moved to {store.path}/tmp/damaged-"
    )
    assert missing.startswith(f"blob {layer.digest} is missing; ")
    assert str(image.digest) in missing
    assert not path.exists()
    with pytest.raises(BlobNotFound):
        image.save(tmp_path / "never.tar")
    assert not (tmp_path / "never.tar").exists()


def test_verify_removes_a_tampered_unpacked_layer(store, tmp_path, write_context):
    """An unpacked layer edited on disk is reported, removed and unpacked afresh."""
    image = _small_image(store, tmp_path, write_context)
    unpacked = image.layers[0].unpacked_path()
    (unpacked / "hello").write_text("tampered\n")

    report = store.verify()

    expected = (
        f"unpacked layer {image.layers[0].diff_id} differs from its blob (removed; "
        "it is unpacked again when needed)"
    )
    assert report.problems == (expected,)
    assert (
        image.layers[0].unpacked_path() / "hello"
    ).read_text() == "hello from demo:1\n"
    assert store.verify().ok


def test_source_date_epoch_gives_the_same_image_id_in_two_stores(
    tmp_path, write_context, monkeypatch
):
    """With SOURCE_DATE_EPOCH, two builds of one context at different times match."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    context = write_context(
        tmp_path / "ctx",
        'FROM scratch\nCOPY . /app/\nCMD ["/app/run"]\n',
        run="#!/bin/sh\n",
        lib__data="data\n",
    )
    first = layercake.Builder(layercake.Store(tmp_path / "one")).build(context)
    for path in context.rglob("*"):
        os.utime(path, (1_800_000_000, 1_800_000_000))
    second = layercake.Builder(layercake.Store(tmp_path / "two")).build(context)

    assert second.id == first.id
    with second.layers[0].open() as blob, tarfile.open(fileobj=blob) as tar:
        assert {info.mtime for info in tar.getmembers()} == {1_700_000_000}


def test_without_source_date_epoch_layers_keep_file_mtimes(
    tmp_path, write_context, monkeypatch
):
    """Unset, the layer records the files' own mtimes."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    context = write_context(tmp_path / "ctx", "FROM scratch\nCOPY f /f\n", f="x")
    os.utime(context / "f", (1_600_000_000, 1_600_000_000))
    image = layercake.Builder(layercake.Store(tmp_path / "s")).build(context)

    with image.layers[0].open() as blob, tarfile.open(fileobj=blob) as tar:
        assert tar.getmember("f").mtime == 1_600_000_000


def test_zstd_archive_on_request_loads_back(store, tmp_path, write_context, tool):
    """compression="zstd" writes zstd layers that load back to the same image."""
    tool("zstd")
    image = _small_image(store, tmp_path, write_context)
    archive = tmp_path / "demo.zst.tar"
    image.save(archive, format="oci", compression="zstd")

    members = _members(archive)
    index = json.loads(members["index.json"])
    manifest = json.loads(
        members[index["manifests"][0]["digest"].replace("sha256:", "blobs/sha256/")]
    )
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert members[layer["digest"].replace("sha256:", "blobs/sha256/")][:4] == (
        b"\x28\xb5\x2f\xfd"
    )
    (loaded,) = layercake.Store(tmp_path / "other").load(archive)
    assert (loaded.id, loaded.digest) == (image.id, image.digest)


def test_unknown_compression_is_refused(store, tmp_path, write_context):
    """An unknown compression name is a ValueError naming the choices."""
    image = _small_image(store, tmp_path, write_context)

    with pytest.raises(ValueError) as caught:
        image.save(tmp_path / "x.tar", compression="lz4")  # type: ignore[arg-type]
    assert str(caught.value) == (
        "unknown compression 'lz4': use 'gzip', 'zstd' or 'none'"
    )
    assert list(tmp_path.glob("*.tar")) == []


def test_load_reads_a_gzipped_archive(store, tmp_path, write_context):
    """`docker save | gzip` output loads as the plain archive does."""
    image = _small_image(store, tmp_path, write_context)
    image.save(tmp_path / "demo.tar", compression="none")
    packed = tmp_path / "demo.tar.gz"
    packed.write_bytes(gzip.compress((tmp_path / "demo.tar").read_bytes()))

    (loaded,) = layercake.Store(tmp_path / "other").load(packed)
    assert (loaded.id, loaded.tags) == (image.id, ("demo:1",))


def test_load_never_follows_a_member_symlink_out_of_the_archive(
    store, tmp_path, write_context
):
    """A layer.tar that is a symlink to a host file is refused, not read."""
    image = _small_image(store, tmp_path, write_context)
    config = image.store._directory.read_blob(image.manifest.config.digest)
    config_id = hashlib.sha256(config).hexdigest()
    archive = tmp_path / "sneaky.tar"
    archive.write_bytes(
        _tar_bytes(
            {
                f"{config_id}.json": config,
                "manifest.json": json.dumps(
                    [{"Config": f"{config_id}.json", "Layers": ["x/layer.tar"]}]
                ).encode(),
            },
            links={"x/layer.tar": "/etc/passwd"},
        )
    )

    with pytest.raises(StoreCorrupted) as caught:
        layercake.Store(tmp_path / "other").load(archive)
    assert str(caught.value).startswith(
        f"invalid image archive {archive}: cannot read x/layer.tar"
    )


def test_save_into_a_missing_directory_names_the_path(store, tmp_path, write_context):
    """Saving to a path whose directory does not exist is a StoreError naming it."""
    image = _small_image(store, tmp_path, write_context)
    target = tmp_path / "nowhere" / "demo.tar"

    with pytest.raises(StoreError) as caught:
        image.save(target)
    assert str(caught.value) == f"cannot write {target}: No such file or directory"
    with pytest.raises(StoreError) as caught:
        image.export(target)
    assert str(caught.value) == f"cannot write {target}: No such file or directory"


def test_image_by_name_at_manifest_digest_finds_the_stored_image(
    store, tmp_path, write_context
):
    """name@sha256:<manifest digest> and the bare manifest digest both resolve."""
    image = _small_image(store, tmp_path, write_context)

    assert store.image(f"demo@{image.digest}").digest == image.digest
    assert store.image(f"localhost:5000/other@{image.digest}").digest == image.digest
    assert store.image(str(image.digest)).digest == image.digest
    assert store.image(image.id).digest == image.digest


def test_image_by_unknown_manifest_digest_is_not_found(store, tmp_path, write_context):
    """A digest reference no stored manifest has raises ImageNotFound naming it."""
    _small_image(store, tmp_path, write_context)
    reference = "demo@sha256:" + "ab" * 32

    with pytest.raises(ImageNotFound) as caught:
        store.image(reference)

    assert str(caught.value) == f"image not found: {reference}"


def test_pull_with_an_invalid_platform_string_says_what_is_expected(store):
    """A platform string without os/arch raises ValueError before any network."""
    with pytest.raises(ValueError) as caught:
        store.pull("localhost:1/none:1", platform="amd64")

    assert str(caught.value) == (
        "invalid platform 'amd64': expected os/arch or os/arch/variant"
        " (e.g. linux/amd64)"
    )


def test_platform_parse_reads_os_arch_and_variant():
    """Platform.parse splits os/arch[/variant] into the right fields."""
    assert Platform.parse("linux/arm64/v8") == Platform("arm64", "linux", "v8")
    assert Platform.parse("linux/amd64") == Platform("amd64", "linux")
    for text in ("linux", "linux/", "/amd64", "a/b/c/d"):
        with pytest.raises(ValueError):
            Platform.parse(text)


def _cache_entry(store: layercake.Store, key: str, layer: bytes, age: float) -> int:
    """Store a one-layer image under cache ``key``, ``age`` seconds old.

    Returns the bytes of its manifest, config and layer blobs.
    """
    directory = store._directory
    digest = directory.write_blob(layer)
    config = ImageConfig(
        architecture="amd64", os="linux", rootfs=RootFS(diff_ids=[digest])
    )
    config_descriptor = directory.write_json(config, MediaType.OCI_CONFIG)
    manifest = Manifest(
        config=config_descriptor,
        layers=[Descriptor(MediaType.OCI_LAYER, digest, len(layer))],
    )
    descriptor = directory.write_json(manifest, MediaType.OCI_MANIFEST)
    directory.cache_put(key, descriptor.digest)
    stamp = time.time() - age
    os.utime(store.path / "cache" / key, (stamp, stamp))
    return descriptor.size + config_descriptor.size + len(layer)


def test_prune_by_cache_size_keeps_the_newest_entries_that_fit(store):
    """cache_max_size keeps the newest entries within the budget, drops older."""
    newest = _cache_entry(store, "aa", b"n" * 1000, age=10)
    middle = _cache_entry(store, "bb", b"m" * 2000, age=20)
    oldest = _cache_entry(store, "cc", b"o" * 4000, age=30)

    report = store.prune(cache_max_size=newest + middle, grace=0)

    assert [key for key, _d, _m in store._directory.cache_entries()] == ["aa", "bb"]
    assert report.cache_entries_deleted == 1
    assert report.cache_space_deleted == oldest
    assert report.blobs_deleted == 3
    assert report.space_reclaimed == oldest


def test_prune_by_cache_size_zero_drops_every_entry(store):
    """cache_max_size=0 removes the whole build cache and counts its blobs."""
    first = _cache_entry(store, "aa", b"a" * 100, age=1)
    second = _cache_entry(store, "bb", b"b" * 300, age=2)

    report = store.prune(cache_max_size=0)

    assert store._directory.cache_entries() == []
    assert report.cache_entries_deleted == 2
    assert report.cache_space_deleted == first + second
    # The blobs are younger than the grace period, so they stay for now.
    assert (report.blobs_deleted, report.space_reclaimed) == (0, 0)


def test_prune_reports_image_ids_of_deleted_dangling_images(
    store, tmp_path, write_context
):
    """image_ids_deleted holds the config digest of each dangling image removed."""
    image = _small_image(store, tmp_path, write_context)
    store.untag("demo:1")

    report = store.prune(grace=0)

    assert report.images_deleted == (str(image.digest),)
    assert report.image_ids_deleted == (image.id,)


def test_verify_reports_a_damaged_layer_blob_as_damaged_and_missing(
    store, tmp_path, write_context
):
    """One damaged layer blob gives two problems: damaged, then missing."""
    image = _small_image(store, tmp_path, write_context)
    layer = store._directory.read_json(Manifest, image.digest).layers[0].digest
    store._directory.blob_path(layer).write_bytes(b"broken")

    report = store.verify()

    assert report.ok is False
    assert len(report.problems) == 2
    damaged, missing = report.problems
    assert damaged.startswith(
        f"blob {layer} is damaged: its content hashes to "
        f"{Digest.of_bytes(b'broken')} (moved to {store.path.absolute()}/tmp/damaged-"
    )
    # The build cache's step manifests need the layer too.
    needing = {str(image.digest)} | {
        str(d) for _k, d, _m in store._directory.cache_entries()
    }
    assert missing == (
        f"blob {layer} is missing; {len(needing)} manifest(s) need it: "
        + ", ".join(sorted(needing))
    )
