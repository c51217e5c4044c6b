"""Tests of Container and Image.run: docker run semantics and clean-up."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from tests.conftest import missing

import layercake
from layercake._container import Container
from layercake._container_listing import list_containers, prune_containers
from layercake._container_state import process_start_time
from layercake import runtime
from layercake.errors import CommandNotStarted, ContainerConfigError, ContainerError

pytestmark = pytest.mark.usefixtures("container_runtime")

# overlayfs's volatile among a mount's options in /proc/self/mountinfo.
VOLATILE_OPTION = "(^|[ ,])(fsync=)?volatile(,|$)"


def tmpfs_owner() -> bytes:
    """The owner options /proc/mounts shows for a tmpfs a container mounts.

    A rootless container's tmpfs belongs to the user, named by its host ids.
    """
    if os.geteuid() == 0:
        return b""
    return b",uid=%d,gid=%d" % (os.geteuid(), os.getegid())


def host_mounts_under(path: Path) -> list[str]:
    with open("/proc/mounts") as mounts:
        return [line.split()[1] for line in mounts if str(path) in line.split()[1]]


def test_run_returns_exit_code_stdout_and_stderr(busybox):
    """Output streams and the exit code come back separately."""
    result = busybox.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")


def test_env_workdir_and_user_overrides(busybox):
    """-e, -w and -u as docker run takes them; the workdir is created."""
    result = busybox.run(
        ["sh", "-c", 'echo "$GREETING $(pwd) $(id -u):$(id -g) $HOME"'],
        env={"GREETING": "hello"},
        workdir="/made/here",
        user="app",
    )
    assert result.stdout == b"hello /made/here 1000:1000 /home/app\n"


def test_entrypoint_override_with_command(busybox):
    """--entrypoint replaces the Entrypoint and the command becomes its args."""
    result = busybox.run(["a", "b"], entrypoint="echo")
    assert result.stdout == b"a b\n"


def test_image_run_of_a_missing_command_raises_with_dockers_message(busybox):
    """A command not in PATH fails the run with exit code 127, as docker run."""
    with pytest.raises(CommandNotStarted) as caught:
        busybox.run(["no-such-command"])
    error = caught.value
    assert (str(error), error.command, error.reason, error.exit_code) == (
        f"container {error.container_id[:12]} failed to start: "
        'exec: "no-such-command": executable file not found in $PATH',
        "no-such-command",
        "executable file not found in $PATH",
        127,
    )
    assert busybox.store.containers(all=True) == []


NOT_FOUND = 'exec: "nosuchcmd": executable file not found in $PATH'


def _failed_start_view(container: Container) -> tuple[object, ...]:
    """What a user sees of a container whose start failed, and what is left
    of it on the host (mounts, cgroup, the veth of its bridge network)."""
    state = container.inspect()["State"]
    return (
        container.status,
        container.exit_code,
        container.pid,
        {key: state[key] for key in ("Status", "Running", "Pid", "ExitCode", "Error")},
        state["StartedAt"],
        container.state().cgroup_paths,
        host_mounts_under(container.path),
        runtime.find_cgroup(container.id),
        os.path.exists(f"/sys/class/net/lcv{container.id[:11]}"),
    )


FAILED_START = (
    "created",
    None,
    None,
    {
        "Status": "created",
        "Running": False,
        "Pid": 0,
        "ExitCode": 127,
        "Error": NOT_FOUND,
    },
    "0001-01-01T00:00:00Z",
    (),
    [],
    None,
    False,
)


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize("init", [False, True])
def test_start_of_a_missing_command_fails_and_leaves_it_created(busybox, detach, init):
    """start() raises CommandNotStarted; the container stays created with exit
    code 127 and the error in its State, and starting it again fails again."""
    with Container(busybox, ["nosuchcmd"], init=init, memory=64 << 20) as container:
        for _ in range(2):
            with pytest.raises(CommandNotStarted) as caught:
                container.start(detach=detach)
            assert (str(caught.value), caught.value.exit_code) == (
                f"container {container.short_id} failed to start: {NOT_FOUND}",
                127,
            )
            assert caught.value.container_id == container.id
            assert _failed_start_view(container) == FAILED_START


@pytest.mark.parametrize("tty", [False, True])
def test_attached_run_of_a_missing_command_raises_and_leaves_it_created(
    busybox, tty
):
    """run() raises as start() does, with a terminal or without."""
    with Container(busybox, ["nosuchcmd"], tty=tty) as container:
        with pytest.raises(CommandNotStarted) as caught:
            container.run()
        assert str(caught.value) == (
            f"container {container.short_id} failed to start: {NOT_FOUND}"
        )
        assert _failed_start_view(container) == FAILED_START
        assert container.logs() == b""


def test_attach_of_a_directory_as_command_raises_with_126(busybox):
    """attach() of a command that is a directory raises with exit code 126."""
    with Container(busybox, ["/etc"]) as container:
        with pytest.raises(CommandNotStarted) as caught:
            container.attach()
        assert (caught.value.exit_code, container.inspect()["State"]["Error"]) == (
            126,
            'exec: "/etc": is a directory',
        )


def test_exec_of_a_missing_command_raises_and_the_container_runs_on(busybox):
    """exec() and exec_attach() of a missing command raise with 127."""
    with Container(busybox, ["sleep", "30"]) as container:
        container.start()
        with pytest.raises(CommandNotStarted) as caught:
            container.exec(["nosuchcmd"])
        with pytest.raises(CommandNotStarted) as attached:
            container.exec_attach(["/etc/passwd"])
        assert (
            str(caught.value),
            caught.value.exit_code,
            str(attached.value),
            attached.value.exit_code,
            container.status,
        ) == (
            NOT_FOUND,
            127,
            'exec: "/etc/passwd": permission denied',
            126,
            "running",
        )


def test_image_without_command_is_a_clear_error(store):
    """An image with neither Entrypoint nor Cmd cannot run without a command."""
    image = layercake.Builder(store).build(None, text="FROM scratch\nLABEL a=b\n")
    with pytest.raises(ContainerConfigError) as caught:
        image.run()
    assert str(caught.value) == (
        "no command specified: the image has no Entrypoint or Cmd and none was given"
    )


def test_unknown_user_is_a_clear_error(busybox):
    """A user name the image lacks fails before anything runs."""
    with pytest.raises(ContainerConfigError) as caught:
        busybox.run(["true"], user="ghost")
    assert str(caught.value) == (
        "unable to find user ghost: no matching entries in passwd file"
    )


def test_writes_stay_in_the_container_not_the_image(busybox):
    """A file written in one container is not in the image's next container."""
    busybox.run(["sh", "-c", "echo x > /etc/marker"])
    assert busybox.run(["cat", "/etc/marker"]).exit_code == 1


def test_container_is_isolated_pid_1_with_its_own_hostname(busybox):
    """The command is PID 1 and sees its own hostname and, off the network, only
    loopback."""
    result = busybox.run(
        ["sh", "-c", "echo $$; hostname; ls /sys/class/net"], network="none"
    )
    lines = result.stdout.decode().split()
    assert lines[0] == "1"
    assert lines[2:] == ["lo"]


def test_default_network_is_the_bridge_or_loopback_where_rootless_cannot(
    busybox, caplog
):
    """As root the default network gives eth0; rootless without slirp4netns the
    container has loopback only, and its creation says why."""
    from layercake import _slirp

    caplog.set_level("WARNING", logger="layercake._container_network")
    with Container(busybox, ["ls", "/sys/class/net"]) as container:
        result = container.run()
        mode = container.inspect()["HostConfig"]["NetworkMode"]
        recorded = container.inspect()["Warnings"]
    warnings = [r.getMessage() for r in caplog.records]
    reason = _slirp.unusable()
    if os.geteuid() == 0:
        assert (result.stdout, warnings, result.warnings) == (b"eth0\nlo\n", [], ())
    elif reason:
        assert _slirp.cause() in (
            "slirp4netns is not installed",
            "/dev/net/tun: permission denied",
        )
        assert (result.stdout, warnings) == (
            b"lo\n",
            [f"container {container.short_id} has loopback only: {reason}"],
        )
        assert result.warnings == (
            f"no network for the container ({_slirp.cause()}): it has loopback "
            "only, without outbound access, as with --network none",
        )
    else:
        assert (result.stdout, warnings, result.warnings) == (b"lo\ntap0\n", [], ())
    assert recorded == list(result.warnings)
    assert mode == "bridge"


