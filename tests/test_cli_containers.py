"""The container verbs of the layercake command, as a docker user types them."""

from __future__ import annotations

import json
import os
import re
import socket
import tarfile
import time
from pathlib import Path

import pytest
from tests.conftest import missing

pytestmark = pytest.mark.usefixtures("container_runtime")


def wait_for_output(cli, capfd, name: str, text: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cli("logs", name)
        if text in capfd.readouterr().out:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never wrote {text!r}")


def test_run_d_start_and_exec_of_commands_that_cannot_run(cli, busybox, capfd):
    """run -d exits 127 (not found) or 126 (not executable) with the error and
    leaves the container created; start fails again (exit 1, as docker's);
    exec of such a command exits 127 or 126 too."""
    assert cli("run", "-d", "--name", "bad", "busybox", "nosuchcmd") == 127
    short = busybox.store.container("bad").short_id
    not_found = 'exec: "nosuchcmd": executable file not found in $PATH'
    failed = f"layercake: error: container {short} failed to start: {not_found}\n"
    assert capfd.readouterr() == ("", failed)
    assert cli("inspect", "bad") == 0
    state = json.loads(capfd.readouterr().out)[0]["State"]
    assert (state["Status"], state["ExitCode"], state["Error"]) == (
        "created",
        127,
        not_found,
    )
    assert cli("start", "bad") == 1
    assert capfd.readouterr() == ("", failed)
    assert cli("run", "-d", "busybox", "/etc") == 126
    assert capfd.readouterr().err.endswith('exec: "/etc": is a directory\n')

    assert cli("run", "-d", "--name", "up", "busybox", "sleep", "30") == 0
    capfd.readouterr()
    assert cli("exec", "up", "nosuchcmd") == 127
    assert capfd.readouterr() == ("", f"layercake: error: {not_found}\n")
    assert cli("exec", "up", "/etc/passwd") == 126
    assert capfd.readouterr().err == (
        'layercake: error: exec: "/etc/passwd": permission denied\n'
    )


def test_detached_container_lifecycle(cli, busybox, capfd):
    """run -d, ps, logs, exec, stop, ps -a, rm: as with docker."""
    script = "trap 'exit 0' TERM; echo up; while true; do sleep 0.1; done"
    assert cli("run", "-d", "--name", "svc", "busybox", "sh", "-c", script) == 0
    container_id = capfd.readouterr().out.strip()
    assert len(container_id) == 64
    wait_for_output(cli, capfd, "svc", "up\n")

    assert cli("ps", "-q") == 0
    assert capfd.readouterr().out == container_id[:12] + "\n"
    assert cli("exec", "svc", "sh", "-c", "echo $$ inside; exit 3") == 3
    assert capfd.readouterr().out.endswith(" inside\n")

    assert cli("stop", "svc") == 0
    assert cli("ps", "-a", "--format", "json") == 0
    lines = capfd.readouterr().out.splitlines()
    state = json.loads(lines[-1])["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert cli("rm", "svc") == 0
    capfd.readouterr()
    assert cli("ps", "-a", "-q") == 0
    assert capfd.readouterr().out == ""


def test_run_without_rm_keeps_the_exited_container(cli, busybox, capfd):
    """Without --rm the container stays for logs, diff, commit and rm."""
    assert (
        cli("run", "--name", "kept", "busybox", "sh", "-c", "echo x > /new; echo done")
        == 0
    )
    assert capfd.readouterr().out == "done\n"
    assert cli("diff", "kept") == 0
    assert capfd.readouterr().out == "A /new\n"
    assert cli("commit", "kept", "kept-image:1") == 0
    capfd.readouterr()
    assert cli("run", "--rm", "kept-image:1", "cat", "/new") == 0
    assert capfd.readouterr().out == "x\n"
    assert cli("rm", "kept") == 0


def test_commit_pauses_a_running_container_unless_told_not_to(
    cli, busybox, store, capfd
):
    """commit pauses a running container and thaws it; --pause=false does not."""
    script = "echo x > /x; sleep 60"
    assert cli("run", "-d", "--name", "live", "busybox", "sh", "-c", script) == 0
    capfd.readouterr()
    container = store.container("live")
    wait_for_output_file(container, "x")
    assert cli("commit", "live", "live-image:1") == 0
    assert cli("commit", "--pause=false", "live", "live-image:2") == 0
    assert cli("commit", "-p", "live", "live-image:3") == 0
    capfd.readouterr()
    assert container.status == "running"
    assert cli("run", "--rm", "live-image:2", "cat", "/x") == 0
    assert capfd.readouterr().out == "x\n"


def wait_for_output_file(container, name: str) -> None:
    deadline = time.monotonic() + 10
    while not (container.path / "upper" / name).exists():
        assert time.monotonic() < deadline, f"{name} never appeared"
        time.sleep(0.02)


def test_create_then_start_and_wait_via_logs(cli, busybox, capfd):
    """create prints an id; start runs it in the background."""
    assert cli("create", "--name", "later", "busybox", "echo", "started") == 0
    capfd.readouterr()
    assert cli("start", "later") == 0
    wait_for_output(cli, capfd, "later", "started\n")
    assert cli("rm", "-f", "later") == 0


def test_cp_both_ways_and_export(cli, busybox, capfd, tmp_path):
    """cp into and out of a container; export writes its files as a tar."""
    assert cli("create", "--name", "box", "busybox", "true") == 0
    capfd.readouterr()
    source = tmp_path / "in.txt"
    source.write_text("payload\n")
    assert cli("cp", str(source), "box:/in.txt") == 0
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert cli("cp", "box:/in.txt", str(out_dir)) == 0
    assert (out_dir / "in.txt").read_text() == "payload\n"
    archive = tmp_path / "box.tar"
    assert cli("export", "-o", str(archive), "box") == 0
    with tarfile.open(archive) as tar:
        assert tar.extractfile("in.txt").read() == b"payload\n"
    assert cli("rm", "box") == 0


def test_errors_for_unknown_containers_and_bad_flags(cli, busybox, capfd):
    """Unknown names, bad signals and volumes give one line and exit 125."""
    assert cli("logs", "nosuch") == 125
    assert "nosuch" in capfd.readouterr().err
    assert cli("run", "-v", "justone", "busybox", "true") == 125
    assert capfd.readouterr().err == (
        "layercake: error: invalid volume 'justone': expected SOURCE:TARGET[:ro|rw]\n"
    )
    assert cli("run", "-p", "localhost:80:80", "busybox", "true") == 125
    assert capfd.readouterr().err == (
        "layercake: error: invalid port 'localhost:80:80': 'localhost' is not "
        "an IPv4 address\n"
    )
    assert cli("run", "-p", "80:80/sctp", "busybox", "true") == 125
    assert capfd.readouterr().err == (
        "layercake: error: invalid port '80:80/sctp': expected "
        "[IP:]HOST:CONTAINER[/tcp|/udp]\n"
    )


def test_volume_verbs(cli, busybox, capfd):
    """volume create/ls/inspect; a used volume is kept until its container goes."""
    assert cli("volume", "create", "data") == 0
    assert (
        cli(
            "run",
            "--name",
            "writer",
            "-v",
            "data:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f",
        )
        == 0
    )
    assert cli("run", "--rm", "-v", "data:/data", "busybox", "cat", "/data/f") == 0
    capfd.readouterr()
    assert cli("volume", "ls", "-q") == 0
    assert capfd.readouterr().out == "data\n"
    assert cli("volume", "rm", "data") == 125
    assert capfd.readouterr().err.startswith("layercake: error: volume data is in use")
    assert cli("rm", "writer") == 0
    capfd.readouterr()
    assert cli("volume", "prune") == 0
    assert capfd.readouterr().out == ""
    assert cli("volume", "prune", "-a") == 0
    assert capfd.readouterr().out.endswith("Deleted Volume: data\n")


def test_pause_unpause_restart_rename(cli, busybox, capfd):
    """The remaining lifecycle verbs, on a detached container."""
    assert cli("run", "-d", "--name", "svc", "busybox", "sleep", "60") == 0
    assert cli("pause", "svc") == 0
    assert cli("ps", "--format", "json") == 0
    state = json.loads(capfd.readouterr().out.splitlines()[-1])["State"]
    assert (state["Status"], state["Paused"]) == ("paused", True)
    assert cli("unpause", "svc") == 0
    assert cli("rename", "svc", "svc2") == 0
    assert cli("restart", "-t", "1", "svc2") == 0
    capfd.readouterr()
    assert cli("inspect", "--type", "container", "svc2") == 0
    (details,) = json.loads(capfd.readouterr().out)
    assert (details["Name"].lstrip("/"), details["State"]["Status"]) == (
        "svc2",
        "running",
    )
    assert cli("rm", "-f", "svc2") == 0


def test_run_through_runc(cli, busybox, capfd, tool):
    """--runtime runc gives the same output as the built-in runtime."""
    tool("runc")
    assert (
        cli("run", "--rm", "--runtime", "runc", "busybox", "sh", "-c", "echo $$") == 0
    )
    assert capfd.readouterr().out == "1\n"


def test_cp_out_to_a_new_name_and_start_of_a_stopped_container(
    cli, busybox, capfd, tmp_path
):
    """cp C:/file NEW makes the file NEW; start of an exited container reruns it."""
    assert cli("run", "--name", "once", "busybox", "sh", "-c", "echo hi > /f") == 0
    assert cli("cp", "once:/f", str(tmp_path / "copied")) == 0
    assert (tmp_path / "copied").read_text() == "hi\n"
    assert cli("cp", "once:/f", str(tmp_path / "missing") + "/") == 125
    assert capfd.readouterr().err.endswith("does not exist\n")
    assert cli("start", "once") == 0
    assert cli("rm", "-f", "once") == 0


def test_logs_since_takes_durations_unix_seconds_and_dates(cli, busybox, capfd):
    """logs --since takes 10m, 1h30m, Unix seconds and RFC 3339, as docker."""
    assert cli("run", "--name", "said", "busybox", "echo", "hello") == 0
    capfd.readouterr()
    for since in ("10m", "1h30m", str(int(time.time()) - 60), "2000-01-01"):
        assert cli("logs", "--since", since, "said") == 0
        assert capfd.readouterr().out == "hello\n"
    future = str(int(time.time()) + 3600)
    for since in ("-1h", future):
        assert cli("logs", f"--since={since}", "said") == 0
        assert capfd.readouterr().out == ""


def test_logs_bad_since_or_tail_is_a_one_line_error(cli, busybox, capfd):
    """A bad --since or --tail is one line on stderr and exit 125."""
    assert cli("run", "--name", "said", "busybox", "echo", "hello") == 0
    capfd.readouterr()
    assert cli("logs", "--since", "garbage", "said") == 125
    assert capfd.readouterr().err == (
        "layercake: error: invalid time 'garbage': expected a duration such as "
        "10m or 1h30m, Unix seconds, or an RFC 3339 time such as "
        "2026-12-04T10:00:00Z\n"
    )
    assert cli("logs", "--tail", "x", "said") == 125
    assert capfd.readouterr().err == (
        "layercake: error: invalid value 'x' for --tail: expected a number or all\n"
    )


def test_logs_negative_tail_shows_every_line(cli, busybox, capfd):
    """--tail -1 shows all lines and --tail 0 none, as docker."""
    assert cli("run", "--name", "said", "busybox", "sh", "-c", "echo a; echo b") == 0
    capfd.readouterr()
    assert cli("logs", "--tail", "-1", "said") == 0
    assert capfd.readouterr().out == "a\nb\n"
    assert cli("logs", "-n", "1", "said") == 0
    assert capfd.readouterr().out == "b\n"
    assert cli("logs", "--tail", "0", "said") == 0
    assert capfd.readouterr().out == ""


def test_logs_writes_the_containers_stderr_to_stderr(cli, busybox, capfd):
    """logs keeps the streams apart, as docker: stderr lines go to stderr."""
    script = "echo out1; echo err1 >&2; sleep 0.05; echo out2"
    assert cli("run", "--name", "two", "busybox", "sh", "-c", script) == 0
    capfd.readouterr()
    assert cli("logs", "two") == 0
    assert capfd.readouterr() == ("out1\nout2\n", "err1\n")
    assert cli("logs", "--tail", "1", "two") == 0
    assert capfd.readouterr() == ("out2\n", "")


def test_logs_follow_writes_each_stream_to_its_own(cli, busybox, capfd):
    """logs -f prints what is logged and what follows, each on its stream."""
    script = "echo early; echo bad >&2; sleep 0.5; echo late; echo worse >&2"
    assert cli("run", "-d", "--name", "two", "busybox", "sh", "-c", script) == 0
    capfd.readouterr()
    assert cli("logs", "-f", "two") == 0
    assert capfd.readouterr() == ("early\nlate\n", "bad\nworse\n")


def test_logs_keeps_the_order_of_both_streams(cli, store, busybox, capfd):
    """With 2>&1 the lines come in the order the container wrote them."""
    import subprocess
    import sys

    script = "echo a; sleep 0.05; echo b >&2; sleep 0.05; echo c"
    assert cli("run", "--name", "ordered", "busybox", "sh", "-c", script) == 0
    done = subprocess.run(
        [sys.executable, "-m", "layercake.cli", "--store", str(store.path)]
        + ["logs", "ordered"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=True,
    )
    assert done.stdout == b"a\nb\nc\n"


def test_volume_rm_force_refuses_a_volume_in_use(cli, store, busybox, capfd):
    """volume rm -f keeps a volume a container uses, running or not, as docker."""
    assert (
        cli(
            "run",
            "-d",
            "--name",
            "user",
            "-v",
            "vol1:/v",
            "busybox",
            "sh",
            "-c",
            "echo persisted > /v/p; sleep 60",
        )
        == 0
    )
    short_id = capfd.readouterr().out.strip()[:12]
    assert cli("run", "--name", "done", "-v", "vol2:/v", "busybox", "true") == 0
    done_id = store.container("done").short_id
    capfd.readouterr()
    for flags in ((), ("-f",)):
        assert cli("volume", "rm", *flags, "vol1") == 125
        assert capfd.readouterr().err == (
            f"layercake: error: volume vol1 is in use by container {short_id}\n"
        )
        assert cli("volume", "rm", *flags, "vol2") == 125
        assert capfd.readouterr().err == (
            f"layercake: error: volume vol2 is in use by container {done_id}\n"
        )
    assert cli("volume", "prune", "--all") == 0
    assert capfd.readouterr().out == ""
    assert cli("exec", "user", "cat", "/v/p") == 0
    assert capfd.readouterr().out == "persisted\n"


def test_volume_rm_force_ignores_a_missing_volume(cli, capfd):
    """volume rm -f of a missing volume is no error; without -f it is."""
    assert cli("volume", "rm", "-f", "nosuch") == 0
    assert capfd.readouterr().out == "nosuch\n"
    assert cli("volume", "rm", "nosuch") == 125
    assert capfd.readouterr().err == "layercake: error: no such volume: nosuch\n"


def test_run_refuses_nonsense_limits_with_exit_125(cli, busybox, capfd):
    """--cpus -1, -m 1 and a relative -w fail as docker: one line, exit 125."""
    cpus = len(os.sched_getaffinity(0))
    cases = [
        (
            ("--cpus", "-1"),
            (
                f"Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} "
                "CPUs available"
            ),
        ),
        (("-m", "1"), "Minimum memory limit allowed is 6MB"),
        (
            ("-w", "relative"),
            (
                "the working directory 'relative' is invalid, it needs to be an "
                "absolute path"
            ),
        ),
    ]
    for flags, message in cases:
        assert cli("run", "--rm", *flags, "busybox", "true") == 125
        assert capfd.readouterr().err == f"layercake: error: {message}\n"
    assert cli("ps", "-a", "-q") == 0
    assert capfd.readouterr().out == ""


def test_run_rm_d_is_removed_by_its_monitor_when_it_exits(cli, busybox, store, capfd):
    """run --rm -d: once the process exits the container is gone with its
    directory, mounts, cgroup and network lease, as with docker."""
    if os.geteuid() != 0:
        missing("a bridge network's lease needs root")
    args = ("run", "--rm", "-d", "--name", "rmd", "--network", "bridge", "-m", "64m")
    try:
        assert cli(*args, "busybox", "sh", "-c", "echo hi; sleep 0.5") == 0
        container_id = capfd.readouterr().out.strip()
        container = store.container("rmd")
        cgroups = container.state().cgroup_paths
        lease = (
            store.path / "networks" / "bridge" / "endpoints" / f"{container_id}.json"
        )
        assert lease.exists()

        deadline = time.monotonic() + 20
        # The directory goes first, the lease a moment later.
        while (container.path.exists() or lease.exists()) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert cli("ps", "-a", "-q") == 0
        assert capfd.readouterr().out == ""
        assert not container.path.exists()
        assert [path for path in cgroups if os.path.exists(path)] == []
        assert container_id not in Path("/proc/self/mountinfo").read_text()
        assert not lease.exists()
    finally:
        for network in store.networks():
            if network.name != "bridge":
                store.remove_network(network.name)


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def get(port: int) -> bytes:
    """What httpd in the container answers through host port ``port``."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                body = b"".join(iter(lambda: conn.recv(65536), b""))
        except ConnectionResetError:
            body = b""
        if body or time.monotonic() > deadline:
            return body.partition(b"\r\n\r\n")[2]
        time.sleep(0.05)


def test_one_container_port_published_on_two_host_ports(cli, busybox, capfd):
    """-p A:80 -p B:80 publishes port 80 on both, as docker; port and inspect
    list both."""
    first, second = free_ports(2)
    script = "mkdir /w; echo two > /w/index.html; httpd -f -p 80 -h /w"
    publish = ("-p", f"127.0.0.1:{first}:80", "-p", f"127.0.0.1:{second}:80")
    assert (
        cli("run", "-d", *publish, "--name", "twop", "busybox", "sh", "-c", script) == 0
    )
    capfd.readouterr()

    assert cli("port", "twop") == 0
    assert capfd.readouterr().out == (
        f"80/tcp -> 127.0.0.1:{first}\n80/tcp -> 127.0.0.1:{second}\n"
    )
    assert cli("port", "twop", "80") == 0
    assert capfd.readouterr().out == f"127.0.0.1:{first}\n127.0.0.1:{second}\n"
    assert cli("ps", "--format", "json") == 0
    ports = json.loads(capfd.readouterr().out)["NetworkSettings"]["Ports"]
    assert ports == {
        "80/tcp": [
            {"HostIp": "127.0.0.1", "HostPort": str(first)},
            {"HostIp": "127.0.0.1", "HostPort": str(second)},
        ]
    }
    assert get(first) == b"two\n"
    assert get(second) == b"two\n"


def test_run_tmpfs_ro_and_unknown_options(cli, busybox, capfd):
    """--tmpfs /t:ro refuses writes; an unknown option fails with exit 125."""
    assert cli("run", "--rm", "--tmpfs", "/t:ro", "busybox", "touch", "/t/x") == 1
    assert capfd.readouterr().err == "touch: /t/x: Read-only file system\n"
    assert cli("run", "--rm", "--tmpfs", "/t:bogus", "busybox", "true") == 125
    assert capfd.readouterr().err == (
        "layercake: error: invalid tmpfs option 'bogus' in '/t:bogus'\n"
    )


def test_start_of_a_running_container_prints_its_name(cli, store, busybox, capfd):
    """start on a running container does nothing and exits 0, as docker."""
    assert cli("run", "-d", "--name", "web", "busybox", "sleep", "60") == 0
    capfd.readouterr()
    pid = store.container("web").state().pid
    assert cli("start", "web") == 0
    assert capfd.readouterr() == ("web\n", "")
    assert store.container("web").state().pid == pid


def test_stop_goes_on_past_a_missing_name_and_exits_1(cli, store, busybox, capfd):
    """stop nosuch web reports nosuch, still stops web, and exits 1, as docker."""
    assert cli("run", "-d", "--name", "web", "busybox", "sleep", "60") == 0
    capfd.readouterr()
    assert cli("stop", "-t", "0", "nosuch", "web") == 1
    out, err = capfd.readouterr()
    assert out == "web\n"
    assert err.startswith("layercake: error: no such container: nosuch")
    assert store.container("web").status == "exited"


def test_rm_takes_docker_s_volumes_flag(cli, store, busybox, capfd):
    """rm -fv removes the container, as docker's common spelling."""
    assert cli("run", "-d", "--name", "web", "busybox", "sleep", "60") == 0
    capfd.readouterr()
    assert cli("rm", "-fv", "web") == 0
    assert capfd.readouterr().out == "web\n"
    assert store.containers(all=True) == []


def test_ps_marks_a_paused_container(cli, busybox, capfd):
    """ps shows a paused container as Up ... (Paused), as docker."""
    assert cli("run", "-d", "--name", "frozen", "busybox", "sleep", "60") == 0
    assert cli("pause", "frozen") == 0
    capfd.readouterr()
    assert cli("ps") == 0
    row = capfd.readouterr().out.splitlines()[1]
    assert re.fullmatch(r".*   Up \d+ seconds? \(Paused\)   .*frozen", row), row


def test_a_port_that_cannot_be_published_is_named_in_the_error(cli, busybox, capfd):
    """-p with an address not the host's, or a host port in use, exits 125
    naming the address, both ports and the reason, attached or detached."""
    far_away = ("-p", "10.99.99.99:0:80")
    assert cli("run", "--name", "far", *far_away, "busybox", "true") == 125
    far = busybox.store.container("far").short_id
    assert capfd.readouterr().err == (
        f"layercake: error: container {far} failed to start: cannot publish "
        "10.99.99.99:0 -> 80/tcp: cannot assign requested address\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli("run", "-d", "--name", "used", "-p", f"{port}:80", "busybox") == 125
        used = busybox.store.container("used").short_id
        assert capfd.readouterr().err == (
            f"layercake: error: container {used} failed to start: cannot publish "
            f"127.0.0.1:{port} -> 80/tcp: address already in use\n"
        )


def test_start_of_a_dead_container_says_why_it_cannot_start(cli, busybox, capfd):
    """A container whose state.json cannot be read is dead: start exits 1
    saying so and how to remove it, not that it was already started."""
    assert cli("create", "--name", "broken", "busybox", "true") == 0
    container_id = capfd.readouterr().out.strip()
    state_file = busybox.store.path / "containers" / container_id / "state.json"
    state_file.write_text("")
    assert cli("start", "broken") == 1
    assert capfd.readouterr().err == (
        f"layercake: error: container {container_id[:12]} is dead and cannot be "
        f"started: cannot read {state_file}: Expecting value: line 1 column 1 "
        "(char 0); remove it with rm -f\n"
    )


def test_a_start_error_names_the_container_once(cli, busybox, capfd):
    """A container whose network lease is gone fails to start with its id
    said once, not once for the start and again for the reason."""
    assert cli("network", "create", "lonely") == 0
    assert cli("create", "--name", "member", "--network", "lonely", "busybox") == 0
    container_id = capfd.readouterr().out.splitlines()[-1]
    lease = busybox.store.path / "networks" / "lonely" / "endpoints"
    (lease / f"{container_id}.json").unlink()
    try:
        assert cli("start", "member") == 1
        assert capfd.readouterr().err == (
            f"layercake: error: container {container_id[:12]} failed to start: "
            "has no address on network lonely: the network was removed\n"
        )
    finally:
        cli("rm", "-f", "member")
        cli("network", "rm", "lonely")


def test_start_a_runs_in_the_foreground_and_exits_with_its_code(cli, busybox, capfd):
    """start -a of a created container, then of the exited one: its output on
    stdout and stderr, and its exit code, as docker start -a."""
    script = "echo out; echo err >&2; exit 3"
    assert cli("create", "--name", "fg", "busybox", "sh", "-c", script) == 0
    capfd.readouterr()
    assert cli("start", "-a", "fg") == 3
    assert capfd.readouterr() == ("out\n", "err\n")
    assert cli("start", "--attach", "fg") == 3
    assert capfd.readouterr() == ("out\n", "err\n")
    assert busybox.store.container("fg").state().exit_code == 3
    assert cli("logs", "fg") == 0
    assert capfd.readouterr() == ("out\nout\n", "err\nerr\n")


def test_start_a_of_a_command_that_cannot_run_exits_1(cli, busybox, capfd):
    """start -a of a container whose command is missing fails as start does."""
    assert cli("create", "--name", "nocmd", "busybox", "nosuchcmd") == 0
    container_id = capfd.readouterr().out.strip()
    assert cli("start", "-a", "nocmd") == 1
    assert capfd.readouterr() == (
        "",
        f"layercake: error: container {container_id[:12]} failed to start: "
        'exec: "nosuchcmd": executable file not found in $PATH\n',
    )


def test_start_ai_passes_stdin_on(store, busybox):
    """start -a -i writes the caller's stdin to the container's command."""
    import subprocess
    import sys

    layercake = [sys.executable, "-m", "layercake.cli", "--store", str(store.path)]
    subprocess.run(
        [*layercake, "create", "-i", "--name", "reader", "busybox", "tr", "a-z", "A-Z"],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    try:
        done = subprocess.run(
            [*layercake, "start", "-a", "-i", "reader"],
            input=b"hello\n",
            capture_output=True,
            check=False,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, b"HELLO\n", b"")
    finally:
        subprocess.run([*layercake, "rm", "-f", "reader"], capture_output=True)


def test_start_ai_of_a_container_created_without_i_gives_it_no_input(store, busybox):
    """As docker: -i of start passes stdin only to a container made with -i."""
    import subprocess
    import sys

    layercake = [sys.executable, "-m", "layercake.cli", "--store", str(store.path)]
    subprocess.run(
        [*layercake, "create", "--name", "deaf", "busybox", "sh", "-c", "cat; echo e"],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    try:
        done = subprocess.run(
            [*layercake, "start", "-a", "-i", "deaf"],
            input=b"hello\n",
            capture_output=True,
            check=False,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, b"e\n", b"")
    finally:
        subprocess.run([*layercake, "rm", "-f", "deaf"], capture_output=True)


def test_create_rm_is_removed_when_it_exits(cli, busybox, store, capfd):
    """create --rm, as docker's: start -a runs it and it is gone afterwards;
    started detached, its monitor removes it."""
    assert cli("create", "--rm", "--name", "once", "busybox", "sh", "-c", "exit 4") == 0
    capfd.readouterr()
    assert cli("start", "-a", "once") == 4
    assert cli("ps", "-a", "-q") == 0
    assert capfd.readouterr().out == ""

    assert cli("create", "--rm", "--name", "bg", "busybox", "true") == 0
    container = store.container("bg")
    assert cli("start", "bg") == 0
    deadline = time.monotonic() + 20
    while container.path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not container.path.exists()


def test_create_rm_with_a_restart_policy_is_refused(cli, busybox, capfd):
    """--rm and --restart always conflict for create as for run."""
    args = ("create", "--rm", "--restart", "always", "busybox", "true")
    assert cli(*args) == 125
    assert capfd.readouterr().err == (
        "layercake: error: conflicting options: "
        "cannot specify both --restart and --rm\n"
    )


@pytest.mark.parametrize(
    "verb",
    [
        ("ps", "-a", "-q"),
        ("ps", "-q"),
        ("prune",),
        ("create", "--name", "orphan", "--network", "none", "busybox"),
    ],
)
def test_a_run_rm_whose_cli_was_killed_goes_at_the_next_ps_or_prune(
    cli, busybox, store, capfd, verb
):
    """run --rm attached, its CLI killed with SIGKILL: the next ps, ps -a,
    prune, or create of its name removes the container with its mounts,
    cgroup and network lease, as docker's daemon removes it."""
    import signal
    import subprocess
    import sys

    if os.geteuid() != 0:
        missing("a bridge network's lease needs root")
    args = ("run", "--rm", "--name", "orphan", "--network", "bridge", "-m", "64m")
    starter = subprocess.Popen(
        [sys.executable, "-m", "layercake.cli", "--store", str(store.path)]
        + [*args, "busybox", "sleep", "60"],
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            running = [c for c in store.containers() if c.name == "orphan"]
            if running and running[0].state().pid:
                break
            time.sleep(0.05)
        (container,) = running
        cgroups = container.state().cgroup_paths
        lease = store.path / "networks" / "bridge" / "endpoints"
        lease = lease / f"{container.id}.json"
        assert lease.exists()
        starter.send_signal(signal.SIGKILL)
        assert starter.wait(10) == -signal.SIGKILL

        assert cli(*verb) == 0
        listed = capfd.readouterr().out.splitlines()
        if verb == ("prune",):
            assert listed[0] == f"Deleted Container: {container.id}"
        elif verb[0] == "create":
            assert [c.id for c in store.containers(all=True)] == listed
        else:
            assert listed == []
        assert not container.path.exists()
        assert [path for path in cgroups if os.path.exists(path)] == []
        assert container.id not in Path("/proc/self/mountinfo").read_text()
        assert not lease.exists()
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        for network in store.networks():
            store.remove_network(network.name)
