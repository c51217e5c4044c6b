"""Rootless runs: an unprivileged user gets a container through a user namespace."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.unprivileged import Unprivileged, subordinate_range

from layercake.runtime import probe

NOBODY = 65534


@pytest.fixture
def nobody_dir(runtime: None, nobody: Unprivileged) -> Iterator[Path]:
    """A directory the unprivileged user owns, reachable from /."""
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
    nobody: Unprivileged,
    nobody_dir: Path,
    write_busybox_root: Callable[[Path], Path],
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
        for init in (False, True):
            try:
                run(SandboxSpec(rootfs, ProcessSpec(args=("nosuchcmd",)), init=init))
            except Exception as error:
                print(type(error).__name__, error.exit_code, error)
        """
    )

    completed = nobody.python_script(script, timeout=60)

    assert completed.stdout == (
        "0 b'0\\n1\\n' b''\n"
        "ContainerConfigError user 1000:1000 cannot be used without root: "
        "rootless containers map only uid 0 here (user nobody has no "
        "subordinate id range in /etc/subuid and /etc/subgid)\n"
        'CommandNotStarted 127 exec: "nosuchcmd": executable file not found '
        "in $PATH\n"
        'CommandNotStarted 127 exec: "nosuchcmd": executable file not found '
        "in $PATH\n"
    ), completed.stderr
    upper = nobody_dir / "upper"
    assert (upper / "f").read_text() == "hi\n"
    assert (upper / "f").stat().st_uid == NOBODY
    whiteout = os.lstat(upper / "etc" / "group")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert sorted(p.name for p in upper.iterdir()) == ["etc", "f"]


def test_unprivileged_user_gets_a_reason_instead_of_a_cgroup(
    nobody: Unprivileged,
) -> None:
    """Without write access to cgroups, create_cgroup says why and makes nothing."""
    script = textwrap.dedent(
        """
        from layercake.runtime import Resources, create_cgroup
        cgroup, reason = create_cgroup("rootless-test", Resources(memory=1 << 20))
        print(cgroup)
        print(reason)
        """
    )
    completed = nobody.python_script(script, timeout=60)
    lines = completed.stdout.splitlines()
    assert lines[0] == "None", completed.stderr
    assert lines[1].startswith("resource limits not applied: permission denied (")
    # The path is the layercake parent, or the container's when that exists.
    assert "/sys/fs/cgroup/" in lines[1]
    assert lines[1].endswith(("/layercake)", "/layercake/rootless-test)"))