def test_started_container_logs_wait_and_removal(busybox):
    """start() runs in the background, logs are kept, remove() deletes all."""
    container = layercake.Container(busybox, ["sh", "-c", "echo started"])
    container.start()
    assert container.wait(timeout=10) == 0
    assert container.logs() == b"started\n"
    path = container.path
    container.remove()
    assert not path.exists()
    assert host_mounts_under(path) == []


def test_context_manager_kills_and_removes_a_running_container(busybox):
    """Leaving the block stops what still runs and deletes the container."""
    with layercake.Container(busybox, ["sleep", "60"]) as container:
        container.start()
        path = container.path
    assert container.exit_code == 128 + signal.SIGKILL
    assert not path.exists()


def test_stop_sends_sigterm_then_reports_the_exit(busybox):
    """stop() delivers the StopSignal; a shell trapping it exits cleanly."""
    script = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    with layercake.Container(busybox, ["sh", "-c", script]) as container:
        container.start()
        # Like any PID 1, the shell ignores SIGTERM until its trap is set.
        deadline = time.monotonic() + 10
        while container.logs() != b"ready\n" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert container.stop(timeout=10) == 0


def test_wait_before_start_is_an_error(busybox):
    """wait() on a container that never started says so."""
    with (
        layercake.Container(busybox, ["true"]) as container,
        pytest.raises(ContainerError) as caught,
    ):
        container.wait()
    assert str(caught.value) == f"container {container.short_id} is not started"


# Persistent state, detached containers, logs, inspect, exec


def wait_for(condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _holds(path: Path, content: bytes) -> bool:
    """Whether ``path`` exists with ``content`` (a writer may not be done yet)."""
    try:
        return path.read_bytes() == content
    except FileNotFoundError:
        return False


def start_in_subprocess(
    store_path: Path, detach: bool, command: list[str], executor: str = "builtin"
) -> str:
    """Create and start a container named "bg" from a process that then exits."""
    script = (
        "import sys, layercake\n"
        "store = layercake.Store(sys.argv[1])\n"
        "image = store.image('busybox:latest')\n"
        f"c = layercake.Container(image, {command!r}, name='bg', "
        f"executor={executor!r})\n"
        f"c.start(detach={detach})\n"
        "print(c.id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(store_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def test_detached_container_outlives_its_starting_process(busybox):
    """A detached container keeps running; another process stops and removes it."""
    store = busybox.store
    container_id = start_in_subprocess(
        store.path, True, ["sh", "-c", "echo hi; sleep 60"]
    )
    container = Container.load(store, "bg")
    assert (container.id, container.status) == (container_id, "running")
    wait_for(lambda: container.logs() == b"hi\n")
    # sh as PID 1 ignores SIGTERM without a trap: stop has to kill it.
    assert container.stop(timeout=0.2) == 137
    state = container.inspect()["State"]
    assert (state["Status"], state["Running"], state["ExitCode"], state["Pid"]) == (
        "exited",
        False,
        137,
        0,
    )
    path = container.path
    container.remove()
    assert not path.exists()
    assert host_mounts_under(path) == []


def test_attached_start_dies_with_its_starting_process(busybox):
    """Without detach, the container is killed when its starting process exits."""
    start_in_subprocess(busybox.store.path, False, ["sleep", "60"])
    container = Container.load(busybox.store, "bg")
    assert container.wait(timeout=10) == 137
    assert container.status == "exited"
    container.remove()


def test_logs_are_json_lines_with_stream_and_time(busybox):
    """The log file holds Docker json-file entries; logs() filters them."""
    script = "echo out; sleep 0.05; echo err >&2; printf partial"
    with Container(busybox, ["sh", "-c", script]) as container:
        container.start()
        assert container.wait(timeout=10) == 0
        entries = [
            json.loads(line)
            for line in (container.path / "container-json.log").read_text().split("\n")
            if line
        ]
        assert [(e["log"], e["stream"]) for e in entries] == [
            ("out\n", "stdout"),
            ("err\n", "stderr"),
            ("partial", "stdout"),
        ]
        assert all(
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["time"])
            for e in entries
        )
        assert container.logs() == b"out\nerr\npartial"
        assert container.logs(stdout=False) == b"err\n"
        assert container.logs(tail=1) == b"partial"
        assert container.logs(since=entries[1]["time"]) == b"err\npartial"
        assert container.logs(since=time.time() + 60) == b""
        stamped = container.logs(stderr=False, timestamps=True)
        assert stamped == (
            f"{entries[0]['time']} out\n{entries[2]['time']} partial".encode()
        )


def test_logs_follow_yields_lines_until_the_container_exits(busybox):
    """follow=True streams lines as they come and ends with the container."""
    with Container(
        busybox, ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.05; done"]
    ) as container:
        container.start()
        assert list(container.logs(follow=True)) == [b"1\n", b"2\n", b"3\n"]


def test_inspect_uses_dockers_field_names(busybox):
    """inspect() of a created container has Docker's fields and zero times."""
    with Container(
        busybox, ["echo", "hi"], name="web", hostname="box", env={"A": "1"}
    ) as container:
        info = container.inspect()
        assert info["Id"] == container.id
        assert info["Name"] == "/web"
        assert info["Image"] == busybox.id
        assert (info["Path"], info["Args"]) == ("echo", ["hi"])
        assert info["State"] == {
            "Status": "created",
            "Running": False,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": 0,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": "0001-01-01T00:00:00Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
        }
        assert info["Config"] == {
            "Hostname": "box",
            "User": "",
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "A=1",
                "HOSTNAME=box",
                "HOME=/root",
            ],
            "Cmd": ["echo", "hi"],
            "Entrypoint": None,
            "Image": "busybox:latest",
            "WorkingDir": "/",
            "Labels": {},
            "Tty": False,
            "OpenStdin": False,
        }


