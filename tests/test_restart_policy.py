"""Restart policies: ``docker run --restart`` applied by a container's monitor."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from tests.conftest import missing

from layercake import Container
from layercake._restart_policy import Backoff
from layercake.errors import ContainerConfigError, ContainerError

pytestmark = pytest.mark.usefixtures("container_runtime")


def wait_for(condition, timeout: float = 15.0) -> None:
    """Poll ``condition`` until it is true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def cli_in_subprocess(store, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the layercake command in another process, as a second terminal would."""
    return subprocess.run(
        [sys.executable, "-m", "layercake.cli", "--store", str(store.path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_on_failure_2_ends_after_exactly_two_restarts(busybox):
    """on-failure:2 runs a failing command three times and keeps its exit code."""
    with Container(
        busybox, ["sh", "-c", "echo run; exit 3"], restart="on-failure:2"
    ) as container:
        started = time.monotonic()
        container.start(detach=True)
        assert container.wait(timeout=15) == 3
        # Docker's back-off: 100 ms before the first restart, 200 ms before
        # the second.
        assert time.monotonic() - started >= 0.3
        info = container.inspect()
        assert info["RestartCount"] == 2
        assert (info["State"]["Status"], info["State"]["ExitCode"]) == ("exited", 3)
        assert info["State"]["Restarting"] is False
        assert container.logs() == b"run\nrun\nrun\n"


def test_on_failure_does_not_restart_a_command_that_exits_0(busybox):
    """on-failure restarts only a non-zero exit."""
    with Container(busybox, ["echo", "once"], restart="on-failure") as container:
        container.start(detach=True)
        assert container.wait(timeout=15) == 0
        assert (container.inspect()["RestartCount"], container.logs()) == (0, b"once\n")


def test_back_off_doubles_from_100_ms_to_a_minute_and_resets_after_10_s():
    """The delays before restarts follow Docker's restart manager."""
    backoff = Backoff()
    delays = [backoff.delay(0.5) for _ in range(12)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 60, 60]
    assert backoff.delay(10.0) == 0.1
    assert backoff.delay(9.9) == 0.2


def test_no_never_restarts(busybox):
    """The default policy "no" leaves a failed container exited after one run."""
    with Container(busybox, ["sh", "-c", "echo run; exit 1"]) as container:
        container.start(detach=True)
        assert container.wait(timeout=15) == 1
        time.sleep(0.3)
        info = container.inspect()
        assert (info["RestartCount"], info["State"]["Status"]) == (0, "exited")
        assert container.logs() == b"run\n"


def test_always_restarts_a_command_that_exits_0_until_stopped(busybox):
    """always restarts on exit 0; stop ends it and no run follows."""
    with Container(busybox, ["echo", "run"], restart="always") as container:
        container.start(detach=True)
        wait_for(lambda: container.inspect()["RestartCount"] >= 2)
        assert container.stop(timeout=2) == 0
        count = container.inspect()["RestartCount"]
        time.sleep(1.0)
        info = container.inspect()
        assert (info["State"]["Status"], info["RestartCount"]) == ("exited", count)
        assert container.logs() == b"run\n" * (count + 1)


def test_restarted_process_keeps_the_writable_layer(busybox):
    """Every run of a restarted container sees what the runs before it wrote."""
    script = "echo x >> /runs; wc -l < /runs; exit 1"
    with Container(busybox, ["sh", "-c", script], restart="on-failure:2") as container:
        container.start(detach=True)
        assert container.wait(timeout=15) == 1
        assert container.logs() == b"1\n2\n3\n"


def test_stop_from_another_process_during_back_off_ends_it(busybox):
    """A stop while the monitor waits to restart ends the container at once."""
    store = busybox.store
    with Container(busybox, ["sh", "-c", "echo run; exit 1"], restart="always") as c:
        c.start(detach=True)
        # By the fourth restart the back-off is 800 ms: time to stop it in.
        wait_for(lambda: c.inspect()["RestartCount"] >= 3 and c.status == "restarting")
        done = cli_in_subprocess(store, "stop", c.id)
        assert (done.returncode, done.stdout, done.stderr) == (0, c.id + "\n", "")
        info = c.inspect()
        assert (info["State"]["Status"], info["State"]["ExitCode"]) == ("exited", 1)
        runs = info["RestartCount"] + 1
        time.sleep(2.0)
        assert c.inspect()["RestartCount"] == runs - 1
        assert c.logs() == b"run\n" * runs


def test_unless_stopped_restarts_until_killed_from_another_process(busybox):
    """unless-stopped restarts a failed run; kill from elsewhere ends it."""
    store = busybox.store
    script = "if [ -e /ran ]; then echo again; sleep 30; fi; touch /ran; exit 1"
    with Container(busybox, ["sh", "-c", script], restart="unless-stopped") as c:
        c.start(detach=True)
        wait_for(lambda: c.logs() == b"again\n")
        done = cli_in_subprocess(store, "kill", c.name)
        assert (done.returncode, done.stdout, done.stderr) == (0, c.name + "\n", "")
        assert c.wait(timeout=10) == 137
        time.sleep(1.0)
        info = c.inspect()
        assert (info["State"]["Status"], info["RestartCount"]) == ("exited", 1)


def test_remove_force_of_a_restarting_container(busybox):
    """rm -f takes a container that waits to restart, and nothing runs after."""
    container = Container(busybox, ["sh", "-c", "exit 1"], restart="always")
    container.start(detach=True)
    wait_for(lambda: container.status == "restarting")
    path = container.path
    container.remove(force=True)
    assert not path.exists()
    time.sleep(0.5)
    assert not path.exists()


def test_inspect_reports_the_policy_and_the_restarts(busybox):
    """inspect() has HostConfig.RestartPolicy, RestartCount and State.Restarting."""
    policies = {
        "no": {"Name": "no", "MaximumRetryCount": 0},
        "": {"Name": "no", "MaximumRetryCount": 0},
        "always": {"Name": "always", "MaximumRetryCount": 0},
        "unless-stopped": {"Name": "unless-stopped", "MaximumRetryCount": 0},
        "on-failure": {"Name": "on-failure", "MaximumRetryCount": 0},
        "on-failure:5": {"Name": "on-failure", "MaximumRetryCount": 5},
    }
    for text, expected in policies.items():
        with Container(busybox, ["true"], restart=text) as container:
            info = container.inspect()
            assert info["HostConfig"]["RestartPolicy"] == expected
            assert (info["RestartCount"], info["State"]["Restarting"]) == (0, False)

    with Container(busybox, ["sh", "-c", "exit 4"], restart="always") as container:
        container.start(detach=True)
        wait_for(lambda: container.inspect()["RestartCount"] >= 3)
        wait_for(lambda: container.status == "restarting")
        state = container.inspect()["State"]
        assert {k: state[k] for k in ("Status", "Running", "Restarting", "Pid")} == {
            "Status": "restarting",
            "Running": True,
            "Restarting": True,
            "Pid": 0,
        }
        assert state["ExitCode"] == 4


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            "sometimes",
            (
                "invalid restart policy: unknown policy 'sometimes'; use one "
                "of 'no', 'always', 'on-failure', or 'unless-stopped'"
            ),
        ),
        (
            "always:2",
            (
                "invalid restart policy: maximum retry count can only be used "
                "with 'on-failure'"
            ),
        ),
        (
            "no:-1",
            (
                "invalid restart policy: maximum retry count can only be used "
                "with 'on-failure' and cannot be negative"
            ),
        ),
        (
            "on-failure:-1",
            "invalid restart policy: maximum retry count cannot be negative",
        ),
        (
            "on-failure:x",
            "invalid restart policy format: maximum retry count must be an integer",
        ),
        (
            "always:2:3",
            "invalid restart policy format: maximum retry count must be an integer",
        ),
        (":1", "invalid restart policy format: no policy provided before colon"),
    ],
)
def test_bad_policy_strings_are_refused_with_dockers_message(busybox, policy, message):
    """A value that is no policy is a ContainerConfigError with docker's words."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], restart=policy)
    assert str(caught.value) == message
    assert list(busybox.store.containers(all=True)) == []


def test_image_run_refuses_a_restart_policy_as_docker_run_rm(busybox):
    """Image.run is docker run --rm: a policy other than "no" is refused."""
    with pytest.raises(ContainerConfigError) as caught:
        busybox.run(["true"], restart="always")
    assert str(caught.value) == (
        "conflicting options: cannot specify both --restart and --rm"
    )
    assert busybox.run(["echo", "hi"], restart="no").stdout == b"hi\n"


def test_cli_rm_with_restart_is_refused(cli, busybox, capfd):
    """run --rm --restart always fails as docker's does, creating nothing."""
    assert cli("run", "--rm", "--restart", "always", "busybox", "true") == 125
    assert capfd.readouterr().err == (
        "layercake: error: conflicting options: cannot specify both --restart "
        "and --rm\n"
    )
    assert cli("run", "--rm", "--restart", "no", "busybox", "true") == 0
    assert cli("ps", "-a", "-q") == 0
    assert capfd.readouterr().out == ""


