"""Image.push gzips by default, refuses damaged blobs; pull takes platform text."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from registry_servers import RunningRegistry, make_image

import layercake
from layercake.errors import DigestMismatch
from layercake.store import Manifest, MediaType

FILES = [{"etc/hello": b"hello\n" * 500}]


def _tagged(tmp_path: Path, registry: RunningRegistry, name: str) -> layercake.Image:
    store = layercake.Store(tmp_path / "source")
    reference = f"{registry.host}/checks/{name}:1"
    make_image(store._directory, FILES, tag=reference)
    return store.image(reference)


def test_push_gzips_layers_by_default_and_keeps_the_image_id(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """A default push sends gzip layers: new manifest digest, same image id."""
    image = _tagged(tmp_path, registry, "gzip")
    reference = f"{registry.host}/checks/gzip:1"

    pushed = image.push(reference)

    pulled = layercake.Store(tmp_path / "fresh").pull(reference)
    assert pushed != image.digest
    assert pulled.digest == pushed
    assert pulled.id == image.id
    manifest = pulled.store._directory.read_json(Manifest, pulled.digest)
    assert [layer.media_type for layer in manifest.layers] == [MediaType.OCI_LAYER_GZIP]


def test_push_without_compression_keeps_the_manifest_digest(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """compression=None sends the layers as stored, so the digest is unchanged."""
    image = _tagged(tmp_path, registry, "plain")

    pushed = image.push(f"{registry.host}/checks/plain:1", compression=None)

    assert pushed == image.digest


def test_push_of_a_damaged_blob_fails_before_the_registry_has_it(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """A layer whose bytes changed raises DigestMismatch; the registry lacks it."""
    image = _tagged(tmp_path, registry, "damaged")
    directory = image.store._directory
    layer = directory.read_json(Manifest, image.digest).layers[0]
    path = directory.blob_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[600] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(DigestMismatch) as caught:
        image.push(f"{registry.host}/checks/damaged:1", compression=None)

    assert (caught.value.expected, caught.value.path) == (str(layer.digest), str(path))
    assert str(caught.value).startswith(
        f"digest mismatch: expected {layer.digest}, got sha256:"
    )
    url = f"{registry.url}/v2/checks/damaged/blobs/{layer.digest}"
    assert httpx.head(url).status_code == 404


def test_pull_takes_a_platform_string_and_digest_references_resolve(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """pull(platform="linux/amd64") works and name@digest finds the pulled image."""
    image = _tagged(tmp_path, registry, "platform")
    reference = f"{registry.host}/checks/platform:1"
    pushed = image.push(reference)

    store = layercake.Store(tmp_path / "fresh")
    pulled = store.pull(reference, platform="linux/amd64")

    assert pulled.digest == pushed
    assert store.image(f"{registry.host}/checks/platform@{pushed}").id == image.id
    again = store.image(f"{registry.host}/checks/platform@{pushed}").push(
        f"{registry.host}/checks/copy@{pushed}"
    )
    assert again == pushed


def test_gzip_push_of_a_damaged_layer_fails_and_compresses_nothing(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """With the default gzip, a damaged layer raises before any gzip blob is kept."""
    image = _tagged(tmp_path, registry, "damagedgz")
    directory = image.store._directory
    layer = directory.read_json(Manifest, image.digest).layers[0]
    path = directory.blob_path(layer.digest)
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    before = sorted(directory.blob_digests(), key=str)

    with pytest.raises(DigestMismatch) as caught:
        image.push(f"{registry.host}/checks/damagedgz:1")

    assert (caught.value.expected, caught.value.path) == (str(layer.digest), str(path))
    assert sorted(directory.blob_digests(), key=str) == before
    assert list((directory.root / "tmp").iterdir()) == []
