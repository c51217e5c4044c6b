"""Runtime features beyond a plain run: tmpfs, init, read-only root, exec,
capabilities, joining a network namespace and cgroups."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from layercake.errors import ContainerConfigError, ContainerError
from layercake.runtime import (
    ProcessSpec,
    Resources,
    SandboxSpec,
    TmpfsMount,
    capability_set,
    create_cgroup,
    run,
    run_in,
    start,
)

MakeSpec = Callable[..., SandboxSpec]


def test_tmpfs_mount_has_its_size_and_mode(make_spec: MakeSpec) -> None:
    """A TmpfsMount is a real noexec tmpfs with the size and mode asked for."""
    spec = make_spec(
        "sh",
        "-c",
        "grep ' /cache ' /proc/mounts; stat -c %a /cache",
        tmpfs=(TmpfsMount("/cache", size=1 << 20, mode=0o750),),
    )
    result = run(spec)
    # A rootless container's tmpfs belongs to the user, named by host ids.
    owner = (
        b"" if os.geteuid() == 0 else b",uid=%d,gid=%d" % (os.geteuid(), os.getegid())
    )
    assert result.stdout == (
        b"tmpfs /cache tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=750"
        + owner
        + b" 0 0\n750\n"
    )


def test_tmpfs_target_must_be_absolute(make_spec: MakeSpec) -> None:
    """A relative tmpfs target is refused before anything runs."""
    with pytest.raises(ContainerConfigError) as caught:
        run(make_spec("true", tmpfs=(TmpfsMount("cache"),)))
    assert str(caught.value) == "tmpfs target 'cache' is not an absolute path"


def test_tmpfs_leaves_no_target_in_the_upper_dir(
    make_spec: MakeSpec, rootfs_upper: Path
) -> None:
    """The created mount target is removed after the run, like other targets."""
    run(make_spec("touch", "/scratch/x", tmpfs=(TmpfsMount("/scratch"),)))
    assert not (rootfs_upper / "scratch").exists()


def test_without_init_the_command_is_pid_1_and_with_it_pid_2(
    make_spec: MakeSpec,
) -> None:
    """init=True puts a minimal init at PID 1 and the command at PID 2."""
    assert run(make_spec("sh", "-c", "echo $$")).stdout == b"1\n"
    assert run(make_spec("sh", "-c", "echo $$", init=True)).stdout == b"2\n"


def test_init_passes_on_the_exit_code(make_spec: MakeSpec) -> None:
    """The init exits with the command's exit code."""
    assert run(make_spec("sh", "-c", "exit 9", init=True)).exit_code == 9


def test_read_only_root_refuses_writes(make_spec: MakeSpec) -> None:
    """read_only=True: writing to / fails with EROFS."""
    result = run(make_spec("touch", "/x", read_only=True))
    assert (result.exit_code, result.stderr) == (
        1,
        b"touch: /x: Read-only file system\n",
    )


def test_run_in_joins_a_running_container(make_spec: MakeSpec) -> None:
    """run_in() executes in the container's namespaces, as another PID there."""
    with start(make_spec("sleep", "60", hostname="inner")) as sandbox:
        result = run_in(
            sandbox.pid,
            ProcessSpec(args=("sh", "-c", "hostname; cat /proc/1/cmdline; pwd")),
        )
    assert result.stdout == b"inner\nsleep\x0060\x00/\n"


def test_run_in_a_gone_container_is_an_error(make_spec: MakeSpec) -> None:
    """A pid that no longer exists cannot be joined."""
    sandbox = start(make_spec("true"))
    sandbox.wait()
    with pytest.raises(ContainerError) as caught:
        run_in(sandbox.pid, ProcessSpec(args=("true",)))
    assert str(caught.value) == (
        f"container process {sandbox.pid} is not running: No such file or directory"
    )


def test_capability_set_applies_drops_then_adds() -> None:
    """Docker's rule: drop ALL then add one keeps exactly that one."""
    assert capability_set(["NET_ADMIN"], ["ALL"], privileged=False) == {12}
    assert capability_set([], [], privileged=True) == frozenset(range(41))


def test_process_capabilities_and_no_new_privileges(make_spec: MakeSpec) -> None:
    """ProcessSpec.capabilities is the bounding set; no_new_privileges is set."""
    result = run(
        make_spec(
            "cat",
            "/proc/self/status",
            capabilities=frozenset({0, 12}),
            no_new_privileges=True,
        )
    )
    text = result.stdout.decode()
    assert "CapBnd:\t0000000000001001\n" in text
    assert "NoNewPrivs:\t1\n" in text


def test_network_namespace_of_another_container_is_joined(make_spec: MakeSpec) -> None:
    """network_namespace joins the namespace at that path instead of a new one."""
    with start(make_spec("sleep", "60")) as owner:
        path = f"/proc/{owner.pid}/ns/net"
        result = run(make_spec("readlink", "/proc/self/ns/net", network_namespace=path))
        assert result.stdout.decode() == os.readlink(path) + "\n"


def test_cgroup_counts_the_container_and_not_its_relay(make_spec: MakeSpec) -> None:
    """Only the container's processes are in its cgroup, from PID 1 on."""
    cgroup, reason = create_cgroup(f"test-{os.getpid()}", Resources(pids_limit=10))
    if cgroup is None:
        pytest.skip(reason)
    try:
        with start(
            make_spec("sleep", "60", cgroup_procs=cgroup.procs_files)
        ) as sandbox:
            deadline = time.monotonic() + 5
            while cgroup.stats()["pids_stats"]["current"] != 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            procs = Path(cgroup.procs_files[0]).read_text().split()
            assert procs == [str(sandbox.pid)]
    finally:
        cgroup.remove()
    assert not any(os.path.exists(path) for path in cgroup.paths)


def test_start_failure_in_a_missing_cgroup_names_it(make_spec: MakeSpec) -> None:
    """A cgroup.procs file that does not exist fails the set-up with its path."""
    with pytest.raises(ContainerError) as caught:
        run(make_spec("true", cgroup_procs=("/nonexistent/cgroup.procs",)))
    assert str(caught.value) == (
        "container set-up failed: join cgroup /nonexistent/cgroup.procs: "
        "no such file or directory (errno 2)"
    )


def test_builder_style_spec_keeps_working(make_spec: MakeSpec) -> None:
    """A spec with only the original fields runs as before (no tmpfs, no init)."""
    spec = make_spec("sh", "-c", "echo $$; ls /sys/class/net")
    assert (spec.tmpfs, spec.init, spec.read_only, spec.cgroup_procs) == (
        (),
        False,
        False,
        (),
    )
    assert run(spec).stdout == b"1\nlo\n"
