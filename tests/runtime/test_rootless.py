"""Rootless runs: an unprivileged user gets a container through a user namespace."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from layercake.runtime import probe

NOBODY = 65534


@pytest.fixture
def nobody_dir(runtime: None) -> Iterator[Path]:
    """A directory the unprivileged user owns, reachable from /."""
    if os.geteuid() != 0:
        pytest.skip("switching to another user takes root")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv is needed to run as an unprivileged user")
    if not probe().user_namespaces:
        pytest.skip("user namespaces are not available")
    directory = Path(tempfile.mkdtemp(prefix="layercake-rootless-"))
    directory.chmod(0o755)
    os.chown(directory, NOBODY, NOBODY)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def test_unprivileged_user_runs_a_container_as_root_inside(
    nobody_dir: Path, write_busybox_root: Callable[[Path], Path]
) -> None:
    """As uid 65534, the process runs as root inside and its changes land in upper."""
    root = write_busybox_root(nobody_dir / "rootfs")
    for path in [root, *root.rglob("*")]:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    script = textwrap.dedent(
        f"""
        from layercake.runtime import ProcessSpec, RootfsSpec, SandboxSpec, run
        d = {str(nobody_dir)!r}
        rootfs = RootfsSpec((d + "/rootfs",), d + "/upper", d + "/work", d + "/merged")
        command = "id -u; echo $$; echo hi > /f; rm /etc/group"
        result = run(SandboxSpec(rootfs, ProcessSpec(args=("sh", "-c", command))))
        print(result.exit_code, result.stdout, result.stderr)
        try:
            run(SandboxSpec(rootfs, ProcessSpec(args=("id",), uid=1000, gid=1000)))
        except Exception as error:
            print(type(error).__name__, error)
        """
    )

    completed = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )

    assert completed.stdout == (
        "0 b'0\\n1\\n' b''\n"
        "ContainerConfigError user 1000:1000 cannot be used without root: "
        "rootless containers map only uid 0 here (user nobody has no "
        "subordinate id range in /etc/subuid and /etc/subgid)\n"
    ), completed.stderr
    upper = nobody_dir / "upper"
    assert (upper / "f").read_text() == "hi\n"
    assert (upper / "f").stat().st_uid == NOBODY
    whiteout = os.lstat(upper / "etc" / "group")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert sorted(p.name for p in upper.iterdir()) == ["etc", "f"]


def test_unprivileged_user_gets_a_reason_instead_of_a_cgroup(nobody_dir: Path) -> None:
    """Without write access to cgroups, create_cgroup says why and makes nothing."""
    script = textwrap.dedent(
        """
        from layercake.runtime import Resources, create_cgroup
        cgroup, reason = create_cgroup("rootless-test", Resources(memory=1 << 20))
        print(cgroup)
        print(reason)
        """
    )
    completed = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    lines = completed.stdout.splitlines()
    assert lines[0] == "None", completed.stderr
    assert lines[1].startswith("resource limits not applied: permission denied (")
    # The path is the layercake parent, or the container's when that exists.
    assert "/sys/fs/cgroup/" in lines[1]
    assert lines[1].endswith(("/layercake)", "/layercake/rootless-test)"))


def test_unprivileged_user_gets_a_terminal_in_the_container(
    nobody_dir: Path, write_busybox_root: Callable[[Path], Path]
) -> None:
    """As uid 65534, a process with a terminal sees /dev/pts/0 and its size."""
    root = write_busybox_root(nobody_dir / "rootfs")
    for path in [root, *root.rglob("*")]:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    script = textwrap.dedent(
        f"""
        from layercake.runtime import ProcessSpec, RootfsSpec, SandboxSpec, run
        d = {str(nobody_dir)!r}
        rootfs = RootfsSpec((d + "/rootfs",), d + "/upper", d + "/work", d + "/merged")
        process = ProcessSpec(
            args=("sh", "-c", "tty; stty size"), terminal=True, terminal_size=(7, 9)
        )
        result = run(SandboxSpec(rootfs, process))
        print(result.exit_code, result.stdout, result.stderr)
        """
    )

    completed = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )

    assert completed.stdout == "0 b'/dev/pts/0\\r\\n7 9\\r\\n' b''\n", completed.stderr
