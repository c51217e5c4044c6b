"""Isolation: what a container can see of the host, and what it cannot touch."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

import layercake
from layercake._container import Container
from layercake.errors import ContainerConfigError, ContainerError

pytestmark = pytest.mark.usefixtures("container_runtime")


def tree_digest(root: Path) -> str:
    """Hash every path, mode, owner, link target and file content under root."""
    digest = hashlib.sha256()
    for directory, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(directory, name)
            info = path.lstat()
            digest.update(f"{path}\0{info.st_mode}\0{info.st_uid}\0".encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def leaked_directory(tmp_path: Path):
    """A host directory with a secret, open in this process as an inheritable fd."""
    directory = tmp_path / "host-only"
    directory.mkdir()
    (directory / "secret").write_text("host secret\n")
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(fd, True)
    yield directory, fd
    os.close(fd)


def test_container_sees_only_its_own_processes(busybox):
    """The only process listed in the container's /proc is its own PID 1."""
    result = busybox.run(["sh", "-c", "ls -d /proc/[0-9]*"])
    assert result.stdout == b"/proc/1\n"


def test_host_paths_not_mounted_in_are_neither_visible_nor_writable(
    busybox, leaked_directory
):
    """A host path not mounted in is absent inside; writing there stays inside."""
    directory, _ = leaked_directory
    script = f"cat {directory}/secret; mkdir -p {directory}; echo x > {directory}/new"
    with Container(busybox, ["sh", "-c", script]) as container:
        result = container.run()
        upper = container.path / "upper" / str(directory).lstrip("/")
        assert (upper / "new").read_bytes() == b"x\n"
    assert result.stderr == f"cat: can't open '{directory}/secret': ".encode() + (
        b"No such file or directory\n"
    )
    assert sorted(p.name for p in directory.iterdir()) == ["secret"]


def test_container_mounts_are_its_own(busybox, tmp_path):
    """Every mount point the container sees lies in its own root, none on host paths."""
    result = busybox.run(["cat", "/proc/self/mountinfo"])
    points = [line.split()[4] for line in result.stdout.decode().splitlines()]
    assert points[0] == "/"
    assert [p for p in points if p.startswith(str(tmp_path))] == []
    assert sorted({p.split("/")[1] for p in points[1:]}) == [
        "dev",
        "etc",
        "proc",
        "sys",
    ]


def test_layer_store_is_unchanged_by_writes_inside(busybox, store):
    """Deleting, rewriting and chmodding image files leaves the store's layers as they were."""
    layers = store.path / "layers"
    before = tree_digest(layers)
    script = (
        "rm /bin/ls; echo changed >> /etc/passwd; chmod 700 /bin; "
        f"test -e {store.path} || echo no store here"
    )
    result = busybox.run(["sh", "-c", script])
    assert (result.exit_code, result.stdout) == (0, b"no store here\n")
    assert tree_digest(layers) == before


def test_descriptors_leaked_by_the_host_are_closed(busybox, leaked_directory):
    """An inheritable host descriptor is not open in the container or in exec."""
    _, fd = leaked_directory
    # Two commands, so the shell forks and lists its own descriptors.
    script = "ls /proc/$$/fd; true"
    assert busybox.run(["sh", "-c", script]).stdout == b"0\n1\n2\n"
    with Container(busybox, ["sleep", "30"]) as container:
        container.start()
        assert container.exec(["sh", "-c", script]).stdout == b"0\n1\n2\n"
    assert os.get_inheritable(fd)


def test_working_directory_of_the_host_does_not_follow(busybox, monkeypatch, tmp_path):
    """The caller's current directory is not the container's: it starts at /."""
    monkeypatch.chdir(tmp_path)
    assert busybox.run(["readlink", "/proc/self/cwd"]).stdout == b"/\n"


@pytest.mark.parametrize("how", ["run", "exec"])
def test_leaked_descriptor_as_working_directory_stays_inside(
    busybox, leaked_directory, how
):
    """A workdir of /proc/self/fd/N resolves inside the container, not to the host:
    run makes it there, exec (as docker exec) finds no such directory."""
    directory, fd = leaked_directory
    workdir = f"/proc/self/fd/{fd}"
    command = ["sh", "-c", "cat secret; readlink /proc/self/cwd"]
    with Container(busybox, ["sleep", "30"]) as container:
        container.start()
        if how == "run":
            result = busybox.run(command, workdir=workdir)
            assert (result.exit_code, result.stdout, result.stderr) == (
                0,
                f"{directory}\n".encode(),
                b"cat: can't open 'secret': No such file or directory\n",
            )
        else:
            with pytest.raises(ContainerError) as caught:
                container.exec(command, workdir=workdir)
            assert str(caught.value) == (
                f"exec set-up failed: enter working directory {workdir}: "
                "no such file or directory (errno 2)"
            )
    assert sorted(p.name for p in directory.iterdir()) == ["secret"]


