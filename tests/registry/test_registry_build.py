"""A Dockerfile FROM an image the store lacks pulls it from its registry."""

from __future__ import annotations

import pytest

import layercake
from layercake.errors import DockerfileError
from layercake.store._registry import push


def test_from_a_missing_image_pulls_it(busybox, registry, tmp_path):
    """FROM 127.0.0.1:PORT/... is pulled into an empty store, then built on."""
    reference = f"{registry.host}/library/busybox:1"
    push(busybox.store._directory, _descriptor(busybox), reference)
    fresh = layercake.Store(tmp_path / "fresh")
    image = layercake.Builder(fresh).build(
        None, text=f"FROM {reference}\nENV PULLED=yes\n", tag="child"
    )
    assert [layer.digest for layer in image.layers] == [
        layer.digest for layer in busybox.layers
    ]
    assert fresh.image(reference).digest == busybox.digest


def test_pull_never_does_not_reach_the_registry(registry, tmp_path):
    """pull="never" fails on a missing base without any request."""
    reference = f"{registry.host}/library/absent:1"
    store = layercake.Store(tmp_path / "store")
    with pytest.raises(DockerfileError) as caught:
        layercake.Builder(store).build(None, text=f"FROM {reference}\n", pull="never")
    assert caught.value.reason == f"base image not found in the store: {reference}"


def test_failed_pull_of_a_base_names_the_reference_and_the_registry_error(
    registry, tmp_path
):
    """A base the registry does not have either gives one clear error."""
    reference = f"{registry.host}/library/absent:1"
    store = layercake.Store(tmp_path / "store")
    with pytest.raises(DockerfileError) as caught:
        layercake.Builder(store).build(None, text=f"FROM {reference}\n")
    assert caught.value.reason.startswith(
        f"base image {reference} is not in the store and pulling it failed: "
    )
    assert "MANIFEST_UNKNOWN" in caught.value.reason


def _descriptor(image: layercake.Image):
    from layercake.store import Descriptor

    return Descriptor(
        media_type=image.manifest.media_type,
        digest=image.digest,
        size=image.store._directory.blob_path(image.digest).stat().st_size,
    )


def test_apush_and_apull_round_trip(busybox, registry, tmp_path):
    """The asyncio forms of push and pull give the same image back."""
    import asyncio

    reference = f"{registry.host}/async/busybox:1"
    fresh = layercake.Store(tmp_path / "fresh")

    async def main():
        await busybox.apush(reference)
        return await fresh.apull(reference)

    # Pushes gzip the layers by default: the image id stays, the manifest changes.
    assert asyncio.run(main()).id == busybox.id