def test_run_records_the_exit_in_the_state(busybox):
    """After run(), inspect() reports the exit code and both times."""
    with Container(busybox, ["sh", "-c", "exit 3"]) as container:
        container.run()
        state = container.inspect()["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 3)
        assert state["StartedAt"] <= state["FinishedAt"]
        assert state["FinishedAt"] != "0001-01-01T00:00:00Z"


def test_list_containers_and_load_by_name_id_or_prefix(busybox):
    """list_containers shows running ones (all=True every one), newest first."""
    store = busybox.store
    with (
        Container(busybox, ["sleep", "60"], name="one") as one,
        Container(busybox, ["true"], name="two") as two,
    ):
        one.start()
        assert [c.id for c in list_containers(store)] == [one.id]
        assert [c.id for c in list_containers(store, all=True)] == [two.id, one.id]
        assert Container.load(store, "two").id == two.id
        assert Container.load(store, "/one").id == one.id
        assert Container.load(store, two.id[:8]).name == "two"
        with pytest.raises(ContainerError) as caught:
            Container.load(store, "three")
        assert str(caught.value) == (
            f"no such container: three in {store.path / 'containers'}"
        )


def test_a_taken_name_is_refused(busybox):
    """Two containers of one store cannot share a name."""
    with Container(busybox, ["true"], name="web") as first:
        with pytest.raises(ContainerConfigError) as caught:
            Container(busybox, ["true"], name="web")
        assert str(caught.value) == (
            f'the container name "/web" is already in use by container {first.id}'
        )


def test_invalid_name_is_refused(busybox):
    """Names follow Docker's pattern."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], name="no spaces")
    assert str(caught.value) == (
        "invalid container name 'no spaces': only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )


def test_a_dead_monitor_leaves_an_exited_container_that_prune_removes(busybox):
    """Killing the monitor ends the container; the next listing says exited."""
    store = busybox.store
    container = Container(busybox, ["sleep", "60"], name="orphan")
    container.start(detach=True)
    state = container.state()
    os.kill(state.monitor_pid, signal.SIGKILL)
    # Both gone (a zombie counts as gone): the container dies with its monitor.
    wait_for(lambda: process_start_time(state.monitor_pid) is None)
    wait_for(lambda: process_start_time(state.pid) is None)
    assert list_containers(store) == []
    loaded = Container.load(store, "orphan")
    assert (loaded.status, loaded.exit_code) == ("exited", 137)
    assert loaded.inspect()["State"]["Error"] == "the container's monitor process died"
    assert prune_containers(store) == [container.id]
    assert not container.path.exists()


def test_exec_joins_the_running_containers_namespaces(busybox):
    """exec sees the container's hostname, PID namespace, files and user switch."""
    with Container(
        busybox, ["sh", "-c", "echo mark > /tmp/mark; sleep 60"], hostname="box"
    ) as container:
        container.start()
        wait_for(lambda: (container.path / "upper/tmp/mark").exists())
        result = container.exec(
            ["sh", "-c", "hostname; cat /tmp/mark; cat /proc/1/cmdline; pwd; id -u"],
            user="app",
            workdir="/tmp",
        )
        assert (result.exit_code, result.stderr) == (0, b"")
        # busybox sh execs its last command: PID 1 is now sleep.
        assert result.stdout == b"box\nmark\nsleep\x0060\x00/tmp\n1000\n"


def test_exec_has_the_container_env_with_overrides_and_its_exit_code(busybox):
    """exec's env is the container's with overrides applied; codes come back."""
    with Container(busybox, ["sleep", "60"], env={"A": "1", "B": "2"}) as container:
        container.start()
        result = container.exec(
            ["sh", "-c", 'echo "$A $B $HOME"; exit 4'], env={"B": "3"}
        )
        assert (result.exit_code, result.stdout) == (4, b"1 3 /root\n")


def test_exec_in_a_container_that_is_not_running_is_an_error(busybox):
    """exec needs a running container."""
    with Container(busybox, ["true"]) as container:
        container.run()
        with pytest.raises(ContainerError) as caught:
            container.exec(["true"])
        assert str(caught.value) == f"container {container.short_id} is not running"


def test_init_is_pid_1_and_forwards_the_stop_signal(busybox):
    """With init=True the command is not PID 1 and still gets SIGTERM."""
    script = "trap 'exit 3' TERM; echo $$; while true; do sleep 0.05; done"
    with Container(busybox, ["sh", "-c", script], init=True) as container:
        container.start()
        wait_for(lambda: container.logs() != b"")
        assert container.logs() == b"2\n"
        assert container.stop(timeout=10) == 3


@pytest.mark.parametrize(("init", "zombies"), [(False, b"1\n"), (True, b"0\n")])
def test_init_reaps_orphans_that_a_plain_pid_1_leaves(busybox, init, zombies):
    """An orphan of a PID 1 that never waits stays a zombie, unless init reaps it."""
    script = "sh -c '(touch /started; exec sleep 0.05) &'; exec sleep 60"
    with Container(busybox, ["sh", "-c", script], init=init) as container:
        container.start()

        def orphan_ended() -> bool:
            # Started (it made the file), and neither its parent shell nor it
            # runs any more: what is left of it is a zombie or nothing.
            listing = container.exec(["sh", "-c", "ls /started; ps -o pid,args"])
            lines = listing.stdout.splitlines()
            others = [line for line in lines[1:] if line.split()[0] != b"1"]
            return lines[0] == b"/started" and not any(b"0.05" in x for x in others)

        wait_for(orphan_ended)
        count = container.exec(["sh", "-c", "ps -o stat | grep -c '^Z'"]).stdout
        assert count == zombies


def test_tmpfs_is_a_real_tmpfs_and_leaves_nothing_in_the_layer(busybox):
    """--tmpfs mounts a tmpfs with its size and mode."""
    with Container(
        busybox,
        ["sh", "-c", "grep ' /scratch ' /proc/mounts; stat -c %a /scratch"],
        tmpfs=["/scratch:size=65536,mode=700"],
    ) as container:
        result = container.run()
        assert result.stdout == (
            b"tmpfs /scratch tmpfs rw,nosuid,nodev,noexec,relatime,size=64k,mode=700"
            + tmpfs_owner()
            + b" 0 0\n700\n"
        )
        assert not (container.path / "upper" / "scratch").exists()


def test_read_only_root_refuses_writes_but_tmpfs_takes_them(busybox):
    """read_only=True makes / read-only; a tmpfs stays writable."""
    with Container(
        busybox,
        ["sh", "-c", "touch /x; touch /run/ok && echo ok"],
        read_only=True,
        tmpfs=["/run"],
    ) as container:
        result = container.run()
        assert result.stderr == b"touch: /x: Read-only file system\n"
        assert result.stdout == b"ok\n"


def test_bind_mount_read_only_and_read_write(busybox, tmp_path):
    """Host directories bound in; "ro" refuses writes, "rw" passes them through."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("host\n")
    out = tmp_path / "out"
    out.mkdir()
    script = "cat /data/in.txt; echo new > /data/x; echo made > /out/f"
    with Container(
        busybox,
        ["sh", "-c", script],
        volumes=[(str(data), "/data", "ro"), (str(out), "/out")],
    ) as container:
        result = container.run()
        mounts = container.inspect()["Mounts"]
    assert result.stdout == b"host\n"
    assert result.stderr == b"sh: can't create /data/x: Read-only file system\n"
    assert (out / "f").read_text() == "made\n"
    assert sorted(p.name for p in data.iterdir()) == ["in.txt"]
    assert mounts == [
        {"Type": "bind", "Source": str(data), "Destination": "/data", "RW": False},
        {"Type": "bind", "Source": str(out), "Destination": "/out", "RW": True},
    ]


def test_named_volume_is_seeded_from_the_image_and_persists(busybox, write_context):
    """A new named volume gets the image's files at its target and keeps writes."""
    context = write_context(
        Path(busybox.store.path).parent / "vol-context",
        "FROM busybox:latest\nRUN mkdir /conf && echo seeded > /conf/a\n",
    )
    image = layercake.Builder(busybox.store).build(context)
    with Container(
        image,
        ["sh", "-c", "cat /conf/a; echo more > /conf/b"],
        volumes=[("cfg", "/conf")],
    ) as first:
        assert first.run().stdout == b"seeded\n"
    with Container(
        image, ["sh", "-c", "cat /conf/a /conf/b"], volumes=[("cfg", "/conf")]
    ) as second:
        assert second.run().stdout == b"seeded\nmore\n"
        assert second.inspect()["Mounts"] == [
            {
                "Type": "volume",
                "Name": "cfg",
                "Source": str(busybox.store.path / "volumes" / "cfg"),
                "Destination": "/conf",
                "RW": True,
            }
        ]
    assert sorted(os.listdir(busybox.store.path / "volumes" / "cfg")) == ["a", "b"]


def test_image_volume_gets_an_anonymous_volume_removed_with_it(busybox, write_context):
    """Each VOLUME of the image is an anonymous volume in the container's dir."""
    context = write_context(
        Path(busybox.store.path).parent / "anon-context",
        "FROM busybox:latest\nRUN mkdir /db && echo init > /db/x\nVOLUME /db\n",
    )
    image = layercake.Builder(busybox.store).build(context)
    with Container(image, ["sh", "-c", "cat /db/x; echo y > /db/y"]) as container:
        assert container.run().stdout == b"init\n"
        assert not (container.path / "upper" / "db" / "y").exists()
        (volume,) = (container.path / "volumes").iterdir()
        assert sorted(os.listdir(volume)) == ["x", "y"]


# Files: diff, commit, copy in and out, export


def test_diff_lists_added_changed_and_deleted_paths(busybox):
    """diff() reads the upper directory: new files A, changed C, whiteouts D."""
    script = "echo x > /new; echo y >> /etc/passwd; rm /etc/group; mkdir -p /a/b"
    with Container(busybox, ["sh", "-c", script]) as container:
        container.run()
        assert container.diff() == [
            ("A", "/a"),
            ("A", "/a/b"),
            ("C", "/etc"),
            ("D", "/etc/group"),
            ("C", "/etc/passwd"),
            ("A", "/new"),
        ]


def test_diff_of_a_running_container_leaves_out_mount_targets(busybox):
    """Mount targets the runtime creates are not changes."""
    with Container(busybox, ["sh", "-c", "touch /made; sleep 60"]) as container:
        container.start()
        wait_for(lambda: (container.path / "upper" / "made").exists())
        assert container.diff() == [("A", "/made")]


def test_commit_makes_an_image_with_the_changes_and_overrides(busybox):
    """commit() adds one layer with the changes, applies config, tags it."""
    with Container(
        busybox, ["sh", "-c", "echo kept > /kept; rm /etc/group"], env={"E": "1"}
    ) as container:
        container.run()
        image = container.commit(
            tag="committed:1", command=["cat", "/kept"], message="by test"
        )
    assert image.tags == ("committed:1",)
    assert len(image.layers) == len(busybox.layers) + 1
    assert image.history[-1].comment == "by test"
    assert image.config.config.env[-1] == "E=1"
    result = image.run()
    assert (result.exit_code, result.stdout) == (0, b"kept\n")
    assert image.run(["ls", "/etc/group"]).exit_code == 1


def test_commit_without_changes_adds_no_layer(busybox):
    """A container that changed nothing commits to an image with the same layers."""
    with Container(busybox, ["true"]) as container:
        container.run()
        image = container.commit()
    assert [layer.digest for layer in image.layers] == [
        layer.digest for layer in busybox.layers
    ]
    assert image.history[-1].empty_layer is True


def test_copy_to_and_from_a_stopped_container(busybox, tmp_path):
    """Bytes and host trees go in; files and trees come out, links as links."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("file\n")
    (tree / "link").symlink_to("/etc/passwd")
    with Container(busybox, ["true"]) as container:
        container.copy_to("/opt/hello.txt", b"hello\n")
        container.copy_to("/opt/tree", tree)
        assert container.copy_from("/opt/hello.txt") == b"hello\n"
        assert container.copy_from("/opt/tree/sub/f") == b"file\n"
        out = tmp_path / "out"
        assert container.copy_from("/opt/tree", out) is None
        assert (out / "tree" / "sub" / "f").read_text() == "file\n"
        assert os.readlink(out / "tree" / "link") == "/etc/passwd"
        assert container.diff()[:3] == [
            ("A", "/opt"),
            ("A", "/opt/hello.txt"),
            (
                "A",
                "/opt/tree",
            ),
        ]


def test_only_throwaway_containers_mount_their_layer_volatile(busybox):
    """--rm and Image.run skip overlayfs's sync at exit; a kept container does not.

    Rootless, every layer is synced.
    """
    count = ["grep", "-cE", VOLATILE_OPTION, "/proc/self/mountinfo"]
    throwaway = b"1\n" if os.geteuid() == 0 else b"0\n"
    with Container(busybox, count, auto_remove=True) as container:
        assert container.run().stdout == throwaway
    assert busybox.run(count).stdout == throwaway
    with Container(busybox, count) as container:
        assert container.run().stdout == b"0\n"


def test_a_rm_container_run_attached_can_still_be_read_before_its_removal(busybox):
    """overlayfs's mark on a volatile layer does not stop the mount that reads it."""
    with Container(busybox, ["sh", "-c", "echo x > /out"], auto_remove=True) as box:
        assert box.run().exit_code == 0
        assert box.copy_from("/out") == b"x\n"


def test_creating_running_and_reading_a_container_imports_no_cattrs(busybox):
    """The records are written and read without cattrs, which slows start-up."""
    code = (
        "import sys, layercake\n"
        f"image = layercake.Store({str(busybox.store.path)!r}).image('busybox')\n"
        "print(image.run(['echo', 'ran']).stdout)\n"
        "with layercake.Container(image, ['true']) as container:\n"
        "    container.run()\n"
        "    print(container.state().status)\n"
        "print('cattrs' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["b'ran\\n'", "exited", "False"]


def test_links_in_the_container_never_lead_to_host_paths(busybox, tmp_path):
    """Links to absolute paths resolve in the container, for copies both ways."""
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    script = f"ln -s {secret} /escape; ln -s {tmp_path} /escape-dir"
    with Container(busybox, ["sh", "-c", script]) as container:
        container.run()
        with pytest.raises(ContainerError) as caught:
            container.copy_from("/escape")
        assert str(caught.value) == (
            "cannot copy /escape from the container: not a regular file"
        )
        container.copy_from("/escape", tmp_path / "out")
        assert os.readlink(tmp_path / "out" / "escape") == str(secret)
        container.copy_to("/escape-dir/planted", b"x\n")
        assert not (tmp_path / "planted").exists()
        planted = container.path / "upper" / str(tmp_path).lstrip("/") / "planted"
        assert planted.read_bytes() == b"x\n"


def test_copy_from_a_missing_path_names_it(busybox):
    """A missing container path is a clear error."""
    with Container(busybox, ["true"]) as container:
        with pytest.raises(ContainerError) as caught:
            container.copy_from("/nope")
        assert str(caught.value) == (
            "cannot copy /nope from the container: /nope: no such file or directory"
        )


def test_copy_from_a_running_container_sees_its_files(busybox):
    """Copies from a running container go through its mount namespace."""
    with Container(busybox, ["sh", "-c", "echo live > /live; sleep 60"]) as container:
        container.start()
        wait_for(lambda: _holds(container.path / "upper" / "live", b"live\n"))
        assert container.copy_from("/live") == b"live\n"
        container.copy_to("/given", b"given\n")
        assert container.exec(["cat", "/given"]).stdout == b"given\n"


def test_export_writes_the_merged_file_system_without_mounts(busybox, tmp_path):
    """export() is a tar of the merged root; /proc contents are not in it."""
    with Container(busybox, ["sh", "-c", "echo e > /exported; sleep 60"]) as container:
        container.start()
        wait_for(lambda: _holds(container.path / "upper" / "exported", b"e\n"))
        container.export(tmp_path / "fs.tar")
    with tarfile.open(tmp_path / "fs.tar") as tar:
        names = tar.getnames()
        assert tar.extractfile("exported").read() == b"e\n"
    assert "bin/busybox" in names
    assert not any(name.startswith("proc/") for name in names)


# Resource limits through cgroups


def cgroup_dirs(container_id: str) -> list[str]:
    """The cgroup directories named for a container, anywhere under /sys/fs/cgroup."""
    found = []
    for root, dirs, _files in os.walk("/sys/fs/cgroup"):
        if container_id in dirs:
            found.append(os.path.join(root, container_id))
        dirs[:] = [d for d in dirs if d != container_id]
    return found


def test_memory_limit_oom_kills_with_137_and_reports_it(busybox):
    """Going over the memory limit ends the container with 137 and OOMKilled."""
    with Container(
        busybox,
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        memory=16 * 1024 * 1024,
    ) as container:
        result = container.run()
        if result.warnings:
            missing(result.warnings[0])
        assert result.exit_code == 137
        state = container.inspect()["State"]
        assert (state["ExitCode"], state["OOMKilled"]) == (137, True)
        assert container.inspect()["HostConfig"]["Memory"] == 16 * 1024 * 1024
        assert cgroup_dirs(container.id) != []
    assert cgroup_dirs(container.id) == []


def test_pids_limit_stops_forks_and_stats_report_usage(busybox):
    """pids_limit caps processes; stats() reads the running container's cgroup."""
    with Container(
        busybox,
        ["sh", "-c", "sleep 60 & sleep 60 & wait"],
        pids_limit=3,
        memory=64 * 1024 * 1024,
    ) as container:
        container.start()
        state = container.state()
        if state.warnings:
            missing(state.warnings[0])
        wait_for(lambda: container.stats()["pids_stats"]["current"] == 3)
        stats = container.stats()
        assert stats["pids_stats"] == {"current": 3, "limit": 3}
        assert stats["memory_stats"]["limit"] == 64 * 1024 * 1024
        assert stats["memory_stats"]["usage"] > 0
        assert stats["cpu_stats"]["total_usage"] > 0
        # An exec'd process joins the container's cgroup and its limits.
        result = container.exec(["sh", "-c", "true & wait"])
        assert result.stderr == b"sh: can't fork: Resource temporarily unavailable\n"
    assert cgroup_dirs(container.id) == []


def test_stats_without_a_cgroup_says_how_to_get_one(busybox):
    """A container run attached without limits has no cgroup to read."""
    with Container(busybox, ["true"]) as container:
        container.run()
        with pytest.raises(ContainerError) as caught:
            container.stats()
        assert str(caught.value) == (
            f"container {container.short_id} has no cgroup to measure: start it "
            "detached or give it a limit (memory, cpus, cpu_shares, pids_limit)"
        )


# Security options


def status_field(container: Container, field: str) -> str:
    """Run a container and return one field of its /proc/self/status."""
    output = container.run().stdout.decode()
    return output.partition(f"{field}:\t")[2].partition("\n")[0]


def test_default_capabilities_are_dockers(busybox):
    """The bounding set is Docker's default set, and no_new_privs is off."""
    with Container(busybox, ["cat", "/proc/self/status"]) as container:
        output = container.run().stdout.decode()
    assert "CapBnd:\t00000000a80425fb\n" in output
    assert "NoNewPrivs:\t0\n" in output


def test_cap_add_and_cap_drop_change_the_bounding_set(busybox):
    """NET_ADMIN added (bit 12), CHOWN and CAP_KILL dropped (bits 0 and 5)."""
    with Container(
        busybox,
        ["cat", "/proc/self/status"],
        cap_add=["NET_ADMIN"],
        cap_drop=["chown", "CAP_KILL"],
    ) as container:
        assert status_field(container, "CapBnd") == "00000000a80435da"


def test_cap_drop_all_keeps_only_what_is_added(busybox):
    """drop ALL then add CHOWN leaves exactly bit 0."""
    with Container(
        busybox, ["cat", "/proc/self/status"], cap_drop=["ALL"], cap_add=["CHOWN"]
    ) as container:
        assert status_field(container, "CapBnd") == "0000000000000001"


def test_unknown_capability_is_refused(busybox):
    """A capability name the kernel does not have is a configuration error."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], cap_add=["FLY"])
    assert str(caught.value) == "unknown capability: 'FLY'"


def test_no_new_privileges_security_option(busybox):
    """security_opt=["no-new-privileges"] sets the process's no_new_privs flag."""
    with Container(
        busybox, ["cat", "/proc/self/status"], security_opt=["no-new-privileges"]
    ) as container:
        assert status_field(container, "NoNewPrivs") == "1"
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], security_opt=["apparmor=unconfined"])
    assert str(caught.value) == (
        "unsupported security option 'apparmor=unconfined': "
        "only no-new-privileges and seccomp=unconfined are known"
    )


