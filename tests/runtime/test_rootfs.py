"""The root file system: overlay layering, whiteouts, scratch, bind mounts, litter."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from layercake.runtime import (
    BindMount,
    ProcessSpec,
    RootfsSpec,
    SandboxSpec,
    run,
)

MakeSpec = Callable[..., SandboxSpec]
# overlayfs's volatile among a mount's options in /proc/self/mountinfo, as
# recent kernels show it (fsync=volatile) or older ones (volatile); a test's
# own directory may have the word in its name.
VOLATILE_OPTION = "(^|[ ,])(fsync=)?volatile(,|$)"


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_written_file_lands_in_upper_not_lower(
    make_spec: MakeSpec, rootfs_upper: Path, busybox_root: Path
) -> None:
    """A file the container writes appears in the upper dir only."""
    result = run(make_spec("sh", "-c", "echo data > /etc/new"))

    assert result.exit_code == 0
    assert (rootfs_upper / "etc" / "new").read_bytes() == b"data\n"
    assert not (busybox_root / "etc" / "new").exists()


def test_deleted_lower_file_becomes_a_whiteout(
    make_spec: MakeSpec, rootfs_upper: Path, busybox_root: Path
) -> None:
    """Removing a lower file leaves a 0/0 character device in the upper dir."""
    run(make_spec("rm", "/etc/group"))

    info = os.lstat(rootfs_upper / "etc" / "group")
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(0, 0)
    assert (busybox_root / "etc" / "group").read_text().startswith("root:x:0:")


def test_mount_targets_created_by_the_runtime_are_removed(
    make_spec: MakeSpec, rootfs_upper: Path
) -> None:
    """/proc, /dev, /sys and the /etc files the runtime made leave no trace."""
    assert run(make_spec("true")).exit_code == 0

    assert _tree(rootfs_upper) == []


def test_working_directory_created_is_kept(
    make_spec: MakeSpec, rootfs_upper: Path
) -> None:
    """The created working directory stays in the upper dir, as Docker keeps it."""
    run(make_spec("true", cwd="/work/dir"))

    assert _tree(rootfs_upper) == ["work", "work/dir"]


def test_files_the_process_wrote_next_to_litter_are_kept(
    make_spec: MakeSpec, rootfs_upper: Path
) -> None:
    """A file written in /etc stays; only the runtime's own targets go."""
    run(make_spec("sh", "-c", "echo x > /etc/motd"))

    assert _tree(rootfs_upper) == ["etc", "etc/motd"]


def test_lower_dirs_are_stacked_top_most_first(
    runtime: None, busybox_root: Path, tmp_path: Path
) -> None:
    """A file in the first lower dir hides the same file in the next."""
    top = tmp_path / "top"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "passwd").write_text("top\n")
    rootfs = RootfsSpec(
        lower_dirs=(str(top), str(busybox_root)),
        upper_dir=str(tmp_path / "upper"),
        work_dir=str(tmp_path / "work"),
        mount_point=str(tmp_path / "merged"),
    )

    result = run(SandboxSpec(rootfs, ProcessSpec(args=("cat", "/etc/passwd"))))

    assert result.stdout == b"top\n"


def test_many_lower_dirs_past_the_page_size_still_mount(
    runtime: None, busybox_root: Path, tmp_path: Path
) -> None:
    """Lower dirs whose option string exceeds a page are mounted all the same."""
    lowers = []
    for index in range(80):
        layer = tmp_path / "layers" / f"{index:02d}"
        (layer / "data").mkdir(parents=True)
        (layer / "data" / f"f{index}").write_text(str(index))
        lowers.append(str(layer))
    rootfs = RootfsSpec(
        lower_dirs=(*lowers, str(busybox_root)),
        upper_dir=str(tmp_path / "upper"),
        work_dir=str(tmp_path / "work"),
        mount_point=str(tmp_path / "merged"),
    )
    assert len(":".join(rootfs.lower_dirs)) > os.sysconf("SC_PAGE_SIZE")

    result = run(
        SandboxSpec(rootfs, ProcessSpec(args=("sh", "-c", "ls /data | wc -l")))
    )

    assert result.stdout == b"80\n"


def test_scratch_root_with_a_bound_binary_runs(runtime: None, tmp_path: Path) -> None:
    """No lower dirs gives an empty root; a bound busybox runs in it, then leaves."""
    rootfs = RootfsSpec(
        lower_dirs=(),
        upper_dir=str(tmp_path / "upper"),
        work_dir=str(tmp_path / "work"),
        mount_point=str(tmp_path / "merged"),
    )
    spec = SandboxSpec(
        rootfs,
        ProcessSpec(args=("/bin/busybox", "ls", "/")),
        mounts=(BindMount("/bin/busybox", "/bin/busybox", read_only=True),),
    )

    result = run(spec)

    assert result.stdout.split() == [b"bin", b"dev", b"etc", b"proc", b"sys"]
    assert _tree(tmp_path / "upper") == []


