"""The storage drivers: overlayfs, and the copy fallback with the same behaviour.

Each behaviour runs with both drivers on the same busybox image: the copy
driver is forced with ``Store(storage_driver="copy")``.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import missing

import layercake
from layercake import runtime
from layercake._container import Container
from layercake.errors import ContainerConfigError

pytestmark = pytest.mark.usefixtures("container_runtime")


@pytest.fixture(params=["overlay", "copy"])
def image(request: pytest.FixtureRequest, busybox: layercake.Image) -> layercake.Image:
    """The busybox image, seen through a store that uses the driver named by the test."""
    store = layercake.Store(busybox.store.path, storage_driver=request.param)
    return store.image("busybox:latest")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_inspect_names_the_driver_in_graph_driver(image: layercake.Image) -> None:
    """inspect()["GraphDriver"]["Name"] is the driver the container got."""
    with Container(image, ["true"]) as container:
        graph = container.inspect()["GraphDriver"]
        assert graph["Name"] == image.store.storage_driver
        upper = str(container.path / "upper")
        if graph["Name"] == "copy":
            assert graph["Data"] == {"RootDir": upper}
        else:
            assert graph["Data"]["UpperDir"] == upper


def test_writes_and_deletes_show_in_diff(image: layercake.Image) -> None:
    """New files are A, changed ones C, deleted ones D, in path order."""
    script = "echo x > /new; echo y >> /etc/passwd; rm /etc/group; mkdir -p /a/b"
    with Container(image, ["sh", "-c", script]) as container:
        assert container.run().exit_code == 0
        assert container.diff() == [
            ("A", "/a"),
            ("A", "/a/b"),
            ("C", "/etc"),
            ("D", "/etc/group"),
            ("C", "/etc/passwd"),
            ("A", "/new"),
        ]


def test_changes_last_across_restarts_and_never_reach_the_image(
    image: layercake.Image,
) -> None:
    """A second run sees the first one's files; the image's layers stay as they were."""
    passwd = image.layer_stack().lookup("/etc/passwd")
    assert passwd is not None
    before = passwd.read_bytes()
    with Container(image, ["sh", "-c", "echo again >> /etc/passwd"]) as container:
        container.run()
        container.restart()
        assert container.wait() == 0
        assert container.copy_from("/etc/passwd") == before + b"again\nagain\n"
    assert passwd.read_bytes() == before


def test_diff_of_a_running_container_leaves_out_mount_targets(
    image: layercake.Image,
) -> None:
    """The runtime's own mount targets (/proc, /etc/hosts...) are not changes."""
    with Container(image, ["sh", "-c", "touch /made; sleep 60"]) as container:
        container.start()
        wait_for(lambda: (container.path / "upper" / "made").exists())
        assert container.diff() == [("A", "/made")]


def test_commit_writes_whiteouts_for_deleted_files(image: layercake.Image) -> None:
    """The committed layer holds the new file and a whiteout for the deleted one."""
    with Container(
        image, ["sh", "-c", "echo kept > /kept; rm /etc/group"]
    ) as container:
        container.run()
        committed = container.commit(command=["cat", "/kept"])
    assert len(committed.layers) == len(image.layers) + 1
    with committed.layers[-1].open() as stream, tarfile.open(fileobj=stream) as tar:
        names = sorted(tar.getnames())
    assert names == ["etc", "etc/.wh.group", "kept"]
    assert committed.run().stdout == b"kept\n"
    assert committed.run(["ls", "/etc/group"]).exit_code == 1


def test_commit_without_changes_adds_no_layer(image: layercake.Image) -> None:
    """A container that changed nothing commits to an image with the same layers."""
    with Container(image, ["true"]) as container:
        container.run()
        committed = container.commit()
    assert [layer.digest for layer in committed.layers] == [
        layer.digest for layer in image.layers
    ]


def test_copy_in_and_out_before_the_first_start(
    image: layercake.Image, tmp_path: Path
) -> None:
    """copy_to and copy_from work on a container that never ran."""
    with Container(image, ["cat", "/opt/hello.txt"]) as container:
        container.copy_to("/opt/hello.txt", b"hello\n")
        assert container.copy_from("/opt/hello.txt") == b"hello\n"
        assert (
            container.copy_from("/etc/passwd")
            == (image.layer_stack().read_text("/etc/passwd") or "").encode()
        )
        assert container.run().stdout == b"hello\n"
        assert container.diff() == [("A", "/opt"), ("A", "/opt/hello.txt")]


