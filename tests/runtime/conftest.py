"""Fixtures for runtime tests: a real busybox root and the capability gate."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from layercake.errors import RuntimeUnavailable
from layercake.runtime import ProcessSpec, RootfsSpec, SandboxSpec, require

BUSYBOX = "/bin/busybox"
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1000:\n"


@pytest.fixture
def runtime() -> None:
    """Skip (or fail, with LAYERCAKE_REQUIRE_RUNTIME=1) when containers cannot run."""
    reasons = []
    try:
        require()
    except RuntimeUnavailable as error:
        reasons.append(str(error))
    if not os.access(BUSYBOX, os.X_OK):
        reasons.append(f"no static busybox at {BUSYBOX}")
    if reasons:
        if os.environ.get("LAYERCAKE_REQUIRE_RUNTIME") == "1":
            pytest.fail("; ".join(reasons))
        pytest.skip("; ".join(reasons))


def make_busybox_root(path: Path) -> Path:
    """Write a busybox root: the binary, a hard link per applet, a small /etc."""
    (path / "bin").mkdir(parents=True)
    (path / "etc").mkdir()
    busybox = path / "bin" / "busybox"
    busybox.write_bytes(Path(BUSYBOX).read_bytes())
    busybox.chmod(0o755)
    applets = subprocess.run(
        [BUSYBOX, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.link(busybox, path / "bin" / applet)
    (path / "etc" / "passwd").write_text(PASSWD)
    (path / "etc" / "group").write_text(GROUP)
    for directory in (path, path / "bin", path / "etc"):
        directory.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention busybox root shared by every test as lower dir."""
    root = tmp_path_factory.mktemp("busybox-root")
    root.chmod(0o755)
    return make_busybox_root(root / "rootfs")


@pytest.fixture
def rootfs(runtime: None, busybox_root: Path, tmp_path: Path) -> RootfsSpec:
    """A rootfs spec over the busybox root with fresh upper, work and mount dirs."""
    return RootfsSpec(
        lower_dirs=(str(busybox_root),),
        upper_dir=str(tmp_path / "upper"),
        work_dir=str(tmp_path / "work"),
        mount_point=str(tmp_path / "merged"),
    )


@pytest.fixture
def make_spec(rootfs: RootfsSpec) -> Callable[..., SandboxSpec]:
    """Return a builder of sandbox specs over ``rootfs`` running the given args.

    Keyword arguments named like SandboxSpec fields go to it, the rest to
    ProcessSpec.
    """

    def build(*args: str, **options: Any) -> SandboxSpec:
        outer = {
            k: options.pop(k)
            for k in (
                "hostname",
                "network",
                "mounts",
                "tmpfs",
                "init",
                "read_only",
                "privileged",
                "network_namespace",
                "cgroup_procs",
            )
            if k in options
        }
        return SandboxSpec(
            rootfs=rootfs, process=ProcessSpec(args=args, **options), **outer
        )

    return build


@pytest.fixture
def rootfs_upper(rootfs: RootfsSpec) -> Path:
    """The upper directory of ``rootfs``, where the container's changes land."""
    return Path(rootfs.upper_dir)


@pytest.fixture
def write_busybox_root() -> Callable[[Path], Path]:
    """Return the function that writes a busybox root into a given directory."""
    return make_busybox_root


@pytest.fixture
def root_user() -> None:
    """Skip tests that switch users inside: rootless runs map only root."""
    if os.geteuid() != 0:
        pytest.skip("rootless containers run their process as root only")