def test_bind_mount_shares_a_host_directory(
    make_spec: MakeSpec, tmp_path: Path, rootfs_upper: Path
) -> None:
    """A writable bind mount shows host files and takes the container's writes."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("host\n")
    spec = make_spec(
        "sh",
        "-c",
        "cat /mnt/data/in; echo back > /mnt/data/out",
        mounts=(BindMount(str(shared), "/mnt/data"),),
    )

    result = run(spec)

    assert result.stdout == b"host\n"
    assert (shared / "out").read_text() == "back\n"
    assert _tree(rootfs_upper) == []


def test_read_only_bind_mount_refuses_writes(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    """A read-only bind mount cannot be written from inside."""
    shared = tmp_path / "shared"
    shared.mkdir()
    spec = make_spec(
        "sh",
        "-c",
        "echo x > /mnt/out",
        mounts=(BindMount(str(shared), "/mnt", read_only=True),),
    )

    result = run(spec)

    assert result.exit_code == 1
    assert result.stderr == b"sh: can't create /mnt/out: Read-only file system\n"


def test_symlinked_mount_target_stays_inside_the_root(
    runtime: None, busybox_root: Path, tmp_path: Path
) -> None:
    """An absolute symlink in the image resolves inside the root, not on the host."""
    top = tmp_path / "top"
    top.mkdir()
    host_dir = tmp_path / "host-target"
    os.symlink(str(host_dir), top / "escape")
    rootfs = RootfsSpec(
        lower_dirs=(str(top), str(busybox_root)),
        upper_dir=str(tmp_path / "upper"),
        work_dir=str(tmp_path / "work"),
        mount_point=str(tmp_path / "merged"),
    )
    shared = tmp_path / "shared"
    shared.mkdir()
    spec = SandboxSpec(
        rootfs,
        ProcessSpec(args=("true",)),
        mounts=(BindMount(str(shared), "/escape/inner"),),
    )

    assert run(spec).exit_code == 0
    assert not host_dir.exists()


@pytest.mark.parametrize("bad", ["a,b", "a:b"])
def test_overlay_paths_with_separators_are_refused(
    runtime: None, tmp_path: Path, bad: str
) -> None:
    """A lower dir with ',' or ':' in its path raises ContainerConfigError."""
    from layercake.errors import ContainerConfigError

    rootfs = RootfsSpec(
        lower_dirs=(str(tmp_path / bad),),
        upper_dir=str(tmp_path / "upper"),
        work_dir=str(tmp_path / "work"),
        mount_point=str(tmp_path / "merged"),
    )
    with pytest.raises(ContainerConfigError) as caught:
        run(SandboxSpec(rootfs, ProcessSpec(args=("true",))))

    assert str(caught.value) == (
        f"overlay directory '{tmp_path}/{bad}' contains ',' or ':', "
        "which overlayfs options cannot carry"
    )


def test_a_volatile_layer_is_mounted_with_overlayfs_volatile_option(
    make_spec: MakeSpec, rootfs: RootfsSpec
) -> None:
    """A throwaway layer's overlay skips the sync at exit; rootless, it does not."""
    spec = attrs.evolve(
        make_spec("grep", "-cE", VOLATILE_OPTION, "/proc/self/mountinfo"),
        rootfs=attrs.evolve(rootfs, volatile=True),
    )

    result = run(spec)

    # os.path: rootless, overlayfs's work directory cannot even be searched.
    marked = os.path.isdir(Path(rootfs.work_dir, "work", "incompat", "volatile"))
    if os.geteuid() == 0:
        assert (result.stdout, marked) == (b"1\n", True)
    else:
        assert (result.stdout, marked) == (b"0\n", False)


def test_a_volatile_layer_mounted_again_keeps_what_the_first_run_wrote(
    make_spec: MakeSpec, rootfs: RootfsSpec
) -> None:
    """overlayfs's mark on a volatile work directory is cleared before a remount."""
    volatile = attrs.evolve(rootfs, volatile=True)
    first = attrs.evolve(make_spec("sh", "-c", "echo kept > /kept"), rootfs=volatile)
    assert run(first).exit_code == 0

    again = run(attrs.evolve(make_spec("cat", "/kept"), rootfs=volatile))
    plain = run(make_spec("cat", "/kept"))

    assert (again.exit_code, again.stdout) == (0, b"kept\n")
    assert (plain.exit_code, plain.stdout) == (0, b"kept\n")


def test_a_layer_kept_after_its_run_is_mounted_without_volatile(
    make_spec: MakeSpec,
) -> None:
    """Without volatile the overlay is synced at exit, as docker's overlay2 is."""
    result = run(make_spec("grep", "-cE", VOLATILE_OPTION, "/proc/self/mountinfo"))

    assert (result.exit_code, result.stdout) == (1, b"0\n")
