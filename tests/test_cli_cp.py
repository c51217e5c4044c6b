"""``layercake cp`` by docker cp's rules for SRC_PATH and DEST_PATH, both ways."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from layercake import Container
from layercake.cli import main

pytestmark = pytest.mark.usefixtures("container_runtime")

SETUP = "mkdir -p /data /dst /d1 /d2; echo a > /d1/a; echo a > /d2/a; echo b > /d2/b"


@pytest.fixture
def cli(store, busybox):
    """Run the CLI on the test's store with a stopped container ``cc`` made by
    SETUP; remove every container at the end."""

    def run(*args: str) -> int:
        return main(["--store", str(store.path), *args])

    assert run("run", "--name", "cc", "busybox", "sh", "-c", SETUP) == 0
    yield run
    for container in store.containers(all=True):
        container.remove(force=True)


def host_tree(top: Path) -> list[str]:
    """Every entry under ``top``: directories end with ``/``, files show content."""
    entries = []
    for path in sorted(top.rglob("*")):
        name = str(path.relative_to(top))
        if path.is_dir():
            entries.append(name + "/")
        else:
            entries.append(f"{name}={path.read_text().strip()}")
    return entries


def added(cli, capfd, under: str) -> list[str]:
    """What ``diff`` lists as added below ``under``."""
    capfd.readouterr()
    assert cli("diff", "cc") == 0
    lines = capfd.readouterr().out.splitlines()
    return [line[2:] for line in lines if line.startswith(f"A {under}/")]


@pytest.fixture
def host(tmp_path):
    """A host file h.txt and a tree srcdir/ (s, sub/t) in the test's directory."""
    (tmp_path / "h.txt").write_text("hi\n")
    (tmp_path / "srcdir" / "sub").mkdir(parents=True)
    (tmp_path / "srcdir" / "s").write_text("s\n")
    (tmp_path / "srcdir" / "sub" / "t").write_text("t\n")
    return tmp_path


def test_cp_a_file_into_an_existing_container_directory(cli, capfd, host):
    """A file copied to an existing directory lands inside it, slash or not."""
    assert cli("cp", str(host / "h.txt"), "cc:/data") == 0
    assert cli("cp", str(host / "h.txt"), "cc:/dst/") == 0
    assert added(cli, capfd, "/data") == ["/data/h.txt"]
    assert added(cli, capfd, "/dst") == ["/dst/h.txt"]


def test_cp_a_file_out_into_an_existing_host_directory(cli, host):
    """A container file copied to an existing host directory lands inside it."""
    (host / "out").mkdir()
    assert cli("cp", "cc:/d1/a", str(host / "out")) == 0
    assert cli("cp", "cc:/d2/b", str(host / "out") + "/") == 0
    assert host_tree(host / "out") == ["a=a", "b=b"]


def test_cp_a_directory_into_an_existing_directory_nests_it(cli, capfd, host):
    """SRC directory to an existing directory: copied under its own name."""
    assert cli("cp", str(host / "srcdir"), "cc:/dst") == 0
    assert added(cli, capfd, "/dst") == [
        "/dst/srcdir",
        "/dst/srcdir/s",
        "/dst/srcdir/sub",
        "/dst/srcdir/sub/t",
    ]
    (host / "out").mkdir()
    assert cli("cp", "cc:/d2", str(host / "out")) == 0
    assert host_tree(host / "out") == ["d2/", "d2/a=a", "d2/b=b"]


def test_cp_dir_dot_into_an_existing_directory_copies_its_contents(cli, capfd, host):
    """SRC ending with /. to an existing directory: its entries alone."""
    assert cli("cp", str(host / "srcdir") + "/.", "cc:/dst") == 0
    assert added(cli, capfd, "/dst") == ["/dst/s", "/dst/sub", "/dst/sub/t"]
    (host / "out").mkdir()
    assert cli("cp", "cc:/d2/.", str(host / "out")) == 0
    assert host_tree(host / "out") == ["a=a", "b=b"]


def test_cp_a_directory_to_a_new_path_creates_it_with_the_contents(cli, capfd, host):
    """SRC directory, or DIR/., to a missing DEST: DEST is made with DIR's entries."""
    assert cli("cp", str(host / "srcdir"), "cc:/new") == 0
    assert cli("cp", str(host / "srcdir") + "/.", "cc:/new2/") == 0
    news = [path for path in added(cli, capfd, "") if path.startswith("/new")]
    assert news == [
        "/new",
        "/new/s",
        "/new/sub",
        "/new/sub/t",
        "/new2",
        "/new2/s",
        "/new2/sub",
        "/new2/sub/t",
    ]
    assert cli("cp", "cc:/d1/.", str(host / "g1")) == 0
    assert cli("cp", "cc:/d2/.", str(host / "g2")) == 0
    assert cli("cp", "cc:/d2", str(host / "g3") + "/") == 0
    assert host_tree(host / "g1") == ["a=a"]
    assert host_tree(host / "g2") == ["a=a", "b=b"]
    assert host_tree(host / "g3") == ["a=a", "b=b"]


