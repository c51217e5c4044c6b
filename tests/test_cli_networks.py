"""The network verbs and run's network flags, as a docker user types them.

They run as root and again, without root, in the unprivileged rerun
(tests/test_unprivileged_ci.py): a rootless user's networks live in a
namespace of its own, and the user sees the same output.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
from tests.conftest import remove_containers_and_networks

from layercake.cli import main

pytestmark = pytest.mark.usefixtures("container_runtime")


@pytest.fixture
def cli(store):
    """Run the CLI on the test's store; remove its containers and networks after."""

    def run(*args: str) -> int:
        return main(["--store", str(store.path), *args])

    yield run
    remove_containers_and_networks(store)


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

    assert cli("network", "rm", "front") == 1
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


def half_written(store, name: str) -> str:
    """Cut network ``name``'s record short, as a crash while writing it
    would; return the path of the record."""
    record = store.path / "networks" / name / "network.json"
    record.write_text('{"name":')
    return str(record)


def test_a_half_written_network_is_named_and_can_be_removed(cli, store, busybox, capfd):
    """ls warns with the file, run fails naming it, create says it exists, rm
    removes it."""
    assert cli("network", "create", "hw") == 0
    capfd.readouterr()
    record = half_written(store, "hw")
    reason = f"cannot read {record}: Expecting value: line 1 column 9 (char 8)"

    assert cli("network", "ls") == 0
    assert capfd.readouterr() == (
        "NETWORK ID   NAME   DRIVER   SCOPE\n",
        f"layercake: warning: network hw: {reason}\n",
    )
    assert cli("run", "--network", "hw", "busybox", "true") == 125
    assert capfd.readouterr().err == f"layercake: error: network hw: {reason}\n"
    assert cli("network", "create", "hw") == 125
    assert capfd.readouterr().err == (
        "layercake: error: network with name hw already exists "
        f"({reason}; network rm hw removes it)\n"
    )
    assert cli("network", "rm", "hw") == 0
    assert capfd.readouterr() == ("hw\n", "")
    assert not (store.path / "networks" / "hw").exists()
    assert cli("network", "create", "hw") == 0


def test_network_prune_removes_a_half_written_network(cli, store, capfd):
    """prune removes a network whose record cannot be read, and lists it."""
    assert cli("network", "create", "hw") == 0
    half_written(store, "hw")
    capfd.readouterr()
    assert cli("network", "prune", "-f") == 0
    assert capfd.readouterr().out == "Deleted Networks:\nhw\n"
    assert store.unreadable_networks() == {}


def test_network_rm_tries_every_name_and_exits_1_on_a_failure(cli, capfd):
    """rm nA nosuch nB removes nA and nB, names nosuch on stderr, exits 1."""
    assert cli("network", "create", "nA") == 0
    assert cli("network", "create", "nB") == 0
    capfd.readouterr()
    assert cli("network", "rm", "nA", "nosuch", "nB") == 1
    assert capfd.readouterr() == (
        "nA\nnB\n",
        "layercake: error: network nosuch not found\n",
    )
    assert cli("network", "ls", "-q") == 0
    assert capfd.readouterr().out == ""


def test_network_rm_of_a_predefined_network_says_so(cli, busybox, capfd):
    """bridge, host and none cannot be removed, in use or not, as docker says."""
    assert cli("create", "--network", "bridge", "busybox", "true") == 0
    capfd.readouterr()
    assert cli("network", "rm", "bridge", "host", "none") == 1
    assert capfd.readouterr() == (
        "",
        "layercake: error: bridge is a pre-defined network and cannot be removed\n"
        "layercake: error: host is a pre-defined network and cannot be removed\n"
        "layercake: error: none is a pre-defined network and cannot be removed\n",
    )


def test_network_create_takes_the_bridge_driver_only(cli, capfd):
    """-d bridge and --driver=bridge are accepted; another driver is named."""
    assert cli("network", "create", "-d", "bridge", "one") == 0
    assert cli("network", "create", "--driver=bridge", "two") == 0
    capfd.readouterr()
    assert cli("network", "create", "-d", "overlay", "three") == 125
    assert capfd.readouterr() == (
        "",
        'layercake: error: plugin "overlay" not found\n',
    )
    assert cli("network", "ls", "--format", "json") == 0
    names = [json.loads(line)["Name"] for line in capfd.readouterr().out.splitlines()]
    assert names == ["one", "two"]


