"""OCI runtime bundles and runc as the executor: the same results as built-in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from layercake.errors import ContainerConfigError, ContainerTimeout
from layercake.runtime import (
    BindMount,
    SandboxSpec,
    TmpfsMount,
    oci_config,
    run,
    run_oci,
    write_bundle,
)

MakeSpec = Callable[..., SandboxSpec]

SCRIPT = (
    'echo "$$ $(id -u):$(id -g):$(id -G) $(pwd) $(hostname) $GREETING"; '
    "echo to-err >&2; { echo written > /made; } 2>/dev/null; cat /etc/hostname; "
    "wc -c < /proc/timer_list; touch /sys/x 2>/dev/null || echo sys-read-only; exit 5"
)


def run_oci_with_runc(spec: SandboxSpec) -> object:
    """Run ``spec`` to its end through runc."""
    return run_oci(spec, "runc")


@pytest.fixture
def runc(runtime: None) -> str:
    """The runc binary; skipped (or failed when required) without root or runc."""
    path = shutil.which("runc")
    reasons = []
    if path is None:
        reasons.append("runc is not installed (Debian package runc)")
    if os.geteuid() != 0:
        reasons.append("the runc executor is tested as root only")
    if reasons:
        if os.environ.get("LAYERCAKE_REQUIRE_RUNTIME") == "1":
            pytest.fail("; ".join(reasons))
        pytest.skip("; ".join(reasons))
    return str(path)


def test_runc_gives_the_builtin_results(
    runc: str, make_spec: MakeSpec, rootfs_upper: Path
) -> None:
    """Exit code, output, user, cwd, hostname and env match; writes reach upper."""
    as_user = make_spec(
        "sh",
        "-c",
        SCRIPT,
        env=("GREETING=hello",),
        cwd="/work/dir",
        uid=1000,
        gid=1000,
        additional_gids=(10,),
        hostname="box",
    )
    as_root = make_spec("sh", "-c", SCRIPT, hostname="root-box")
    results = {}
    for name, executor in (("builtin", run), ("runc", run_oci_with_runc)):
        shutil.rmtree(rootfs_upper, ignore_errors=True)
        user, root = executor(as_user), executor(as_root)
        results[name] = (
            (user.exit_code, user.stdout, user.stderr),
            (root.exit_code, root.stdout, root.stderr),
            (rootfs_upper / "made").read_bytes(),
            sorted(p.name for p in rootfs_upper.iterdir()),
        )

    expected = (
        (
            5,
            b"1 1000:1000:1000 10 /work/dir box hello\nbox\n0\nsys-read-only\n",
            b"to-err\n",
        ),
        (5, b"1 0:0:0 / root-box \nroot-box\n0\nsys-read-only\n", b"to-err\n"),
        b"written\n",
        ["made", "work"],
    )
    assert results == {"builtin": expected, "runc": expected}


def test_runc_leaves_no_mount_target_in_the_upper_dir(
    runc: str, make_spec: MakeSpec, rootfs_upper: Path, tmp_path: Path
) -> None:
    """Mount targets runc had to create are removed, as the built-in does."""
    source = tmp_path / "shared"
    source.mkdir()
    (source / "file").write_text("from host\n")
    spec = make_spec(
        "sh",
        "-c",
        "cat /mnt/in/file; echo kept > /kept; ls /scratch",
        mounts=(BindMount(str(source), "/mnt/in", read_only=True),),
        tmpfs=(TmpfsMount("/scratch"),),
    )
    result = run_oci(spec, "runc")

    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        b"from host\n",
        b"",
    )
    assert sorted(p.name for p in rootfs_upper.iterdir()) == ["kept"]
    with open("/proc/mounts") as mounts:
        assert [m for m in mounts if str(tmp_path) in m] == []


def test_runc_passes_stdin(runc: str, make_spec: MakeSpec) -> None:
    """Bytes given as stdin reach the process through runc."""
    assert run_oci(make_spec("cat"), "runc", stdin=b"piped\n").stdout == b"piped\n"


def test_runc_container_past_its_timeout_is_killed(
    runc: str, make_spec: MakeSpec, tmp_path: Path
) -> None:
    """A timeout kills the container through `runc kill` and raises."""
    started = time.monotonic()
    with pytest.raises(ContainerTimeout) as caught:
        run_oci(make_spec("sleep", "60"), "runc", timeout=0.5)
    assert str(caught.value) == "container timed out after 0.5 seconds and was killed"
    assert time.monotonic() - started < 10
    assert not (tmp_path / "oci" / "state").exists()


def test_bundle_is_accepted_by_runc(
    runc: str, make_spec: MakeSpec, rootfs_upper: Path, tmp_path: Path
) -> None:
    """A written bundle runs with `runc run`; its rootfs is the live overlay."""
    bundle = tmp_path / "bundle"
    spec = make_spec("sh", "-c", "echo bundled > /out; cat /etc/hostname")
    write_bundle(spec, bundle)
    try:
        assert (bundle / "rootfs" / "bin" / "busybox").exists()
        done = subprocess.run(
            [runc, "--root", str(tmp_path / "state"), "run", "-b", str(bundle), "t1"],
            capture_output=True,
            check=False,
        )
    finally:
        subprocess.run(["umount", str(bundle / "rootfs")], check=True)
    assert (done.returncode, done.stdout) == (0, b"layercake\n")
    assert (rootfs_upper / "out").read_bytes() == b"bundled\n"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "config.json",
        "hostname",
        "hosts",
        "resolv.conf",
        "rootfs",
    ]


def test_bundle_config_follows_the_spec(make_spec: MakeSpec) -> None:
    """config.json carries the process, root, hostname and isolation settings."""
    spec = make_spec(
        "echo",
        "hi",
        env=("A=1",),
        cwd="/srv",
        uid=1000,
        gid=1000,
        hostname="named",
        read_only=True,
        capabilities=frozenset({0, 5}),
        no_new_privileges=True,
    )
    if os.geteuid() != 0:
        pytest.skip("bundles are written as root only")
    config = oci_config(spec)

    assert config["process"] == {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000},
        "args": ["echo", "hi"],
        "env": [
            "A=1",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ],
        "cwd": "/srv",
        "capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "effective": [],
            "permitted": [],
        },
        "noNewPrivileges": True,
    }
    assert (config["root"], config["hostname"]) == (
        {"path": "rootfs", "readonly": True},
        "named",
    )
    assert [m["destination"] for m in config["mounts"]] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
    ]
    assert config["linux"]["namespaces"] == [
        {"type": "pid"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "mount"},
        {"type": "network"},
    ]
    assert "/proc/kcore" in config["linux"]["maskedPaths"]
    assert config["linux"]["readonlyPaths"][-1] == "/proc/sysrq-trigger"
    assert json.loads(json.dumps(config)) == config


def test_bundle_refuses_init(make_spec: MakeSpec) -> None:
    """init=True needs the built-in runtime; a bundle says so."""
    with pytest.raises(ContainerConfigError) as caught:
        oci_config(make_spec("true", init=True))
    assert str(caught.value) in (
        "init=True needs the built-in executor: the OCI bundle has no init binary",
        "an OCI bundle of a rootless container is not supported: run as root",
    )


def test_crun_gives_the_runc_results(runtime: None, make_spec: MakeSpec) -> None:
    """crun, where it can run here, gives the same output as runc would."""
    if shutil.which("crun") is None:
        pytest.skip("crun is not installed")
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("crun rejects this machine's hybrid (v1 and v2) cgroups")
    result = run_oci(make_spec("sh", "-c", "echo $$; exit 4"), "crun")
    assert (result.exit_code, result.stdout, result.stderr) == (4, b"1\n", b"")
