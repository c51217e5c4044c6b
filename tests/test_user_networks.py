"""User-defined networks, as root and (in the unprivileged rerun) rootless.

Rootless, their bridges live in a network namespace the user owns; these
tests check what a user sees either way: names and aliases resolve, TCP
and UDP cross between members, ports publish, and nothing is left once the
last member is removed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import layercake
from layercake import _user_netns
from layercake._container import Container
from layercake._container_state import process_start_time
from layercake.errors import ContainerConfigError

pytestmark = pytest.mark.usefixtures("container_runtime")


def holder_record(store: layercake.Store) -> Path:
    """Where the store's user-owned network namespace is recorded."""
    return _user_netns.state_dir(store.path) / "netns.json"


def test_members_reach_each_other_by_name_and_alias_over_tcp_and_udp(
    busybox, networks
):
    """A member answers TCP by container name, and a UDP probe to its alias
    reaches it in one hop (busybox has no UDP server: traceroute's probe
    comes back as the member's port-unreachable)."""
    networks.create_network("appnet")
    server = Container(
        busybox,
        ["nc", "-ll", "-p", "7000", "-e", "echo", "tcp-answer"],
        name="server",
        network="appnet",
        network_aliases=["db"],
    )
    server.start()
    address = server.inspect()["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
    script = (
        "ping -c 1 -W 5 server | head -1; "
        # Until the server listens: it was only just started.
        "until nc -w 5 server 7000 </dev/null; do sleep 0.2; done; "
        "traceroute -n -q 1 -w 5 db 2>/dev/null | tail -1 | awk '{print $1, $2}'"
    )
    client = Container(busybox, ["sh", "-c", script], network="appnet")
    result = client.run(timeout=30)

    assert result.stdout.decode() == (
        f"PING server ({address}): 56 data bytes\ntcp-answer\n1 {address}\n"
    )
    hosts = server.exec(["cat", "/etc/hosts"]).stdout.decode()
    assert hosts.splitlines()[2] == f"{address}\t{server.short_id} server db"


def test_published_port_of_a_member_answers_on_the_host(busybox, networks):
    """-p 127.0.0.1::8080 on a user-defined network forwards to the member."""
    networks.create_network("webnet")
    server = Container(
        busybox,
        ["nc", "-ll", "-p", "8080", "-e", "echo", "hello from webnet"],
        network="webnet",
        ports={8080: ("127.0.0.1", None)},
    )
    server.start()
    port = server.host_port(8080)
    server.wait_for_port(8080)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        answer = connection.makefile("rb").read()
    assert answer == b"hello from webnet\n"


def test_nothing_of_the_network_is_left_after_the_last_member(busybox, networks):
    """After the last member goes, no holder, lease or state is left; the
    network itself stays until removed."""
    networks.create_network("shortnet")
    container = Container(busybox, ["sleep", "60"], network="shortnet")
    container.start()
    recorded = _user_netns.find(networks.path)
    if os.geteuid() != 0:
        assert recorded is not None
        assert json.loads(holder_record(networks).read_text())["pid"] == recorded.pid
    container.remove(force=True)

    assert _user_netns.find(networks.path) is None
    assert not holder_record(networks).exists()
    if recorded is not None:
        assert process_start_time(recorded.pid) is None
        assert recorded.slirp_pid == 0 or process_start_time(recorded.slirp_pid) is None
    assert networks.network_containers("shortnet") == []
    assert [n.name for n in networks.networks()] == ["shortnet"]


def test_members_of_two_networks_cannot_reach_each_other(busybox, networks):
    """A member of one network is not reachable by address from another's;
    a network whose bridge was made is removed while another's member runs."""
    networks.create_network("left")
    networks.create_network("right")
    networks.create_network("spare")
    server = Container(
        busybox,
        ["nc", "-ll", "-p", "7000", "-e", "echo", "left-answer"],
        network="left",
    )
    server.start()
    address = server.inspect()["NetworkSettings"]["Networks"]["left"]["IPAddress"]
    # Until the server listens: it was only just started.
    neighbour = Container(
        busybox,
        ["sh", "-c", f"until nc -w 2 {address} 7000 </dev/null; do sleep 0.2; done"],
        network="left",
    )
    stranger = Container(
        busybox, ["sh", "-c", f"nc -w 2 {address} 7000 </dev/null"], network="right"
    )
    passer = Container(busybox, ["true"], network="spare")
    passer.run(timeout=30)
    passer.remove()
    networks.remove_network("spare")

    assert neighbour.run(timeout=30).stdout.decode() == "left-answer\n"
    assert stranger.run(timeout=30).exit_code == 1
    assert [n.name for n in networks.networks()] == ["left", "right"]


def test_subnet_overlapping_another_network_is_refused(networks):
    """A subnet that overlaps another network's is refused, naming both."""
    networks.create_network("first", subnet="10.211.7.0/24")
    with pytest.raises(ContainerConfigError) as caught:
        networks.create_network("second", subnet="10.211.7.128/25")
    assert str(caught.value) == (
        "subnet 10.211.7.128/25 overlaps 10.211.7.0/24 of network 'first'"
    )


@pytest.fixture
def rootless() -> None:
    """Only an unprivileged user has a user-owned network namespace."""
    if os.geteuid() == 0:
        pytest.skip("root's bridges are on the host: no user-owned namespace")


@pytest.mark.usefixtures("rootless")
def test_another_process_of_the_user_reuses_the_namespace(busybox, networks):
    """A container started from another process joins the same holder."""
    networks.create_network("sharednet")
    first = Container(busybox, ["sleep", "60"], name="first", network="sharednet")
    first.start()
    holder = _user_netns.find(networks.path)
    assert holder is not None
    script = (
        "import sys, layercake\n"
        "from layercake import _user_netns\n"
        "from layercake._container import Container\n"
        "store = layercake.Store(sys.argv[1])\n"
        "second = Container(store.image('busybox'), ['sh', '-c', "
        "'ping -c 1 -W 5 first | head -1'], network='sharednet')\n"
        "result = second.run(timeout=30)\n"
        "second.remove()\n"
        "print(_user_netns.find(store.path).pid, result.stdout.decode(), end='')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(networks.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    address = first.inspect()["NetworkSettings"]["Networks"]["sharednet"]["IPAddress"]
    assert completed.stdout == (
        f"{holder.pid} PING first ({address}): 56 data bytes\n"
    ), completed.stderr


@pytest.mark.usefixtures("rootless")
def test_a_killed_holder_is_cleaned_by_the_next_ps_and_replaced_by_a_start(
    busybox, networks
):
    """ps removes the record of a killed holder; the next start makes a new one."""
    networks.create_network("crashnet")
    first = Container(busybox, ["sleep", "60"], network="crashnet")
    first.start()
    killed = _user_netns.find(networks.path)
    assert killed is not None
    os.kill(killed.pid, signal.SIGKILL)
    first.remove(force=True)

    assert networks.containers() == []
    assert not holder_record(networks).exists()
    second = Container(
        busybox, ["sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'"],
        network="crashnet",
    )
    assert second.run(timeout=30).stdout.decode().startswith("10.")
    second.remove()
    assert not holder_record(networks).exists()


@pytest.mark.usefixtures("rootless")
def test_a_holder_left_by_a_killed_monitor_is_stopped_by_the_next_ps(
    busybox, networks
):
    """A member whose monitor was killed ends; ps then stops the idle holder."""
    networks.create_network("orphannet")
    member = Container(busybox, ["sleep", "60"], network="orphannet")
    member.start(detach=True)
    holder = _user_netns.find(networks.path)
    assert holder is not None
    state = member.state()
    pid1 = os.pidfd_open(state.pid)
    os.kill(state.monitor_pid, signal.SIGKILL)
    # The container goes with its monitor (its lifeline); then ps tidies.
    try:
        assert select.select([pid1], [], [], 30)[0] == [pid1]
    finally:
        os.close(pid1)
    networks.containers()

    assert not holder_record(networks).exists()
    assert process_start_time(holder.pid) is None


@pytest.mark.usefixtures("rootless")
def test_the_end_of_an_attached_run_stops_the_unused_namespace(busybox, networks):
    """When the only member's attached run returns, its holder is gone."""
    networks.create_network("oncenet")
    member = Container(busybox, ["true"], network="oncenet")
    assert member.run(timeout=30).exit_code == 0

    assert not holder_record(networks).exists()
    assert [c.name for c in networks.network_containers("oncenet")] == [member.name]


@pytest.mark.usefixtures("rootless")
def test_rootless_subnet_overlapping_the_outbound_link_is_refused(networks):
    """Rootless, slirp4netns's 10.0.2.0/24 is taken: a subnet over it is refused."""
    with pytest.raises(ContainerConfigError) as caught:
        networks.create_network("clash", subnet="10.0.2.0/25")
    assert str(caught.value) == (
        "subnet 10.0.2.0/25 overlaps 10.0.2.0/24 of the outbound link of slirp4netns"
    )
    assert networks.networks() == []


def host_address() -> str:
    """The first global IPv4 address of the host, where a test server listens."""
    listing = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return listing[listing.index("inet") + 1].split("/")[0]


@pytest.mark.usefixtures("rootless")
def test_rootless_outbound_access_goes_through_slirp4netns(busybox, networks):
    """A member reaches a server on the host's address through slirp4netns;
    where slirp4netns cannot open /dev/net/tun, the holder says so and the
    member keeps the host's resolv.conf."""
    networks.create_network("outnet")
    tun_open = os.access("/dev/net/tun", os.R_OK | os.W_OK)
    # Keeps the holder, and its record, while the member runs and after.
    Container(busybox, ["sleep", "60"], network="outnet").start()
    holder_reason = json.loads(holder_record(networks).read_text())["outbound"]
    with socket.create_server((host_address(), 0)) as server:
        address, port = server.getsockname()[:2]
        member = Container(
            busybox,
            ["sh", "-c", f"cat /etc/resolv.conf; nc -w 5 {address} {port}"],
            network="outnet",
        )
        if tun_open:
            server.settimeout(30)
            accepted: list[bytes] = []

            def answer() -> None:
                client, _ = server.accept()
                with client:
                    client.sendall(b"outside\n")
                accepted.append(b"ok")

            thread = threading.Thread(target=answer, daemon=True)
            thread.start()
        result = member.run(timeout=30)
        if tun_open:
            thread.join()
            assert result.stdout.decode() == "nameserver 10.0.2.3\noutside\n"
            assert holder_reason == ""
        else:
            assert "nameserver 10.0.2.3" not in result.stdout.decode()
            assert result.exit_code == 1
            assert holder_reason == (
                "slirp4netns needs read and write access to /dev/net/tun"
            )