def test_cli_bad_restart_policy_is_refused(cli, busybox, capfd):
    """create --restart with a bad value prints docker's message."""
    assert cli("create", "--restart", "on-failure:x", "busybox", "true") == 125
    assert capfd.readouterr().err == (
        "layercake: error: invalid restart policy format: maximum retry count "
        "must be an integer\n"
    )


def test_cli_ps_shows_restarting_with_the_exit_code(cli, busybox, capfd):
    """ps shows "Restarting (N) X seconds ago" while the back-off runs."""
    assert (
        cli(
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            "flaky",
            "busybox",
            "sh",
            "-c",
            "exit 2",
        )
        == 0
    )
    capfd.readouterr()
    pattern = re.compile(r"Restarting \(2\) \d+ seconds? ago")

    def shows_restarting() -> bool:
        cli("ps")
        return bool(pattern.search(capfd.readouterr().out))

    wait_for(shows_restarting)
    assert cli("inspect", "flaky") == 0
    assert json.loads(capfd.readouterr().out)[0]["HostConfig"]["RestartPolicy"] == {
        "Name": "always",
        "MaximumRetryCount": 0,
    }
    assert cli("rm", "-f", "flaky") == 0


def test_cli_attached_run_returns_the_first_exit_and_restarts_in_background(
    cli, busybox, capfd
):
    """Attached, run returns the first run's code; the policy goes on detached."""
    assert (
        cli(
            "run",
            "--restart",
            "on-failure:2",
            "--name",
            "att",
            "busybox",
            "sh",
            "-c",
            "echo run; exit 3",
        )
        == 3
    )
    assert capfd.readouterr().out == "run\n"
    container = busybox.store.container("att")
    assert container.wait(timeout=15) == 3
    assert container.inspect()["RestartCount"] == 2
    assert container.logs() == b"run\nrun\nrun\n"