def test_init_does_not_expose_the_host_interpreter(busybox):
    """With --init, PID 1's command line, environment and binary stay hidden."""
    python = Path(os.path.realpath(sys.executable))
    before = hashlib.sha256(python.read_bytes()).hexdigest()
    script = (
        "cat /proc/1/comm; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
        "cat /proc/1/environ; readlink /proc/1/exe; echo x >> /proc/1/exe"
    )
    with Container(busybox, ["sh", "-c", script], init=True) as container:
        result = container.run()
    name, cmdline, _ = result.stdout.decode().split("\n")
    assert name == "init"
    # Cut to the length of the host's own command line, never longer.
    assert cmdline.startswith("init -- sh")
    assert ("init -- sh -c " + script).startswith(cmdline.rstrip())
    assert result.stderr == (
        b"cat: can't open '/proc/1/environ': Permission denied\n"
        b"sh: can't create /proc/1/exe: Permission denied\n"
    )
    assert hashlib.sha256(python.read_bytes()).hexdigest() == before


SECCOMP_PROBE = "grep Seccomp /proc/self/status; unshare -U true; echo $?"


@pytest.mark.parametrize("executor", ["builtin", "runc"])
def test_default_seccomp_filter_refuses_new_user_namespaces(busybox, executor, tool):
    """The default filter is installed, and unshare(CLONE_NEWUSER) gets EPERM."""
    if executor == "runc":
        tool("runc")
    with Container(busybox, ["sh", "-c", SECCOMP_PROBE], executor=executor) as box:
        result = box.run()
    assert (result.stdout, result.stderr) == (
        b"Seccomp:\t2\nSeccomp_filters:\t1\n1\n",
        b"unshare: unshare(0x10000000): Operation not permitted\n",
    )


@pytest.mark.parametrize(
    "options", [{"security_opt": ["seccomp=unconfined"]}, {"privileged": True}]
)
def test_unconfined_and_privileged_containers_run_without_the_filter(busybox, options):
    """seccomp=unconfined and privileged leave system calls unfiltered."""
    with Container(busybox, ["sh", "-c", SECCOMP_PROBE], **options) as box:
        result = box.run()
    assert (result.stdout, result.stderr) == (
        b"Seccomp:\t0\nSeccomp_filters:\t0\n0\n",
        b"",
    )


def test_custom_seccomp_profile_is_refused_by_name(busybox):
    """A seccomp profile file is not supported, and the error says which option."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], security_opt=["seccomp=/etc/profile.json"])
    assert str(caught.value) == (
        "unsupported security option 'seccomp=/etc/profile.json': only the "
        "default seccomp filter or seccomp=unconfined can be used"
    )


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_links_left_in_place_of_mount_parents_do_not_aim_clean_up_at_the_host(
    busybox, store, tmp_path, driver
):
    """A link the container puts where a mount's parent was leaves host files be."""
    victim = tmp_path / "victim"
    (victim / "important-empty-dir").mkdir(parents=True)
    (victim / "empty-file").touch()
    (tmp_path / "bound").write_text("bound\n")
    image = layercake.Builder(store).build(
        None,
        text=(
            "FROM busybox\n"
            "VOLUME /x/important-empty-dir\n"
            f'CMD mv /x /x.moved && ln -s {victim} /x && echo "$(ls /x.moved)"\n'
        ),
    )
    if driver == "copy":
        store = layercake.Store(store.path, storage_driver="copy")
        image = store.image(image.id)
    with Container(
        image, volumes=[(str(tmp_path / "bound"), "/x/empty-file")]
    ) as container:
        result = container.run()
    assert (result.exit_code, result.stdout) == (
        0,
        b"empty-file\nimportant-empty-dir\n",
    )
    assert sorted(p.name for p in victim.iterdir()) == [
        "empty-file",
        "important-empty-dir",
    ]


def test_init_holds_no_more_capabilities_than_the_container(busybox):
    """The init=True init keeps only the container's capabilities, like its command."""
    script = "grep CapEff /proc/1/status; grep CapEff /proc/$$/status"
    with Container(busybox, ["sh", "-c", script], init=True) as container:
        result = container.run()
    assert result.stdout == b"CapEff:\t00000000a80425fb\n" * 2