def test_export_is_the_merged_file_system(
    image: layercake.Image, tmp_path: Path
) -> None:
    """export() holds the image's files and the container's, not deleted ones."""
    with Container(image, ["sh", "-c", "echo e > /exported; rm /etc/group"]) as c:
        c.run()
        c.export(tmp_path / "fs.tar")
    with tarfile.open(tmp_path / "fs.tar") as tar:
        names = set(tar.getnames())
        exported = tar.extractfile("exported")
        assert exported is not None and exported.read() == b"e\n"
    assert {"bin/busybox", "etc/passwd"} <= names
    assert "etc/group" not in names


def test_named_volume_and_read_only_root(image: layercake.Image) -> None:
    """A volume takes writes that a read-only root refuses, and keeps them."""
    script = "touch /x; echo v > /data/v && cat /data/v"
    with Container(
        image, ["sh", "-c", script], read_only=True, volumes=[("vol", "/data")]
    ) as container:
        result = container.run()
        assert result.stderr == b"touch: /x: Read-only file system\n"
        assert result.stdout == b"v\n"
        assert container.diff() == []
    assert (image.store.path / "volumes" / "vol" / "v").read_text() == "v\n"


def test_exec_sees_the_containers_files(image: layercake.Image) -> None:
    """exec runs in the running container's root, whichever the driver."""
    with Container(image, ["sh", "-c", "echo up > /up; sleep 60"]) as container:
        container.start()
        wait_for(lambda: (container.path / "upper" / "up").exists())
        assert container.exec(["cat", "/up"]).stdout == b"up\n"


def test_copy_driver_never_links_store_files(busybox: layercake.Image) -> None:
    """The copied root shares no inode with the store's unpacked layers."""
    store = layercake.Store(busybox.store.path, storage_driver="copy")
    with Container(store.image("busybox:latest"), ["true"]) as container:
        container.run()
        layer = busybox.layer_stack().lookup("/bin/busybox")
        assert layer is not None
        copied = os.stat(container.path / "upper" / "bin" / "busybox")
        assert (copied.st_dev, copied.st_ino) != (
            layer.stat().st_dev,
            layer.stat().st_ino,
        )
        # The applets stay hard links of one another, as in the image.
        assert os.stat(container.path / "upper" / "bin" / "sh").st_ino == (
            copied.st_ino
        )


def test_auto_uses_overlay_where_it_mounts(busybox: layercake.Image) -> None:
    """With "auto", a machine that mounts overlayfs gets the overlay driver."""
    store = layercake.Store(busybox.store.path, storage_driver="auto")
    assert runtime.overlay_refusal(str(busybox.store.path)) is None
    with Container(store.image("busybox:latest"), ["true"]) as container:
        assert container.inspect()["GraphDriver"]["Name"] == "overlay"


