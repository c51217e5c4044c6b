"""Archives travel between layercake and the real tools: podman and skopeo.

podman runs with its own containers.conf (CONTAINERS_CONF), root and runroot
under tmp_path, so it never touches this machine's podman storage.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import layercake

_CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""

Podman = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def podman(tool, tmp_path: Path) -> Iterator[Podman]:
    """Run podman with storage, run state and config all under tmp_path."""
    binary = tool("podman")
    tool("runc")
    home = tmp_path / "podman"
    home.mkdir()
    # podman refuses a runroot path longer than 50 characters: reach the
    # one under tmp_path through a short symlink.
    (home / "run").mkdir()
    runroot = Path(f"/tmp/lc-podman-{uuid.uuid4().hex[:12]}")
    runroot.symlink_to(home / "run")
    conf = home / "containers.conf"
    # Engine temp files and network definitions stay under tmp_path too,
    # not in /run/libpod or /etc/containers.
    conf.write_text(
        _CONTAINERS_CONF
        + f'tmp_dir = "{runroot}/libpod"\n'
        + f'[network]\nnetwork_config_dir = "{home / "networks"}"\n'
    )
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    base = [
        binary,
        "--root",
        str(home / "root"),
        "--runroot",
        str(runroot),
        "--storage-driver",
        "vfs",
    ]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*base, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
        return done

    try:
        yield run
    finally:
        # vfs storage holds plain files that tmp_path's cleanup removes;
        # no "system reset", which could reach beyond --root.
        runroot.unlink()


def test_podman_loads_and_runs_our_docker_archive(
    podman: Podman, busybox: layercake.Image, tmp_path: Path
) -> None:
    """podman load -i accepts image.save()'s archive and podman run runs it."""
    archive = tmp_path / "busybox.tar"
    busybox.save(archive)

    loaded = podman("load", "-i", str(archive))
    ran = podman(
        "run",
        "--rm",
        "--network",
        "none",
        "busybox:latest",
        "echo",
        "hello from podman",
    )

    assert "Loaded image: docker.io/library/busybox:latest" in loaded.stdout
    assert ran.stdout == "hello from podman\n"
    inspected = podman("image", "inspect", "--format", "{{.Id}}", "busybox:latest")
    assert inspected.stdout.strip() == busybox.id.removeprefix("sha256:")


@pytest.mark.parametrize("format", ["docker-archive", "oci-archive"])
def test_we_load_and_run_what_podman_save_wrote(
    podman: Podman,
    busybox: layercake.Image,
    tmp_path: Path,
    format: str,
    container_runtime: None,
) -> None:
    """podman save in both formats loads into a fresh store with id and tag kept."""
    busybox.save(tmp_path / "ours.tar")
    podman("load", "-i", str(tmp_path / "ours.tar"))
    archive = tmp_path / f"podman-{format}.tar"
    podman("save", "--format", format, "-o", str(archive), "busybox:latest")

    store = layercake.Store(tmp_path / "fresh")
    (loaded,) = store.load(archive)

    assert (loaded.id, loaded.tags) == (busybox.id, ("busybox:latest",))
    assert loaded.run(["echo", "ran"]).stdout == b"ran\n"


def test_skopeo_copies_out_of_the_store_and_back_in(
    tool, busybox: layercake.Image, tmp_path: Path, container_runtime: None
) -> None:
    """skopeo copy oci:STORE -> docker-archive -> oci:STORE gives a runnable tag."""
    skopeo = tool("skopeo")
    store = busybox.store
    archive = tmp_path / "skopeo.tar"
    subprocess.run(
        [
            skopeo,
            "copy",
            f"oci:{store.path}:busybox:latest",
            f"docker-archive:{archive}:busybox:latest",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    subprocess.run(
        [skopeo, "copy", f"docker-archive:{archive}", f"oci:{store.path}:copied:v1"],
        check=True,
        capture_output=True,
        timeout=300,
    )

    copied = store.image("copied:v1")
    assert copied.id == busybox.id
    assert [image.tags for image in store.images()] == [
        ("busybox:latest",),
        ("copied:v1",),
    ]
    assert copied.run(["echo", "copied"]).stdout == b"copied\n"

    (loaded,) = layercake.Store(tmp_path / "fresh").load(archive)
    assert (loaded.id, loaded.tags) == (busybox.id, ("busybox:latest",))