def test_cp_to_a_missing_directory_or_over_a_file_is_a_one_line_error(cli, capfd, host):
    """A DEST ending with / must be a directory; a tree never replaces a file."""
    capfd.readouterr()
    assert cli("cp", str(host / "h.txt"), "cc:/nowhere/") == 125
    assert cli("cp", str(host / "h.txt"), "cc:/d1/a/") == 125
    assert cli("cp", str(host / "srcdir"), "cc:/d1/a") == 125
    assert cli("cp", str(host / "h.txt") + "/.", "cc:/data") == 125
    assert capfd.readouterr().err.splitlines() == [
        (
            "layercake: error: cannot copy to /nowhere/ in the container: "
            "destination directory /nowhere/ does not exist"
        ),
        (
            "layercake: error: cannot copy to /d1/a/ in the container: "
            "/d1/a/: not a directory"
        ),
        (
            "layercake: error: cannot copy to /d1/a in the container: "
            "cannot overwrite non-directory /d1/a with a directory"
        ),
        (
            f"layercake: error: cannot copy {host}/h.txt/. into the container: "
            "not a directory"
        ),
    ]
    assert cli("cp", "cc:/d1/a", str(host / "nowhere") + "/") == 125
    assert cli("cp", "cc:/d1/a", str(host / "h.txt") + "/") == 125
    assert cli("cp", "cc:/d1", str(host / "h.txt")) == 125
    assert capfd.readouterr().err.splitlines() == [
        f"layercake: error: cp: destination directory {host}/nowhere/ does not exist",
        f"layercake: error: cp: {host}/h.txt/ is not a directory",
        (
            f"layercake: error: cp: cannot overwrite non-directory {host}/h.txt "
            "with a directory"
        ),
    ]
    assert (host / "h.txt").read_text() == "hi\n"
    assert not any(name.startswith((".", "nowhere")) for name in os.listdir(host))


def test_cp_to_dash_writes_a_tar_stream_to_stdout(cli, capfdbinary, host):
    """``cp C:PATH -`` writes a tar of PATH on stdout and no file named -."""
    capfdbinary.readouterr()
    assert cli("cp", "cc:/d2", "-") == 0
    with tarfile.open(fileobj=io.BytesIO(capfdbinary.readouterr().out)) as tar:
        assert sorted(tar.getnames()) == ["d2", "d2/a", "d2/b"]
        assert tar.extractfile("d2/b").read() == b"b\n"
    assert cli("cp", "cc:/d1/a", "-") == 0
    with tarfile.open(fileobj=io.BytesIO(capfdbinary.readouterr().out)) as tar:
        assert tar.getnames() == ["a"]
    assert not os.path.lexists("-")


def test_cp_from_dash_extracts_a_tar_stream_from_stdin(cli, capfd, host, monkeypatch):
    """``cp - C:DIR`` extracts the tar read from stdin into DIR, which must exist."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(host / "srcdir", arcname="srcdir")
        tar.add(host / "h.txt", arcname="h.txt")
    for dest, code in [("cc:/dst", 0), ("cc:/d1/a", 125), ("cc:/nowhere", 125)]:
        stdin = io.TextIOWrapper(io.BytesIO(archive.getvalue()))
        monkeypatch.setattr("sys.stdin", stdin)
        assert cli("cp", "-", dest) == code
    assert capfd.readouterr().err.splitlines() == [
        (
            "layercake: error: cannot copy to /d1/a in the container: "
            "destination /d1/a must be a directory"
        ),
        (
            "layercake: error: cannot copy to /nowhere in the container: "
            "destination /nowhere must be a directory"
        ),
    ]
    assert added(cli, capfd, "/dst") == [
        "/dst/h.txt",
        "/dst/srcdir",
        "/dst/srcdir/s",
        "/dst/srcdir/sub",
        "/dst/srcdir/sub/t",
    ]


def test_sdk_copy_to_follows_the_same_rules_and_keeps_links(busybox, tmp_path):
    """Container.copy_to nests a tree in an existing directory, DIR/. fills it,
    and hard and symbolic links in the tree stay links."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "one").write_text("1\n")
    os.link(tree / "one", tree / "two")
    (tree / "up").symlink_to("/etc/passwd")
    script = "mkdir /dst /flat; sleep 60"
    with Container(busybox, ["sh", "-c", script]) as container:
        container.start()
        wait_for(lambda: container.exec(["test", "-d", "/flat"]).exit_code == 0)
        container.copy_to("/dst", tree)
        container.copy_to("/flat", f"{tree}/.")
        container.copy_to("/dst", tmp_path / "tree" / "one")
        listing = "cd /dst; find . | sort; stat -c '%h %N' tree/* /flat/*"
        result = container.exec(["sh", "-c", listing])
    assert result.stdout.decode().splitlines() == [
        ".",
        "./one",
        "./tree",
        "./tree/one",
        "./tree/two",
        "./tree/up",
        "2 tree/one",
        "2 tree/two",
        "1 'tree/up' -> '/etc/passwd'",
        "2 /flat/one",
        "2 /flat/two",
        "1 '/flat/up' -> '/etc/passwd'",
    ]


def wait_for(condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