def test_auto_falls_back_to_copy_and_logs_why(
    busybox: layercake.Image,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the test mount fails, "auto" picks copy and logs the reason at INFO."""
    reason = "overlayfs cannot be mounted here: no such device"
    monkeypatch.setattr(
        runtime, "overlay_refusal", lambda directory, remember_in=None: reason
    )
    monkeypatch.delenv("LAYERCAKE_STORAGE_DRIVER", raising=False)
    store = layercake.Store(busybox.store.path)
    with (
        caplog.at_level(logging.INFO, logger="layercake"),
        Container(store.image("busybox:latest"), ["echo", "hi"]) as container,
    ):
        assert container.run().stdout == b"hi\n"
        assert container.inspect()["GraphDriver"]["Name"] == "copy"
    assert (
        "layercake._storage",
        logging.INFO,
        f"containers use the copy storage driver: {reason}",
    ) in caplog.record_tuples


def test_environment_sets_the_default_driver(
    busybox: layercake.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LAYERCAKE_STORAGE_DRIVER is the default; an explicit argument wins."""
    monkeypatch.setenv("LAYERCAKE_STORAGE_DRIVER", "copy")
    assert layercake.Store(busybox.store.path).storage_driver == "copy"
    assert (
        layercake.Store(busybox.store.path, storage_driver="overlay").storage_driver
        == "overlay"
    )


def test_unknown_driver_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown driver name, given or from the environment, is a config error."""
    with pytest.raises(ContainerConfigError) as given:
        layercake.Store(tmp_path / "s", storage_driver="zfs")
    assert str(given.value) == (
        "unknown storage_driver 'zfs': use one of auto, overlay, copy"
    )
    monkeypatch.setenv("LAYERCAKE_STORAGE_DRIVER", "btrfs")
    with pytest.raises(ContainerConfigError) as from_env:
        layercake.Store(tmp_path / "s")
    assert str(from_env.value) == (
        "unknown LAYERCAKE_STORAGE_DRIVER 'btrfs': use one of auto, overlay, copy"
    )


def test_whiteout_in_the_copy_root_is_never_a_device(busybox: layercake.Image) -> None:
    """A deletion removes the copied file; no 0:0 device stands in the root."""
    store = layercake.Store(busybox.store.path, storage_driver="copy")
    with Container(store.image("busybox:latest"), ["rm", "/etc/group"]) as container:
        container.run()
        etc = container.path / "upper" / "etc"
        assert not os.path.lexists(etc / "group")
        assert all(not stat.S_ISCHR(entry.lstat().st_mode) for entry in etc.iterdir())


def test_build_steps_write_the_same_layer_with_either_driver(
    image: layercake.Image, tmp_path: Path
) -> None:
    """A RUN step's layer holds its additions, changes and whiteouts."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox:latest\n"
        "RUN echo new > /new && rm /etc/group && echo x >> /etc/passwd\n"
    )
    built = layercake.Builder(image.store).build(context, no_cache=True)
    with built.layers[-1].open() as stream, tarfile.open(fileobj=stream) as tar:
        names = sorted(tar.getnames())
    assert names == ["etc", "etc/.wh.group", "etc/passwd", "new"]
    assert built.run(["cat", "/new"]).stdout == b"new\n"