def test_privileged_keeps_every_capability_and_a_writable_proc_sys(busybox):
    """privileged: the full bounding set, /proc/sys and /sys not read-only."""
    script = "grep CapBnd /proc/self/status; grep -E ' /(proc/sys|sys) ' /proc/mounts"
    with Container(busybox, ["sh", "-c", script]) as default:
        lines = default.run().stdout.decode().splitlines()
    assert [line.split()[3].split(",")[0] for line in lines[1:]] == ["ro", "ro"]
    with Container(busybox, ["sh", "-c", script], privileged=True) as container:
        lines = container.run().stdout.decode().splitlines()
    # Every capability this (host) process may have, none dropped; a new
    # user namespace (rootless) starts with every capability the kernel has.
    host = Path("/proc/self/status").read_text().partition("CapBnd:\t")[2][:16]
    if os.geteuid() != 0:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        host = f"{(1 << (last + 1)) - 1:016x}"
    assert lines[0] == f"CapBnd:\t{host}"
    assert [line.split()[3].split(",")[0] for line in lines[1:]] == ["rw"]


def test_pid_is_the_host_pid_of_pid_1_while_running(busybox):
    """pid names the running container's PID 1 on the host, then None."""
    with Container(busybox, ["sleep", "60"]) as container:
        assert container.pid is None
        container.start()
        pid = container.pid
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0060\x00"
        container.kill()
        container.wait(timeout=10)
        assert container.pid is None


