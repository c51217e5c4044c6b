"""Push to and pull from a real registry server, and interoperate with skopeo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from registry_servers import QuietHandler, RunningRegistry, make_image

import layercake
from layercake.errors import ManifestUnknown
from layercake.store import (
    Descriptor,
    Digest,
    ImageConfig,
    Index,
    Manifest,
    MediaType,
    Platform,
    StoreDirectory,
)
from layercake.store._registry import TransferProgress, pull, push

FILES = [{"etc/hello": b"hello\n"}, {"etc/world": b"world\n" * 1000}]


def counting_proxy(serve, upstream: str) -> tuple[str, list[tuple[str, str, int]]]:
    """Serve a proxy to ``upstream`` that records (method, path, status)."""
    seen: list[tuple[str, str, int]] = []

    class Proxy(QuietHandler):
        def handle_any(self) -> None:
            self.forward(upstream)

        def send_response(self, code: int, message: str | None = None) -> None:
            # Recorded before the answer leaves, so the client never sees
            # a response whose request is not in the list yet.
            seen.append((self.command, self.path, code))
            super().send_response(code, message)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = handle_any

    return serve(Proxy), seen


def test_push_then_pull_into_fresh_store_keeps_manifest_digest(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """An image pushed and pulled back into an empty store has the same digest."""
    source = StoreDirectory(tmp_path / "a")
    manifest = make_image(source, FILES)
    pushed = push(source, manifest, f"{registry.host}/tests/hello:1")
    assert pushed == manifest.digest

    target = StoreDirectory(tmp_path / "b")
    pulled = pull(target, f"{registry.host}/tests/hello:1")

    assert pulled == Descriptor(MediaType.OCI_MANIFEST, manifest.digest, manifest.size)
    assert target.resolve_tag(f"{registry.host}/tests/hello:1") == pulled
    for layer in source.read_json(Manifest, manifest.digest).layers:
        assert target.read_blob(layer.digest) == source.read_blob(layer.digest)


def test_pull_by_digest_and_progress_reaches_every_total(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """A digest reference pulls that manifest; progress ends at each blob's size."""
    source = StoreDirectory(tmp_path / "a")
    manifest = make_image(source, FILES)
    push(source, manifest, f"{registry.host}/tests/hello:1")

    events: list[TransferProgress] = []
    target = StoreDirectory(tmp_path / "b")
    reference = f"{registry.host}/tests/hello@{manifest.digest}"
    pulled = pull(target, reference, on_progress=events.append)

    assert pulled.digest == manifest.digest
    layers = source.read_json(Manifest, manifest.digest).layers
    final = {e.digest: e.done for e in events if e.done == e.total}
    assert final == {layer.digest: layer.size for layer in layers}
    assert {e.reference for e in events} == {reference}


def test_pull_of_unknown_tag_names_reference_and_url(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """Pulling a tag the registry lacks raises ManifestUnknown naming both."""
    source = StoreDirectory(tmp_path / "a")
    push(source, make_image(source, FILES), f"{registry.host}/tests/hello:1")

    with pytest.raises(ManifestUnknown) as caught:
        pull(StoreDirectory(tmp_path / "b"), f"{registry.host}/tests/hello:2")

    url = f"http://{registry.host}/v2/tests/hello/manifests/2"
    assert str(caught.value) == (
        f"manifest pull failed for {registry.host}/tests/hello:2: GET {url} "
        "returned 404 MANIFEST_UNKNOWN: manifest unknown"
    )
    assert (caught.value.url, caught.value.status, caught.value.code) == (
        url,
        404,
        "MANIFEST_UNKNOWN",
    )


def test_second_push_uploads_nothing_and_pull_skips_present_blobs(
    tmp_path: Path, registry: RunningRegistry, serve
) -> None:
    """Blobs the registry has are not uploaded; blobs the store has not fetched."""
    proxy, seen = counting_proxy(serve, registry.host)
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, FILES)
    push(store, manifest, f"{proxy}/tests/hello:1")
    seen.clear()

    push(store, manifest, f"{proxy}/tests/hello:2")
    assert [m for m, _, _ in seen if m in ("POST", "PATCH")] == []
    assert sorted(m for m, _, _ in seen) == ["HEAD", "HEAD", "HEAD", "PUT"]

    seen.clear()
    pull(store, f"{proxy}/tests/hello:2")
    assert [(m, p) for m, p, _ in seen] == [("GET", "/v2/tests/hello/manifests/2")]