def test_info_names_the_storage_driver(
    busybox: layercake.Image,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """layercake info says which driver the store's containers get."""
    from layercake.cli import main

    monkeypatch.setenv("LAYERCAKE_STORAGE_DRIVER", "copy")
    assert main(["--store", str(busybox.store.path), "info", "--format", "json"]) == 0
    assert json.loads(capfd.readouterr().out)["StorageDriver"] == "copy"
    assert main(["--store", str(busybox.store.path), "info"]) == 0
    assert "\nStorage driver: copy\n" in capfd.readouterr().out


def _racer(host_dir: Path) -> list[str]:
    """A command swapping the directory /d with a link /l to ``host_dir``, forever."""
    script = (
        "mkdir /d; echo CONTAINER-DATA > /d/shadow; "
        f"ln -s {host_dir} /l; touch /ready; "
        "while true; do mv /d /t; mv /l /d; mv /t /l; done"
    )
    return ["sh", "-c", script]


def _layer_holds(image: layercake.Image, content: bytes) -> bool:
    """Whether any file of the image's last layer contains ``content``."""
    with image.layers[-1].open() as stream, tarfile.open(fileobj=stream) as tar:
        for member in tar:
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None and content in extracted.read():
                return True
    return False


def _secret_dir(tmp_path: Path) -> Path:
    """A host directory holding the file ``shadow`` a racing container aims at."""
    secret_dir = tmp_path / "secretdir"
    secret_dir.mkdir()
    (secret_dir / "shadow").write_bytes(b"HOSTSECRET\n")
    return secret_dir


@pytest.fixture
def freezer() -> None:
    """Fail or skip where this process cannot freeze a cgroup (not root, none)."""
    usable = os.path.exists("/sys/fs/cgroup/freezer/cgroup.procs") or os.path.exists(
        "/sys/fs/cgroup/cgroup.controllers"
    )
    if os.geteuid() != 0 or not usable:
        missing("pausing needs root and a cgroup freezer (v1 freezer or cgroup v2)")


def test_paused_commit_of_a_racing_container_copies_only_its_files(
    image: layercake.Image, tmp_path: Path, freezer: None
) -> None:
    """Frozen during commit, a container swapping a directory with a link to the
    host commits its own file every time and the host file stays as it was."""
    secret_dir = _secret_dir(tmp_path)
    with Container(image, _racer(secret_dir)) as container:
        container.start(detach=True)
        wait_for(lambda: (container.path / "upper" / "ready").exists())
        paused = [container.commit() for _ in range(8)]
        assert container.status == "running"
        container.remove(force=True)

    assert (secret_dir / "shadow").read_bytes() == b"HOSTSECRET\n"
    assert os.listdir(secret_dir) == ["shadow"]
    assert not [i for i in paused if _layer_holds(i, b"HOSTSECRET")]
    assert all(_layer_holds(i, b"CONTAINER-DATA") for i in paused)


def test_unpaused_commit_of_a_racing_container_never_reads_or_writes_host_files(
    image: layercake.Image, tmp_path: Path
) -> None:
    """Unpaused, a container swapping a directory with a link to the host makes
    commit fail with a clear error or succeed, never read or truncate host files."""
    secret_dir = _secret_dir(tmp_path)
    with Container(image, _racer(secret_dir)) as container:
        container.start(detach=True)
        wait_for(lambda: (container.path / "upper" / "ready").exists())

        unpaused: list[layercake.Image] = []
        refused: list[str] = []
        for _ in range(25):
            try:
                unpaused.append(container.commit(pause=False))
            except layercake.ContainerError as error:
                refused.append(str(error))
        container.remove(force=True)

    assert (secret_dir / "shadow").read_bytes() == b"HOSTSECRET\n"
    assert os.listdir(secret_dir) == ["shadow"]
    assert not [i for i in unpaused if _layer_holds(i, b"HOSTSECRET")]
    prefix = f"cannot commit container {container.short_id}: /"
    assert [m for m in refused if not m.startswith(prefix)] == []


def test_commit_thaws_the_container_it_paused_and_keeps_a_user_pause(
    image: layercake.Image, freezer: None
) -> None:
    """commit() pauses a running container only for its own duration."""
    with Container(image, ["sh", "-c", "echo x > /x; sleep 60"]) as container:
        container.start(detach=True)
        wait_for(lambda: (container.path / "upper" / "x").exists())
        container.commit()
        assert container.status == "running"
        container.pause()
        committed = container.commit()
        assert container.status == "paused"
        container.remove(force=True)
    assert committed.run(["cat", "/x"]).stdout == b"x\n"


def test_commit_refuses_a_running_container_it_cannot_pause(
    image: layercake.Image,
) -> None:
    """Without a freezer, a running container commits only with pause=False."""
    with Container(image, ["sh", "-c", "echo x > /x; sleep 60"]) as container:
        container.start()
        wait_for(lambda: (container.path / "upper" / "x").exists())
        with pytest.raises(layercake.ContainerError) as raised:
            container.commit()
        committed = container.commit(pause=False)
        container.remove(force=True)
    assert str(raised.value) == (
        f"cannot commit running container {container.short_id}: it cannot be "
        "paused (it has no cgroup with a freezer); stop it first, or commit it "
        "unpaused with pause=False (CLI: --pause=false)"
    )
    assert committed.run(["cat", "/x"]).stdout == b"x\n"


def test_commit_of_a_replaced_directory_hides_the_image_contents(
    image: layercake.Image,
) -> None:
    """A directory removed and made again holds only its new files once committed
    (and the runtime's mount targets)."""
    script = "rm -rf /etc; mkdir /etc; echo only > /etc/only"
    with Container(image, ["sh", "-c", script]) as container:
        container.run()
        committed = container.commit()
    listed = committed.run(["ls", "/etc"]).stdout
    assert listed == b"hostname\nhosts\nonly\nresolv.conf\n"


def test_commit_keeps_hard_links(image: layercake.Image) -> None:
    """Two names of one file are one file and a hard link in the committed layer."""
    script = "echo x > /a; ln /a /b"
    with Container(image, ["sh", "-c", script]) as container:
        container.run()
        committed = container.commit()
    with committed.layers[-1].open() as stream, tarfile.open(fileobj=stream) as tar:
        kinds = {m.name: (m.isfile(), m.islnk(), m.linkname) for m in tar}
    assert kinds == {"a": (True, False, ""), "b": (False, True, "a")}