def test_cli_start_of_a_stopped_always_container_restarts_it(cli, busybox, capfd):
    """start after a stop runs the policy again, from a restart count of 0."""
    assert (
        cli(
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            "loop",
            "busybox",
            "echo",
            "run",
        )
        == 0
    )
    container = busybox.store.container("loop")
    wait_for(lambda: container.inspect()["RestartCount"] >= 1)
    assert cli("stop", "loop") == 0
    assert container.status == "exited"
    assert cli("start", "loop") == 0
    wait_for(lambda: container.inspect()["RestartCount"] >= 1)
    assert container.status in ("running", "restarting")


def test_published_port_reaches_each_restarted_run(busybox):
    """The forwarder follows the restarted process into its new namespace."""
    script = "echo ok | nc -l -p 8080; exit 1"
    with Container(
        busybox, ["sh", "-c", script], restart="on-failure:3", ports={8080: 0}
    ) as container:
        container.start(detach=True)
        port = container.host_port(8080)

        def answer() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                return conn.recv(16)

        for restarts in (0, 1):
            wait_for(
                lambda r=restarts: (
                    container.inspect()["RestartCount"] == r
                    and container.status == "running"
                )
            )
            wait_for(lambda: answer() == b"ok\n")
        assert container.inspect()["RestartCount"] >= 1