# Networking


def test_network_container_mode_joins_another_containers_namespace(busybox):
    """network="container:<name>" shares the other container's network namespace."""
    with Container(busybox, ["sleep", "60"], name="net-owner") as owner:
        owner.start()
        expected = os.readlink(f"/proc/{owner.pid}/ns/net")
        with Container(
            busybox, ["readlink", "/proc/self/ns/net"], network="container:net-owner"
        ) as joiner:
            assert joiner.run().stdout.decode() == expected + "\n"


def test_network_container_mode_needs_a_running_container(busybox):
    """Joining a container that is missing, or does not run, is a clear error."""
    with Container(busybox, ["true"], network="container:ghost") as container:
        with pytest.raises(ContainerError) as caught:
            container.run()
        containers = busybox.store.path / "containers"
        assert str(caught.value) == (
            "cannot join the network of container ghost: "
            f"no such container: ghost in {containers}"
        )
    with Container(busybox, ["true"], name="idle"), Container(
        busybox, ["true"], network="container:idle"
    ) as container:
        with pytest.raises(ContainerError) as caught:
            container.run()
        assert str(caught.value) == (
            "cannot join the network of container idle: it is not running"
        )


def test_published_port_forwards_from_127_0_0_1_into_the_container(busybox):
    """ports={8080: 0} publishes on a free 127.0.0.1 port, shown by host_port()."""
    script = "mkdir /www && echo hello > /www/index.html && httpd -f -p 8080 -h /www"
    with Container(busybox, ["sh", "-c", script], ports={8080: 0}) as container:
        container.start()
        port = container.host_port(8080)
        assert port > 0
        assert container.inspect()["NetworkSettings"]["Ports"] == {
            "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        }
        body = b""

        def answered() -> bool:
            nonlocal body
            # Before httpd listens, the forwarder closes the connection with
            # the request unread, which the kernel turns into a reset.
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                    body = b"".join(iter(lambda: conn.recv(65536), b""))
            except ConnectionResetError:
                return False
            return body != b""

        wait_for(answered)
        assert body.startswith(b"HTTP/1.1 200 OK\r\n")
        assert body.endswith(b"\r\n\r\nhello\n")
        with pytest.raises(ContainerError) as caught:
            container.host_port(9090)
        assert str(caught.value) == (
            f"port 9090/tcp of container {container.short_id} is not published "
            "or the container is not running"
        )


def test_attached_run_forwards_published_ports_while_it_runs(busybox):
    """run() forwards published ports until the container exits, as start() does."""
    script = (
        "mkdir /w && echo hello > /w/index.html && httpd -p 8080 -h /w && "
        "while [ ! -e /w/done ]; do sleep 0.05; done"
    )
    with Container(busybox, ["sh", "-c", script], ports={8080: 0}) as container:
        results: list[layercake.RunResult] = []
        runner = threading.Thread(target=lambda: results.append(container.run()))
        runner.start()
        try:
            wait_for(lambda: container.state().ports != ())
            port = container.host_port(8080)
            body = b""

            def answered() -> bool:
                nonlocal body
                try:
                    with socket.create_connection(("127.0.0.1", port), 5) as conn:
                        conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                        body = b"".join(iter(lambda: conn.recv(65536), b""))
                except ConnectionResetError:
                    return False
                return body != b""

            wait_for(answered)
            assert body.endswith(b"\r\n\r\nhello\n")
        finally:
            container.exec(["touch", "/w/done"])
            runner.join(30)
        assert results[0].exit_code == 0
        assert container.state().ports == ()
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0


# pause, unpause, restart, rename


@pytest.fixture
def freezer() -> None:
    """Skip where this process cannot freeze a cgroup (not root, no freezer)."""
    usable = (
        os.path.exists("/sys/fs/cgroup/freezer/cgroup.procs")
        or os.path.exists("/sys/fs/cgroup/cgroup.freeze")
        or os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    )
    if os.geteuid() != 0 or not usable:
        missing("pausing needs root and a cgroup freezer (v1 freezer or cgroup v2)")


def test_pause_freezes_the_container_until_unpause(busybox, freezer):
    """A paused container writes nothing and shows as paused until unpaused."""
    script = "while true; do echo x; sleep 0.01; done"
    with Container(busybox, ["sh", "-c", script]) as container:
        container.start(detach=True)
        wait_for(lambda: len(container.logs()) >= 4)
        container.pause()
        shown = container.inspect()["State"]
        assert (container.status, shown["Status"], shown["Running"]) == (
            "paused",
            "paused",
            True,
        )
        assert shown["Paused"] is True
        state = container.state()
        if state.cgroup_version == 1:
            freezer = [p for p in state.cgroup_paths if "/freezer/" in p]
            assert Path(freezer[0], "freezer.state").read_text() == "FROZEN\n"
        else:
            path = Path(state.cgroup_paths[0], "cgroup.freeze")
            assert path.read_text() == "1\n"
        frozen = container.logs()
        time.sleep(0.3)
        assert container.logs() == frozen
        with pytest.raises(ContainerError) as caught:
            container.exec(["true"])
        assert str(caught.value) == (
            f"container {container.short_id} is paused, unpause the container "
            "before exec"
        )
        with pytest.raises(ContainerError) as caught:
            container.pause()
        assert str(caught.value) == (
            f"container {container.short_id} is already paused"
        )

        container.unpause()
        assert container.status == "running"
        assert container.inspect()["State"]["Paused"] is False
        wait_for(lambda: len(container.logs()) > len(frozen))
        with pytest.raises(ContainerError) as caught:
            container.unpause()
        assert str(caught.value) == f"container {container.short_id} is not paused"


def test_stopping_a_paused_container_thaws_it(busybox, freezer):
    """stop() of a paused container delivers the signal and reports the exit."""
    script = "trap 'exit 3' TERM; echo ready; while true; do sleep 0.05; done"
    with Container(busybox, ["sh", "-c", script], init=True) as container:
        container.start(detach=True)
        wait_for(lambda: container.logs() == b"ready\n")
        container.pause()
        assert container.stop(timeout=5) == 3
        assert container.status == "exited"


def test_pause_without_a_cgroup_is_a_clear_error(busybox):
    """An attached container without limits has no cgroup, so no freezer."""
    with Container(busybox, ["sleep", "60"]) as container:
        container.start()
        with pytest.raises(ContainerError) as caught:
            container.pause()
        assert str(caught.value) == (
            f"container {container.short_id} cannot be paused: it has no cgroup "
            "with a freezer (start it detached or give it a limit, on a machine "
            "with cgroup v2 or the v1 freezer mounted)"
        )


def test_pause_of_a_stopped_container_is_an_error(busybox):
    """Only a running container can be paused."""
    with Container(busybox, ["true"]) as container:
        container.run()
        with pytest.raises(ContainerError) as caught:
            container.pause()
        assert str(caught.value) == f"container {container.short_id} is not running"


def test_restart_keeps_the_writable_layer_and_the_log(busybox):
    """restart() stops and starts again on the same upper directory."""
    script = "echo run >> /count; cat /count; sleep 60"
    with Container(busybox, ["sh", "-c", script]) as container:
        container.start(detach=True)
        wait_for(lambda: container.logs() == b"run\n")
        first = container.pid
        container.restart(timeout=0.2)
        wait_for(lambda: container.logs() == b"run\nrun\nrun\n")
        assert container.status == "running"
        assert container.pid not in (None, first)
        assert (container.path / "upper" / "count").read_bytes() == b"run\nrun\n"


def test_restart_of_an_exited_container_starts_it(busybox):
    """A container that ran to its end runs again on restart()."""
    with Container(busybox, ["sh", "-c", "echo again >> /f; cat /f"]) as container:
        assert container.run().stdout == b"again\n"
        container.restart()
        assert container.wait(10) == 0
        # run() logged the first line, the restarted run the two after it.
        assert container.logs() == b"again\nagain\nagain\n"


def test_rename_changes_the_name_other_processes_see(busybox):
    """A renamed container is found under its new name, not its old one."""
    with (
        Container(busybox, ["true"], name="first") as container,
        Container(busybox, ["true"], name="other") as other,
    ):
        container.rename("second")
        assert Container.load(busybox.store, "second").id == container.id
        assert container.inspect()["Name"] == "/second"
        with pytest.raises(ContainerError) as caught:
            Container.load(busybox.store, "first")
        assert str(caught.value).startswith("no such container: first in ")

        with pytest.raises(ContainerConfigError) as caught:
            container.rename("other")
        assert str(caught.value) == (
            f'the container name "/other" is already in use by container {other.id}'
        )
        with pytest.raises(ContainerConfigError) as caught:
            container.rename("second")
        assert str(caught.value) == (
            "renaming a container with the same name as its current name"
        )
        with pytest.raises(ContainerConfigError) as caught:
            container.rename("no/slash")
        assert str(caught.value) == (
            "invalid container name 'no/slash': only [a-zA-Z0-9][a-zA-Z0-9_.-] "
            "are allowed"
        )


# OCI runtime executors and bundles


@pytest.fixture
def runc() -> str:
    """The runc binary, as root; skipped where either is missing."""
    path = shutil.which("runc")
    if path is None:
        missing("runc is not installed (Debian package runc)")
    if os.geteuid() != 0:
        pytest.skip("the runc executor runs as root only")
    return str(path)


def test_runc_executor_gives_the_builtin_results(busybox, runc):
    """The same container settings give the same results through runc."""
    script = (
        'echo "$(id -u):$(id -g) $(pwd) $(hostname) $GREETING"; echo e >&2; '
        "mkdir -p /data && echo kept > /data/f; exit 3"
    )
    results = {}
    for executor in ("builtin", "runc"):
        with Container(
            busybox,
            ["sh", "-c", script],
            env={"GREETING": "hi"},
            workdir="/srv/app",
            hostname="web",
            executor=executor,
        ) as container:
            result = container.run()
            results[executor] = (
                result.exit_code,
                result.stdout,
                result.stderr,
                container.diff(),
                container.copy_from("/data/f"),
                container.inspect()["State"]["ExitCode"],
            )
    expected = (
        3,
        b"0:0 /srv/app web hi\n",
        b"e\n",
        [("A", "/data"), ("A", "/data/f"), ("A", "/srv"), ("A", "/srv/app")],
        b"kept\n",
        3,
    )
    assert results == {"builtin": expected, "runc": expected}


def test_runc_executor_runs_as_the_image_user(busybox, runc):
    """-u works through runc as through the built-in runtime."""
    outputs = []
    for executor in ("builtin", "runc"):
        with Container(busybox, ["id"], user="app", executor=executor) as container:
            outputs.append(container.run().stdout)
    assert outputs == [b"uid=1000(app) gid=1000(app)\n"] * 2


def test_runc_executor_attach_passes_file_descriptors(busybox, runc, tmp_path):
    """attach() through runc writes to the given descriptors and returns the code."""
    out = tmp_path / "out"
    with (
        open(out, "wb") as sink,
        Container(
            busybox, ["sh", "-c", "echo attached; exit 2"], executor="runc"
        ) as container,
    ):
        assert container.attach(stdout=sink.fileno()) == 2
    assert out.read_bytes() == b"attached\n"


@pytest.mark.parametrize("detach", [False, True])
def test_runc_executor_fails_the_start_of_a_missing_command(busybox, runc, detach):
    """runc's report of a command it cannot exec fails the start, as docker."""
    with Container(busybox, ["nosuchcmd"], executor="runc") as container:
        with pytest.raises(CommandNotStarted) as caught:
            container.start(detach=detach)
        assert (str(caught.value), caught.value.exit_code) == (
            f"container {container.short_id} failed to start: {NOT_FOUND}",
            127,
        )
        assert _failed_start_view(container) == FAILED_START
        with pytest.raises(CommandNotStarted) as again:
            container.run()
        assert (again.value.exit_code, container.logs()) == (127, b"")


def test_runc_executor_fails_the_start_of_a_file_it_cannot_exec(busybox, runc):
    """A command runc finds but may not execute fails the start with 126."""
    with Container(busybox, ["/etc/passwd"], executor="runc") as container:
        with pytest.raises(CommandNotStarted) as caught:
            container.run()
        assert (caught.value.exit_code, container.inspect()["State"]["Error"]) == (
            126,
            'exec: "/etc/passwd": permission denied',
        )


def test_unknown_executor_is_a_config_error(busybox):
    """An executor other than builtin, runc or crun is refused at creation."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], executor="kata")
    assert str(caught.value) == (
        "unknown executor 'kata': use one of builtin, runc, crun"
    )


def test_runc_executor_runs_detached_containers(busybox, runc, freezer):
    """start(detach=True) through runc: logs, exec, pause and stop work."""
    script = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.05; done"
    with Container(busybox, ["sh", "-c", script], executor="runc") as container:
        container.start(detach=True)
        wait_for(lambda: container.logs() == b"ready\n")
        seen = container.exec(["sh", "-c", "hostname; cat /proc/1/cmdline"])
        assert seen.stdout == (
            container.short_id.encode() + b"\nsh\0-c\0" + script.encode() + b"\0"
        )
        container.pause()
        assert container.status == "paused"
        container.unpause()
        assert container.stop(timeout=10) == 0
        assert container.inspect()["HostConfig"]["Runtime"] == "runc"


def test_bundle_runs_with_runc_and_writes_the_container_layer(busybox, runc, tmp_path):
    """Container.bundle() gives a bundle `runc run` accepts; writes reach upper."""
    with Container(busybox, ["sh", "-c", "echo via-bundle > /b; hostname"]) as c:
        bundle = c.bundle(tmp_path / "bundle")
        try:
            done = subprocess.run(
                [runc, "--root", str(tmp_path / "state"), "run", "-b", bundle, "b1"],
                capture_output=True,
                check=False,
            )
        finally:
            subprocess.run(["umount", str(bundle / "rootfs")], check=True)
        assert (done.returncode, done.stdout, done.stderr) == (
            0,
            c.short_id.encode() + b"\n",
            b"",
        )
        assert c.diff() == [("A", "/b")]
        assert c.copy_from("/b") == b"via-bundle\n"
        config = json.loads((bundle / "config.json").read_text())
        assert (config["root"], config["process"]["args"]) == (
            {"path": "rootfs", "readonly": False},
            ["sh", "-c", "echo via-bundle > /b; hostname"],
        )


def test_a_container_with_ports_that_exits_at_once_still_starts(busybox):
    """start() of a container that exits before its ports are served succeeds."""
    for _ in range(5):
        with layercake.Container(busybox, ["true"], ports={80: 0}) as container:
            container.start()
            assert container.wait(timeout=10) == 0


# run() and attach(): recorded while running, logged


def test_running_attached_container_is_seen_by_another_process(busybox, tmp_path):
    """While run() runs, other processes list it as running and can stop it."""
    store = busybox.store
    script = (
        "import sys, layercake\n"
        "store = layercake.Store(sys.argv[1])\n"
        "image = store.image('busybox:latest')\n"
        "c = layercake.Container(image, ['sh', '-c', 'echo up; sleep 60'], "
        "name='fg')\n"
        "r = c.run()\n"
        "print(r.exit_code, r.stdout)\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", script, str(store.path)], stdout=subprocess.PIPE
    )
    try:
        wait_for(lambda: [c.name for c in list_containers(store)] == ["fg"])
        container = Container.load(store, "fg")
        assert container.status == "running"
        assert container.pid is not None
        wait_for(lambda: container.logs() == b"up\n")
        container.kill()
        assert container.wait(10) == 137
        assert runner.communicate(timeout=10)[0] == b"137 b'up\\n'\n"
        state = container.inspect()["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 137)
        container.remove()
    finally:
        runner.kill()
        runner.wait()


def test_run_writes_the_json_file_log(busybox):
    """run() output is in the log in Docker's json-file format, per stream."""
    with Container(busybox, ["sh", "-c", "echo a; echo b >&2; printf c"]) as c:
        result = c.run()
        assert (result.stdout, result.stderr) == (b"a\nc", b"b\n")
        entries = [
            json.loads(line)
            for line in (c.path / "container-json.log").read_text().splitlines()
        ]
        assert sorted((e["stream"], e["log"]) for e in entries) == [
            ("stderr", "b\n"),
            ("stdout", "a\n"),
            ("stdout", "c"),
        ]
        assert c.logs(stderr=False) == b"a\nc"
        assert c.logs(stdout=False) == b"b\n"


def test_attach_passes_output_through_and_logs_it(busybox, tmp_path):
    """attach() writes to the caller's descriptors and to the log alike."""
    out, err = tmp_path / "out", tmp_path / "err"
    with (
        open(out, "wb") as out_file,
        open(err, "wb") as err_file,
        Container(busybox, ["sh", "-c", "echo o; echo e >&2; exit 4"]) as c,
    ):
        code = c.attach(stdout=out_file.fileno(), stderr=err_file.fileno())
        assert (code, c.status) == (4, "exited")
        assert (out.read_bytes(), err.read_bytes()) == (b"o\n", b"e\n")
        assert c.logs(stderr=False) == b"o\n"
        assert c.logs(stdout=False) == b"e\n"


def test_silent_run_writes_no_log_file(busybox):
    """A container that writes nothing gets no log file, and empty logs."""
    with Container(busybox, ["true"]) as c:
        c.run()
        assert not (c.path / "container-json.log").exists()
        assert c.logs() == b""
        assert c.inspect()["State"]["Status"] == "exited"


def test_runc_container_records_its_pid_one_while_running(busybox, runc):
    """A run() through runc records PID 1's pid, so kill() reaches the container."""
    import threading

    with Container(
        busybox, ["sh", "-c", "echo up; sleep 60"], executor="runc"
    ) as container:
        results = []
        runner = threading.Thread(target=lambda: results.append(container.run()))
        runner.start()
        loaded = Container.load(busybox.store, container.id)
        wait_for(lambda: loaded.status == "running")
        pid = loaded.pid
        assert pid is not None
        wait_for(lambda: loaded.logs() == b"up\n")
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            assert cmdline.read() == b"sleep\x0060\x00"
        loaded.kill()
        runner.join(10)
        assert [(r.exit_code, r.stdout) for r in results] == [(137, b"up\n")]
        assert loaded.inspect()["State"]["ExitCode"] == 137


def test_runc_container_dies_with_the_process_that_started_it(busybox, runc):
    """Without detach, a runc container ends when its starting process exits."""
    start_in_subprocess(busybox.store.path, False, ["sleep", "60"], "runc")
    container = Container.load(busybox.store, "bg")
    assert container.wait(timeout=10) == 137
    assert container.status == "exited"
    container.remove()


def test_a_removed_container_refuses_to_report(busybox):
    """After remove(), reading or driving the container names the removal."""
    container = Container(busybox, ["echo", "hi"])
    container.run()
    container.remove()
    calls = {
        "logs": container.logs,
        "status": lambda: container.status,
        "state": container.state,
        "wait": container.wait,
        "exec": lambda: container.exec(["true"]),
        "kill": container.kill,
        "inspect": container.inspect,
    }
    for what, call in calls.items():
        with pytest.raises(ContainerError) as caught:
            call()
        assert (what, str(caught.value)) == (
            what,
            f"container {container.short_id} was removed",
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ports": {0: 0}}, "invalid container port: 0"),
        ({"ports": {70000: 0}}, "invalid container port: 70000"),
        ({"ports": {80: 99999}}, "invalid host port: 99999"),
        (
            {"ports": {"abc": 0}},
            "invalid published port 'abc': 'abc' is not a port number",
        ),
        (
            {"ports": {"53/sctp": 0}},
            "invalid published port '53/sctp': only TCP and UDP are forwarded",
        ),
        (
            {"name": "-bad"},
            "invalid container name '-bad': only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
        ),
        (
            {"volumes": [("relative/dir", "/data")]},
            "invalid volume name 'relative/dir'",
        ),
    ],
)
def test_a_container_that_fails_to_configure_leaves_nothing(
    busybox, store, options, message
):
    """Any configuration error leaves no directory behind in the store."""
    containers = store.path / "containers"
    before = sorted(containers.iterdir()) if containers.exists() else []
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], **options)
    assert str(caught.value) == message
    after = sorted(containers.iterdir()) if containers.exists() else []
    assert after == before


