"""The main job end to end: busybox base, the "middle" app image, "highest".

This is the README's example: it builds examples/busybox, examples/middle and
examples/demo with the public API, runs them in real containers, and checks
that skopeo reads the result from the store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import layercake
from layercake.events import StepCached

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.usefixtures("container_runtime")

PROD_OUTPUT = (
    b"run PROD app\n"
    b"fileA.txt: contents of file A\n"
    b"fileB.txt: contents of file B\n"
    b"NODE_ENV=production\n"
)


@pytest.fixture
def images(store, busybox, tmp_path):
    """Build middle and demo ("highest") from the examples directory."""
    builder = layercake.Builder(store)
    middle = builder.build(EXAMPLES / "middle", tag="middle")
    highest = builder.build(EXAMPLES / "demo", tag="demo:latest")
    return middle, highest


def test_middle_runs_the_dev_entry_point(images):
    """The middle image's Cmd runs start.dev.sh."""
    middle, _ = images
    result = middle.run()
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        b"run DEV app\n",
        b"",
    )


def test_highest_runs_prod_with_its_files_and_env(images):
    """highest prints the prod line, sees both files and NODE_ENV."""
    _, highest = images
    result = highest.run()
    assert (result.exit_code, result.stdout, result.stderr) == (0, PROD_OUTPUT, b"")


def test_highest_has_one_layer_more_than_middle_and_full_history(images):
    """Only COPY adds a layer; history lists every instruction of all three."""
    middle, highest = images
    assert len(highest.layers) == len(middle.layers) + 1
    assert [h.created_by for h in highest.history] == [
        "ADD rootfs.tar / # buildkit",
        'CMD ["sh"]',
        "WORKDIR /usr/src/app",
        "COPY start.dev.sh start.prod.sh ./ # buildkit",
        'CMD ["sh" "start.dev.sh"]',
        "ENV NODE_ENV=production",
        "WORKDIR /usr/src/app",
        "COPY fileA.txt fileB.txt /usr/src/app/ # buildkit",
        'CMD ["sh" "start.prod.sh"]',
    ]
    assert highest.tags == ("demo:latest",)
    assert middle.tags == ("middle:latest",)


def test_rebuilding_highest_is_all_cached(images, store):
    """A rebuild with nothing changed reports every step after FROM cached."""
    _, highest = images
    events = []
    again = layercake.Builder(store).build(
        EXAMPLES / "demo", tag="demo:latest", on_event=events.append
    )
    assert again.id == highest.id
    assert [e.step for e in events if isinstance(e, StepCached)] == [2, 3, 4, 5]


def test_skopeo_reads_the_built_image_from_the_store(images, store, tool):
    """The store is an OCI layout: skopeo inspects a tagged image in it."""
    _, highest = images
    output = subprocess.run(
        [tool("skopeo"), "inspect", f"oci:{store.path}:demo:latest"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    report = json.loads(output)
    assert report["Digest"] == str(highest.digest)
    assert report["Layers"] == [str(layer.digest) for layer in highest.layers]
    assert report["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "NODE_ENV=production",
    ]


def test_umoci_unpacks_the_built_image(images, store, tool, tmp_path):
    """umoci unpacks our image into a bundle whose rootfs has the app files."""
    bundle = tmp_path / "bundle"
    subprocess.run(
        [tool("umoci"), "unpack", "--image", f"{store.path}:demo:latest", str(bundle)],
        check=True,
        capture_output=True,
    )
    app = bundle / "rootfs/usr/src/app"
    assert sorted(p.name for p in app.iterdir()) == [
        "fileA.txt",
        "fileB.txt",
        "start.dev.sh",
        "start.prod.sh",
    ]
    assert (app / "fileA.txt").read_text() == "contents of file A\n"
    shutil.rmtree(bundle)


def test_busybox_example_follows_the_official_image_recipe(busybox):
    """The example base image is FROM scratch + ADD rootfs.tar + CMD sh."""
    lines = [
        line
        for line in (EXAMPLES / "busybox/Dockerfile").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines == ["FROM scratch", "ADD rootfs.tar /", 'CMD ["sh"]']
    assert busybox.run(["sh", "-c", "ls -l /bin/sh | cut -c1"]).stdout == b"-\n"