def test_start_after_the_monitor_died_applies_the_policy_again(cli, busybox, capfd):
    """With no daemon, a dead monitor (as after a reboot) restarts nothing;
    layercake start brings the container back with its policy."""
    assert (
        cli(
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            "svc",
            "busybox",
            "sh",
            "-c",
            "echo run; sleep 0.3",
        )
        == 0
    )
    container = busybox.store.container("svc")
    wait_for(lambda: container.inspect()["RestartCount"] >= 1)
    monitor = container.state().monitor_pid
    os.kill(monitor, signal.SIGKILL)
    wait_for(lambda: container.status == "exited")
    state = container.inspect()["State"]
    assert (state["ExitCode"], state["Error"]) == (
        137,
        "the container's monitor process died",
    )
    capfd.readouterr()
    assert cli("start", "svc") == 0
    assert capfd.readouterr().out == "svc\n"
    wait_for(lambda: container.inspect()["RestartCount"] >= 1)
    assert container.state().monitor_pid != monitor


def test_bridge_network_is_configured_again_for_each_run(busybox, store):
    """Each restarted run gets the container's address on its bridge network."""
    if os.geteuid() != 0:
        missing("bridge networks need root")
    script = "ip -4 -o addr show eth0 | awk '{print $4}'; exit 1"
    with Container(
        busybox, ["sh", "-c", script], network="bridge", restart="on-failure:2"
    ) as container:
        container.start(detach=True)
        assert container.wait(timeout=15) == 1
        (network,) = store.networks()
        lease = store.path / f"networks/bridge/endpoints/{container.id}.json"
        address = json.loads(lease.read_text())["address"]
        prefix = network.subnet.split("/")[1]
        assert container.logs() == f"{address}/{prefix}\n".encode() * 3


def test_oom_killed_describes_the_last_run_only(busybox):
    """A run after an OOM-killed one that exits by itself is not OOMKilled."""
    script = (
        "if [ -e /oomed ]; then exit 1; fi; touch /oomed; "
        "exec dd if=/dev/zero of=/dev/null bs=64M count=1"
    )
    with Container(
        busybox,
        ["sh", "-c", script],
        memory=16 * 1024 * 1024,
        restart="on-failure:1",
    ) as container:
        container.start(detach=True)
        assert container.wait(timeout=15) == 1
        info = container.inspect()
        if info["Warnings"]:
            missing(info["Warnings"][0])
        assert (info["RestartCount"], info["State"]["OOMKilled"]) == (1, False)


def test_sdk_run_returns_the_first_result_and_restarts_in_background(busybox):
    """Container.run() returns the first run; the policy restarts it detached."""
    with Container(
        busybox, ["sh", "-c", "echo run; exit 2"], restart="on-failure:1"
    ) as container:
        result = container.run()
        assert (result.exit_code, result.stdout) == (2, b"run\n")
        assert container.wait(timeout=15) == 2
        assert container.inspect()["RestartCount"] == 1
        assert container.logs() == b"run\nrun\n"


def test_other_signals_and_exec_wait_for_a_restarting_container(busybox):
    """kill -s HUP and exec are refused while the container waits to restart."""
    with Container(busybox, ["sh", "-c", "exit 1"], restart="always") as container:
        container.start(detach=True)
        # The fifth restart comes 3.2 s after the fourth run: time to ask.
        wait_for(
            lambda: (
                container.inspect()["RestartCount"] >= 4
                and container.status == "restarting"
            )
        )
        message = (
            f"container {container.short_id} is restarting, wait until the "
            "container is running"
        )
        with pytest.raises(ContainerError) as caught:
            container.kill(signal.SIGHUP)
        assert str(caught.value) == message
        with pytest.raises(ContainerError) as caught:
            container.exec(["true"])
        assert str(caught.value) == message
        assert container.status == "restarting"