def test_killing_a_container_that_does_not_run_is_an_error(busybox):
    """kill() of a created or exited container says it is not running."""
    with Container(busybox, ["true"]) as container:
        with pytest.raises(ContainerError) as created:
            container.kill()
        container.start()
        container.wait(timeout=10)
        with pytest.raises(ContainerError) as exited:
            container.kill()
    expected = f"container {container.short_id} is not running"
    assert (str(created.value), str(exited.value)) == (expected, expected)


CPUS = len(os.sched_getaffinity(0))
CPU_RANGE = (
    f"Range of CPUs is from 0.01 to {CPUS}.00, as there are only {CPUS} CPUs available"
)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"memory": 1}, "Minimum memory limit allowed is 6MB"),
        ({"memory": 100 * 1024}, "Minimum memory limit allowed is 6MB"),
        ({"memory": -5}, "invalid memory limit -5: give bytes, or 0 for no limit"),
        ({"memory": "lots"}, "memory must be an integer, not 'lots'"),
        ({"cpus": -1.0}, CPU_RANGE),
        ({"cpus": 0.001}, CPU_RANGE),
        ({"cpus": CPUS + 1}, CPU_RANGE),
        ({"cpus": "two"}, "cpus must be a number, not 'two'"),
        (
            {"cpu_shares": -2},
            "invalid cpu shares -2: give a positive weight, or 0 for the default",
        ),
        (
            {"pids_limit": -3},
            "invalid pids limit -3: give a positive number, or 0 or -1 for no limit",
        ),
        ({"pids_limit": 2.5}, "pids_limit must be an integer, not 2.5"),
        (
            {"workdir": "relative"},
            (
                "the working directory 'relative' is invalid, it needs to be an "
                "absolute path"
            ),
        ),
    ],
)
def test_nonsense_limits_are_config_errors(busybox, limits, message):
    """Limits docker refuses are refused with docker's words, creating nothing."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], **limits)
    assert str(caught.value) == message
    assert busybox.store.containers(all=True) == []


def test_pids_limit_minus_one_means_no_limit(busybox):
    """pids_limit=-1 is docker's no limit, as 0."""
    with Container(busybox, ["true"], pids_limit=-1) as container:
        assert container.inspect()["HostConfig"]["PidsLimit"] is None