@pytest.mark.parametrize("flag", ["-f", "--force"])
def test_system_prune_force_removes_unused_networks(cli, capfd, flag):
    """system prune -f (or --force) is accepted and removes unused networks."""
    assert cli("network", "create", "spare") == 0
    capfd.readouterr()
    assert cli("system", "prune", flag) == 0
    assert capfd.readouterr().out == (
        "Deleted Networks:\nspare\nTotal reclaimed space: 0B\n"
    )


def test_info_names_the_network_modes_of_this_user(cli, capfd):
    """info says which network modes there are and that TCP and UDP publish."""
    from layercake import _slirp

    assert cli("info") == 0
    (line,) = [
        text
        for text in capfd.readouterr().out.splitlines()
        if text.startswith("Networking: ")
    ]
    if os.geteuid() == 0:
        modes = (
            "bridge (default, on the host's layercake0), user-defined bridge networks"
        )
    elif _slirp.cause():
        modes = (
            f"bridge (default, loopback only here: {_slirp.cause()}), "
            "user-defined networks in a namespace the user owns"
        )
    else:
        modes = (
            "bridge (default, through slirp4netns), "
            "user-defined networks in a namespace the user owns"
        )
    assert line == (
        f"Networking: {modes}, none, host, container:<id>; "
        "published TCP and UDP ports"
    )


def test_run_host_network_discards_published_ports_with_a_warning(
    cli, store, busybox, capfd
):
    """--network host -p: docker's warning, and nothing is published."""
    flags = ("--name", "hn", "--network", "host", "-p", "8080:80")
    assert cli("create", *flags, "busybox", "true") == 0
    assert capfd.readouterr().err == (
        "WARNING: Published ports are discarded when using host network mode\n"
    )
    assert store.container("hn").record.ports == ()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("-p", "8080:80"),
            "port publishing and the container type network mode",
        ),
        (("--hostname", "other"), "hostname and the network mode"),
        (("--dns", "10.0.0.1"), "dns and the network mode"),
        (
            ("--add-host", "db:10.0.0.2"),
            "custom host-to-IP mapping and the network mode",
        ),
    ],
)
def test_run_container_network_refuses_conflicting_options(
    cli, busybox, capfd, flags, message
):
    """--network container:X with -p, --hostname, --dns or --add-host: docker's
    message, exit 125, and no container made."""
    assert cli("run", "--network", "container:x", *flags, "busybox", "true") == 125
    assert capfd.readouterr().err == (
        f"layercake: error: conflicting options: {message}\n"
    )
    assert cli("ps", "-a", "-q") == 0
    assert capfd.readouterr().out == ""


def test_a_network_without_outbound_access_is_a_warning(cli, busybox, capfd):
    """Rootless without slirp4netns, run on bridge and on a user network says
    on stderr why the container has no outbound access and what it has
    instead; as root, or where slirp4netns runs, nothing is said."""
    import os

    from layercake import _slirp

    reason = _slirp.cause() if os.geteuid() != 0 else ""
    listing = ("sh", "-c", "ip -4 -o addr | awk '{print $2}'")
    assert cli("run", "--rm", "busybox", *listing) == 0
    out, err = capfd.readouterr()
    if reason:
        assert (out, err) == (
            "lo\n",
            f"WARNING: no network for the container ({reason}): it has loopback "
            "only, without outbound access, as with --network none\n",
        )
    else:
        assert (out, err) == ("lo\neth0\n" if os.geteuid() == 0 else "lo\ntap0\n", "")

    assert cli("network", "create", "--subnet", "10.216.9.0/24", "outless") == 0
    capfd.readouterr()
    assert cli("run", "--rm", "--network", "outless", "busybox", *listing) == 0
    out, err = capfd.readouterr()
    assert out == "lo\neth0\n"
    assert err == (
        f"WARNING: network outless has no outbound access ({reason}): the "
        "container reaches only its network's members and its published ports\n"
        if reason
        else ""
    )