def test_unprivileged_user_gets_a_terminal_in_the_container(
    nobody: Unprivileged,
    nobody_dir: Path,
    write_busybox_root: Callable[[Path], Path],
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

    completed = nobody.python_script(script, timeout=60)

    assert completed.stdout == "0 b'/dev/pts/0\\r\\n7 9\\r\\n' b''\n", completed.stderr


# The full map: the CI user's subordinate ids give images their owners.

OWNED_IMAGE = textwrap.dedent(
    """
    import io, logging, sys, tarfile
    import layercake

    work = sys.argv[1]
    busybox = open("/bin/busybox", "rb").read()
    with tarfile.open(work + "/rootfs.tar", "w") as tar:
        def add(name, kind, uid=0, gid=0, data=b"", mode=0o755, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid, info.mode = kind, uid, gid, mode
            info.size, info.linkname, info.mtime = len(data), link, 1700000000
            tar.addfile(info, io.BytesIO(data))
        add("bin", tarfile.DIRTYPE)
        add("bin/busybox", tarfile.REGTYPE, data=busybox)
        for applet in ("sh", "ls", "id", "cat", "chown", "rm", "true"):
            add("bin/" + applet, tarfile.LNKTYPE, link="bin/busybox")
        add("etc", tarfile.DIRTYPE)
        passwd = b"root:x:0:0::/root:/bin/sh\\napp:x:1000:1000::/home/app:/bin/sh\\n"
        add("etc/passwd", tarfile.REGTYPE, data=passwd, mode=0o644)
        add("etc/group", tarfile.REGTYPE, data=b"root:x:0:\\napp:x:1000:\\n", mode=0o644)
        add("home", tarfile.DIRTYPE)
        add("home/app", tarfile.DIRTYPE, 1000, 1000, mode=0o700)
        add("home/app/notes", tarfile.REGTYPE, 1000, 1000, b"hi\\n", 0o600)
    store = layercake.Store(work + "/store", storage_driver=sys.argv[2])
    image = store.import_rootfs(work + "/rootfs.tar", tag="owned:1")
    """
)


@pytest.fixture(params=["overlay", "copy"])
def owned_image_script(request: pytest.FixtureRequest) -> tuple[str, str]:
    """The script that imports an image with a 1000:1000 home, and its driver."""
    return OWNED_IMAGE, request.param


def test_image_owners_show_inside_a_rootless_container(
    unprivileged: Unprivileged, owned_image_script: tuple[str, str]
) -> None:
    """ls -ln inside shows root's files as 0:0 and the app's as 1000:1000."""
    prelude, driver = owned_image_script
    work = unprivileged.workdir(f"owners-{driver}")
    script = prelude + textwrap.dedent(
        """
        command = "ls -ln /etc/passwd /home/app/notes; cat /home/app/notes"
        with layercake.Container(image, ["sh", "-c", command]) as container:
            result = container.run()
            print(result.stdout.decode() + result.stderr.decode(), end="")
        print(sorted(p.name for p in (store.path / "containers").iterdir()))
        """
    )

    completed = unprivileged.python_script(script, str(work), driver)

    assert completed.stdout == (
        "-rw-r--r--    1 0        0               61 Nov 14  2023 /etc/passwd\n"
        "-rw-------    1 1000     1000             3 Nov 14  2023 /home/app/notes\n"
        "hi\n"
        "[]\n"
    ), completed.stderr
    start, _ = subordinate_range(unprivileged.name) or (0, 0)
    (layer,) = (work / "store" / "layers").iterdir()
    notes = (layer / "home" / "app" / "notes").stat()
    assert (notes.st_uid, notes.st_gid) == (start + 999, start + 999)
    passwd = (layer / "etc" / "passwd").stat()
    assert (passwd.st_uid, passwd.st_gid) == (unprivileged.uid, unprivileged.gid)


def test_image_user_chown_diff_and_commit_keep_ids(
    unprivileged: Unprivileged, owned_image_script: tuple[str, str]
) -> None:
    """USER app runs as 1000; chown works; diff and commit read the app's files."""
    prelude, driver = owned_image_script
    work = unprivileged.workdir(f"user-{driver}")
    script = prelude + textwrap.dedent(
        """
        with layercake.Container(image, ["id"], user="app") as container:
            print(container.run().stdout.decode(), end="")
        command = "echo x > /home/app/new; chown 1000:1000 /home/app/new; rm /etc/group"
        with layercake.Container(image, ["sh", "-c", command]) as container:
            container.run()
            print(container.diff())
            committed = container.commit()
        with committed.layers[-1].open() as stream, tarfile.open(fileobj=stream) as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                print(member.name, member.uid, member.gid, oct(member.mode))
        with layercake.Container(committed, ["ls", "-ln", "/home/app/new"]) as c:
            print(c.run().stdout.decode(), end="")
        """
    )

    completed = unprivileged.python_script(script, str(work), driver)

    lines = completed.stdout.splitlines()
    assert lines[:2] == [
        "uid=1000(app) gid=1000(app)",
        str(
            [
                ("C", "/etc"),
                ("D", "/etc/group"),
                ("C", "/home"),
                ("C", "/home/app"),
                ("A", "/home/app/new"),
            ]
        ),
    ], completed.stderr
    assert lines[2:6] == [
        "etc 0 0 0o755",
        "etc/.wh.group 0 0 0o600",
        "home 0 0 0o755",
        "home/app 1000 1000 0o700",
    ]
    assert lines[6] == "home/app/new 1000 1000 0o644"
    assert lines[7].startswith("-rw-r--r--    1 1000     1000             2 ")
    assert len(lines) == 8


def test_rootless_limits_without_cgroups_warn(unprivileged: Unprivileged) -> None:
    """Without cgroup delegation a memory limit is a warning, logged and returned."""
    work = unprivileged.workdir("limits")
    script = OWNED_IMAGE + textwrap.dedent(
        """
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        # Off the network: a rootless bridge may warn too (no slirp4netns).
        with layercake.Container(
            image, ["true"], memory=64 << 20, network="none"
        ) as container:
            result = container.run()
            print(result.exit_code, result.warnings)
            print(container.inspect()["Warnings"] == list(result.warnings))
        """
    )

    completed = unprivileged.python_script(script, str(work), "overlay")

    code, _, warnings = completed.stdout.splitlines()[0].partition(" ")
    assert code == "0", completed.stderr
    assert warnings.startswith("('resource limits not applied: permission denied (")
    assert completed.stdout.splitlines()[1] == "True"
    warned = [line for line in completed.stderr.splitlines() if line.startswith("WARN")]
    assert len(warned) == 1
    assert warned[0].startswith("WARNING container ")
    assert ": resource limits not applied: permission denied (" in warned[0]


def test_cli_prints_the_limits_warning_on_stderr(unprivileged: Unprivileged) -> None:
    """run -m without usable cgroups says WARNING: on stderr, once, as docker does."""
    work = unprivileged.workdir("cli-limits")
    script = OWNED_IMAGE + textwrap.dedent(
        """
        from layercake.cli import main
        at = ["--store", str(store.path)]
        # --network none: without slirp4netns the default network warns too.
        limited = ["-m", "32m", "--network", "none", "owned:1", "true"]
        print(main([*at, "run", "--rm", *limited]))
        main([*at, "create", "--name", "cake", *limited])
        sys.stderr.write("started:\\n")
        main([*at, "start", "cake"])
        """
    )

    completed = unprivileged.python_script(script, str(work), "overlay")

    assert completed.stdout.splitlines()[0] == "0", completed.stderr
    before, _, after = completed.stderr.partition("started:\n")
    for part in (before, after):
        warned = [line for line in part.splitlines() if line.startswith("WARNING: ")]
        assert len(warned) == 1, completed.stderr
        assert warned[0].startswith(
            "WARNING: resource limits not applied: permission denied ("
        )


def test_verify_compares_layers_owned_by_subordinate_ids(
    unprivileged: Unprivileged,
) -> None:
    """verify() reads a layer's files the user cannot, and takes a damaged one out."""
    work = unprivileged.workdir("verify")
    check = textwrap.dedent(
        """
        import sys
        import layercake
        report = layercake.Store(sys.argv[1] + "/store").verify()
        print(report.layers_checked, report.problems)
        """
    )
    imported = unprivileged.python_script(OWNED_IMAGE, str(work), "overlay")
    assert imported.returncode == 0, imported.stderr
    (layer,) = (work / "store" / "layers").iterdir()

    healthy = unprivileged.python_script(check, str(work))
    (layer / "home" / "app" / "notes").write_text("changed\n")
    damaged = unprivileged.python_script(check, str(work))

    assert healthy.stdout == "1 ()\n", healthy.stderr
    assert damaged.stdout == (
        f"1 ('unpacked layer sha256:{layer.name} differs from its blob "
        "(removed; it is unpacked again when needed)',)\n"
    ), damaged.stderr
    assert not layer.exists()


def test_a_user_past_the_subordinate_range_is_refused(
    unprivileged: Unprivileged,
) -> None:
    """A uid the full map does not reach is a config error naming the range."""
    script = textwrap.dedent(
        """
        from layercake.errors import ContainerConfigError
        from layercake.runtime import ProcessSpec, enter
        try:
            enter(1, ProcessSpec(args=("id",), uid=70000, gid=70000))
        except ContainerConfigError as error:
            print(error)
        """
    )

    completed = unprivileged.python_script(script)

    assert completed.stdout == (
        "user 70000:70000 cannot be used without root: rootless containers map "
        "ids 0 to 65536 here (the subordinate range of /etc/subuid and "
        "/etc/subgid)\n"
    ), completed.stderr


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_a_single_map_container_leaves_nothing_in_the_store(
    nobody: Unprivileged, nobody_dir: Path, driver: str
) -> None:
    """Without subordinate ids, removing a container removes all of its files."""
    script = OWNED_IMAGE + textwrap.dedent(
        """
        with layercake.Container(image, ["sh", "-c", "id -u; rm /etc/group"]) as c:
            print(c.run().stdout.decode(), end="")
            print(c.diff())
        print(sorted(p.name for p in (store.path / "containers").iterdir()))
        """
    )

    completed = nobody.python_script(script, str(nobody_dir), driver)

    assert completed.stdout == "0\n[('C', '/etc'), ('D', '/etc/group')]\n[]\n", (
        completed.stderr
    )