def test_a_list_of_host_ports_publishes_a_port_on_each(busybox):
    """ports={80: [0, ("127.0.0.1", 0)]} publishes 80/tcp twice, as docker's
    -p A:80 -p B:80."""
    script = "mkdir /w && echo hi > /w/index.html && httpd -f -p 80 -h /w"
    ports = {80: [0, ("127.0.0.1", 0)]}
    with Container(busybox, ["sh", "-c", script], ports=ports) as container:
        assert container.record.ports == (
            (80, "tcp", "127.0.0.1", 0),
            (80, "tcp", "127.0.0.1", 0),
        )
        container.start()
        published = container.state().ports
        assert [entry[:3] for entry in published] == [(80, "tcp", "127.0.0.1")] * 2
        assert len({entry[3] for entry in published}) == 2


def test_tmpfs_is_noexec_nosuid_nodev_by_default_as_docker(busybox):
    """A --tmpfs runs no programs unless asked: docker's noexec,nosuid,nodev."""
    script = "cp /bin/busybox /t/echo; /t/echo EXECUTED"
    with Container(busybox, ["sh", "-c", script], tmpfs=["/t"]) as container:
        result = container.run()
    assert (result.exit_code, result.stdout) == (126, b"")
    assert result.stderr == b"sh: /t/echo: Permission denied\n"


