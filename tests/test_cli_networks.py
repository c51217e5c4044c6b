"""The network verbs and run's network flags, as a docker user types them.

They run as root and again, without root, in the unprivileged rerun
(tests/test_unprivileged_ci.py): a rootless user's networks live in a
namespace of its own, and the user sees the same output.
"""

from __future__ import annotations

import json
import socket

import pytest

from layercake.cli import main

pytestmark = pytest.mark.usefixtures("container_runtime")


@pytest.fixture
def cli(store):
    """Run the CLI on the test's store; remove its containers and networks after."""

    def run(*args: str) -> int:
        return main(["--store", str(store.path), *args])

    yield run
    for container in store.containers(all=True):
        container.remove(force=True)
    for network in store.networks():
        store.remove_network(network.name)


def test_network_create_ls_inspect_rm(cli, store, busybox, capfd):
    """create prints the id; ls, inspect and rm show and remove the network."""
    assert cli("network", "create", "--subnet", "10.216.7.0/24", "front") == 0
    network_id = capfd.readouterr().out.strip()
    assert len(network_id) == 64
    assert cli("network", "ls") == 0
    assert capfd.readouterr().out == (
        "NETWORK ID     NAME    DRIVER   SCOPE\n"
        f"{network_id[:12]}   front   bridge   local\n"
    )
    assert cli("network", "ls", "-q") == 0
    assert capfd.readouterr().out == network_id[:12] + "\n"

    assert (
        cli(
            "run", "-d", "--name", "app", "--network", "front", "busybox", "sleep", "60"
        )
        == 0
    )
    container_id = capfd.readouterr().out.strip()
    assert cli("network", "inspect", "front") == 0
    (details,) = json.loads(capfd.readouterr().out)
    assert details["IPAM"]["Config"] == [
        {"Subnet": "10.216.7.0/24", "Gateway": "10.216.7.1"}
    ]
    assert details["Containers"] == {
        container_id: {
            "Name": "app",
            "MacAddress": "02:42:0a:d8:07:02",
            "IPv4Address": "10.216.7.2/24",
            "IPv6Address": "",
        }
    }
    assert details["Options"] == {
        "com.docker.network.bridge.name": "lcbr" + network_id[:10]
    }

    assert cli("network", "rm", "front") == 125
    assert capfd.readouterr().err == (
        "layercake: error: network front is in use by running containers: app\n"
    )
    assert cli("rm", "-f", "app") == 0
    capfd.readouterr()
    assert cli("network", "rm", "front") == 0
    assert capfd.readouterr().out == "front\n"
    assert cli("network", "ls", "-q") == 0
    assert capfd.readouterr().out == ""


def test_network_prune_lists_what_it_removed(cli, capfd):
    """prune removes networks no container uses and lists them."""
    assert cli("network", "create", "spare") == 0
    capfd.readouterr()
    assert cli("network", "prune", "-f") == 0
    assert capfd.readouterr().out == "Deleted Networks:\nspare\n"


def test_run_network_alias_resolves_on_the_network(cli, busybox, capfd):
    """--network NAME --network-alias ALIAS: another member reaches it by alias."""
    assert cli("network", "create", "back") == 0
    assert (
        cli(
            "run",
            "-d",
            "--name",
            "db",
            "--network",
            "back",
            "--network-alias",
            "database",
            "busybox",
            "sleep",
            "60",
        )
        == 0
    )
    capfd.readouterr()
    assert (
        cli(
            "run",
            "--rm",
            "--network",
            "back",
            "busybox",
            "sh",
            "-c",
            "ping -c 1 -W 5 database >/dev/null && echo reached",
        )
        == 0
    )
    assert capfd.readouterr().out == "reached\n"


def test_publish_udp_with_host_address_and_port_verb(cli, busybox, capfd):
    """-p 127.0.0.1:PORT:53/udp publishes UDP; port and ps show it as docker does."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert (
        cli(
            "run",
            "-d",
            "--name",
            "dns",
            "--network",
            "bridge",
            "-p",
            f"127.0.0.1:{free}:53/udp",
            "busybox",
            "sleep",
            "60",
        )
        == 0
    )
    capfd.readouterr()
    assert cli("port", "dns") == 0
    assert capfd.readouterr().out == f"53/udp -> 127.0.0.1:{free}\n"
    assert cli("port", "dns", "53/udp") == 0
    assert capfd.readouterr().out == f"127.0.0.1:{free}\n"
    assert cli("ps", "--format", "json") == 0
    (line,) = capfd.readouterr().out.splitlines()
    assert json.loads(line)["NetworkSettings"]["Ports"] == {
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": str(free)}]
    }


def test_run_on_an_unknown_network_fails_with_its_name(cli, busybox, capfd):
    """--network of a network that does not exist is one clear line, exit 125."""
    assert cli("run", "--network", "ghost", "busybox", "true") == 125
    assert capfd.readouterr().err == "layercake: error: network ghost not found\n"