def test_push_to_another_repository_mounts_blobs(
    tmp_path: Path, registry: RunningRegistry, serve
) -> None:
    """Blobs known in one repository are mounted into another, not uploaded."""
    proxy, seen = counting_proxy(serve, registry.host)
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, FILES)
    push(store, manifest, f"{proxy}/tests/first:1")
    seen.clear()

    push(store, manifest, f"{proxy}/tests/second:1")

    posts = sorted((p, status) for m, p, status in seen if m == "POST")
    assert len(posts) == 3
    assert all("mount=sha256" in p and "from=tests%2Ffirst" in p for p, _ in posts)
    assert {status for _, status in posts} == {201}
    assert [m for m, _, _ in seen if m == "PATCH"] == []
    pulled = pull(StoreDirectory(tmp_path / "b"), f"{registry.host}/tests/second:1")
    assert pulled.digest == manifest.digest


def test_big_blobs_upload_in_chunks(
    tmp_path: Path, registry: RunningRegistry, serve
) -> None:
    """Blobs over chunk_size go up in PATCH requests and come back intact."""
    proxy, seen = counting_proxy(serve, registry.host)
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, [{"big": bytes(range(256)) * 200}])
    push(store, manifest, f"{proxy}/tests/big:1", chunk_size=10_000)

    layer = store.read_json(Manifest, manifest.digest).layers[0]
    patches = [p for m, p, _ in seen if m == "PATCH"]
    assert len(patches) == -(-layer.size // 10_000)
    target = StoreDirectory(tmp_path / "b")
    pull(target, f"{registry.host}/tests/big:1")
    assert target.read_blob(layer.digest) == store.read_blob(layer.digest)


def test_gzip_push_rewrites_layers_and_keeps_diff_ids(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """compression="gzip" pushes gzip layers whose unpacked form is unchanged."""
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, FILES)
    digest = push(store, manifest, f"{registry.host}/tests/gz:1", compression="gzip")
    assert digest != manifest.digest
    again = push(store, manifest, f"{registry.host}/tests/gz:2", compression="gzip")
    assert again == digest

    target = StoreDirectory(tmp_path / "b")
    pulled = pull(target, f"{registry.host}/tests/gz:1")
    assert pulled.digest == digest
    image = target.read_json(Manifest, digest)
    assert {layer.media_type for layer in image.layers} == {MediaType.OCI_LAYER_GZIP}
    config = target.read_json(ImageConfig, image.config.digest)
    original = store.read_json(Manifest, manifest.digest)
    assert config.rootfs.diff_ids == tuple(layer.digest for layer in original.layers)
    unpacked = target.unpacked_layer(image.layers[1], config.rootfs.diff_ids[1])
    assert (unpacked / "etc/world").read_bytes() == b"world\n" * 1000


def test_index_push_and_pull_picks_the_requested_platform(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """An index goes up whole; pull picks the manifest for the platform asked."""
    store = StoreDirectory(tmp_path / "a")
    amd64 = make_image(store, [{"arch": b"amd64\n"}])
    arm64 = make_image(store, [{"arch": b"arm64\n"}], architecture="arm64")
    index = Index(
        manifests=[
            Descriptor(
                amd64.media_type,
                amd64.digest,
                amd64.size,
                platform=Platform("amd64", "linux"),
            ),
            Descriptor(
                arm64.media_type,
                arm64.digest,
                arm64.size,
                platform=Platform("arm64", "linux", variant="v8"),
            ),
        ]
    )
    top = store.write_json(index, MediaType.OCI_INDEX)
    assert push(store, top, f"{registry.host}/tests/multi:1") == top.digest

    target = StoreDirectory(tmp_path / "b")
    pulled = pull(
        target, f"{registry.host}/tests/multi:1", platform=Platform("arm64", "linux")
    )
    assert pulled.digest == arm64.digest
    assert target.has_blob(top.digest)

    with pytest.raises(ManifestUnknown) as caught:
        pull(
            target,
            f"{registry.host}/tests/multi:1",
            platform=Platform("s390x", "linux"),
        )
    url = f"http://{registry.host}/v2/tests/multi/manifests/1"
    assert str(caught.value) == (
        f"pull of {registry.host}/tests/multi:1: no manifest for linux/s390x "
        f"(available: linux/amd64, linux/arm64/v8) ({url})"
    )


def test_pushed_busybox_pulls_back_with_same_digest_and_runs(
    tmp_path: Path,
    registry: RunningRegistry,
    store: layercake.Store,
    busybox: layercake.Image,
    container_runtime: None,
) -> None:
    """A layercake-built image survives a registry round trip and runs."""
    directory = StoreDirectory(store.path)
    manifest = directory.resolve_tag("busybox:latest")
    assert manifest is not None
    reference = f"{registry.host}/library/busybox:rt"
    push(directory, manifest, reference)

    fresh = tmp_path / "fresh"
    pulled = pull(StoreDirectory(fresh), reference)
    assert pulled.digest == manifest.digest

    image = layercake.Store(fresh).image(reference)
    result = image.run(["echo", "round trip"])
    assert (result.exit_code, result.stdout) == (0, b"round trip\n")


def test_skopeo_inspect_reads_what_we_pushed(
    tmp_path: Path, registry: RunningRegistry, tool
) -> None:
    """skopeo inspect sees our pushed manifest digest and layers."""
    skopeo = tool("skopeo")
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, FILES)
    push(store, manifest, f"{registry.host}/tests/hello:1")

    out = subprocess.run(
        [
            skopeo,
            "inspect",
            "--tls-verify=false",
            f"docker://{registry.host}/tests/hello:1",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    info = json.loads(out)
    layers = store.read_json(Manifest, manifest.digest).layers
    assert info["Digest"] == str(manifest.digest)
    assert info["Layers"] == [str(layer.digest) for layer in layers]


@pytest.mark.parametrize(
    ("format", "media_type"),
    [("oci", MediaType.OCI_MANIFEST), ("v2s2", MediaType.DOCKER_MANIFEST)],
)
def test_pull_image_copied_in_by_skopeo(
    tmp_path: Path, registry: RunningRegistry, tool, format: str, media_type: str
) -> None:
    """An OCI or Docker schema-2 image skopeo pushed pulls with skopeo's digest."""
    skopeo = tool("skopeo")
    store = StoreDirectory(tmp_path / "a")
    store.set_tag("hello", make_image(store, FILES))
    subprocess.run(
        [
            skopeo,
            "copy",
            "--dest-tls-verify=false",
            "--dest-compress",
            "--format",
            format,
            f"oci:{store.root}:hello",
            f"docker://{registry.host}/sk/hello:1",
        ],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [
            skopeo,
            "inspect",
            "--tls-verify=false",
            "--raw",
            f"docker://{registry.host}/sk/hello:1",
        ],
        check=True,
        capture_output=True,
    ).stdout

    target = StoreDirectory(tmp_path / "b")
    pulled = pull(target, f"{registry.host}/sk/hello:1")
    assert pulled.digest == Digest.of_bytes(out)
    assert pulled.media_type == media_type
    assert target.read_blob(pulled.digest) == out
    image = target.read_json(Manifest, pulled.digest)
    config = target.read_json(ImageConfig, image.config.digest)
    unpacked = target.unpacked_layer(image.layers[1], config.rootfs.diff_ids[1])
    assert (unpacked / "etc/world").read_bytes() == b"world\n" * 1000