def test_tmpfs_options_exec_ownership_and_flags_are_honoured(busybox):
    """exec, suid, dev, uid and gid reach the mount."""
    script = (
        "grep ' /t ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1-2;"
        "stat -c '%u %g %a' /t; cp /bin/busybox /t/echo; /t/echo EXECUTED"
    )
    with Container(
        busybox,
        ["sh", "-c", script],
        tmpfs=["/t:exec,suid,dev,uid=5,gid=6,mode=750"],
    ) as container:
        result = container.run()
        tmpfs = container.inspect()["HostConfig"]["Tmpfs"]
    assert result.stdout == b"rw,relatime\n5 6 750\nEXECUTED\n"
    assert tmpfs == {"/t": "rw,exec,suid,dev,mode=750,uid=5,gid=6"}


def test_read_only_tmpfs_refuses_writes(busybox):
    """--tmpfs /t:ro is mounted read-only and inspect says so."""
    with Container(busybox, ["touch", "/t/x"], tmpfs=["/t:ro"]) as container:
        result = container.run()
        mounts = container.inspect()["Mounts"]
    assert result.exit_code == 1
    assert result.stderr == b"touch: /t/x: Read-only file system\n"
    assert mounts == [{"Type": "tmpfs", "Source": "", "Destination": "/t", "RW": False}]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("/t:bogus", "invalid tmpfs option 'bogus' in '/t:bogus'"),
        ("/t:size=lots", "invalid tmpfs size 'lots' in '/t:size=lots'"),
        ("/t:uid=x", "invalid tmpfs uid 'x' in '/t:uid=x'"),
        ("/t:mode=9", "invalid tmpfs mode '9' in '/t:mode=9'"),
        ("/t:ro=1", "invalid tmpfs option 'ro=1' in '/t:ro=1'"),
    ],
)
def test_unknown_or_bad_tmpfs_options_are_config_errors(busybox, item, message):
    """An option docker would not take is refused, not ignored."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], tmpfs=[item])
    assert str(caught.value) == message


def test_host_network_keeps_the_hosts_hostname(busybox):
    """network="host" gives the host's name, as docker; others the short id."""
    result = busybox.run(["hostname"], network="host")
    assert result.stdout == os.uname().nodename.encode() + b"\n"
    with Container(busybox, ["hostname"]) as container:
        assert container.run().stdout == container.short_id.encode() + b"\n"
    with Container(busybox, ["hostname"], network="host", hostname="x") as container:
        assert container.run().stdout == b"x\n"


def test_kill_takes_signal_names_and_refuses_others(busybox):
    """kill("SIGUSR1") sends it; kill(999) is a ContainerConfigError."""
    script = (
        "trap 'echo got usr1; exit 3' USR1; echo ready; while true; do sleep 0.1; done"
    )
    with Container(busybox, ["sh", "-c", script]) as container:
        container.start()
        deadline = time.monotonic() + 10
        while b"ready" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        for bad in (999, "SIGNOPE", 0):
            with pytest.raises(ContainerConfigError) as caught:
                container.kill(bad)
            assert str(caught.value) == f"invalid signal {bad!r}"
        container.kill("SIGUSR1")
        assert container.wait(10) == 3
        assert container.logs() == b"ready\ngot usr1\n"


def test_start_of_a_removed_container_says_removed(busybox):
    """start() and run() after remove() say the container was removed."""
    container = Container(busybox, ["true"])
    container.remove(force=True)
    for action in (container.start, container.run):
        with pytest.raises(ContainerError) as caught:
            action()
        assert str(caught.value) == f"container {container.short_id} was removed"


def test_run_with_a_negative_timeout_is_a_config_error(busybox):
    """image.run(timeout=-1) is refused before anything runs."""
    with pytest.raises(ContainerConfigError) as caught:
        busybox.run(["true"], timeout=-1)
    assert str(caught.value) == "timeout must not be negative, not -1"
    assert busybox.store.containers(all=True) == []


def test_commit_author_is_the_images_author(busybox):
    """commit(author=) sets the image's Author, as docker commit -a."""
    with Container(busybox, ["true"]) as container:
        container.run()
        image = container.commit(author="Ann <ann@example.org>")
    assert image.config.author == "Ann <ann@example.org>"
    assert image.history[-1].author == "Ann <ann@example.org>"
    assert image.inspect()["Author"] == "Ann <ann@example.org>"


def test_exec_in_a_missing_workdir_fails_and_creates_nothing(busybox):
    """exec(workdir=) of a missing directory fails, as docker exec; nothing is
    added to the container."""
    with Container(busybox, ["sleep", "60"]) as container:
        container.start()
        with pytest.raises(ContainerError) as caught:
            container.exec(["pwd"], workdir="/nonexist")
        assert str(caught.value) == (
            "exec set-up failed: enter working directory /nonexist: "
            "no such file or directory (errno 2)"
        )
        assert container.exec(["ls", "/nonexist"]).exit_code == 1
        assert container.exec(["pwd"], workdir="/etc").stdout == b"/etc\n"


def test_a_failed_restart_keeps_the_exited_state_and_records_why(busybox):
    """restart() that cannot start keeps Exited and the last run, with
    State.Error, as docker start does."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        holder.close()
        with Container(busybox, ["sh", "-c", "exit 3"], ports={80: port}) as container:
            container.start()
            assert container.wait(10) == 3
            before = container.state()
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", port))
                taken.listen()
                with pytest.raises(ContainerError) as caught:
                    container.restart()
            after = Container.load(busybox.store, container.id).state()
            assert (after.status, after.exit_code) == ("exited", 3)
            assert (after.started_at, after.finished_at) == (
                before.started_at,
                before.finished_at,
            )
            assert after.error == str(caught.value)
            assert container.inspect()["State"]["Error"] == str(caught.value)
