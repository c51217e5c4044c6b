"""--add-host, --dns, --dns-search and --dns-option, through the SDK and the CLI."""

from __future__ import annotations

import json
import os

import pytest

from layercake import _slirp
from layercake._container import Container
from layercake.cli import main
from layercake.errors import ContainerConfigError

pytestmark = pytest.mark.usefixtures("container_runtime")

HEAD = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
SCRIPT = ["sh", "-c", "cat /etc/hosts; echo --; cat /etc/resolv.conf"]


def host_lines(kind: str) -> list[str]:
    """The host's resolv.conf lines of one kind (nameserver, search, options)."""
    with open("/etc/resolv.conf") as file:
        lines = file.read().splitlines()
    return [line for line in lines if line.split()[:1] == [kind]]


def test_extra_hosts_and_dns_settings_fill_hosts_and_resolv_conf(busybox):
    """Entries come before the container's own line; servers, search and
    options replace the host's, in docker's order."""
    with Container(
        busybox,
        SCRIPT,
        network="none",
        extra_hosts=["db:10.1.2.3", "six:::1", "api=10.1.2.4"],
        dns=["9.9.9.9", "2620:fe::fe"],
        dns_search=["example.com", "corp.example"],
        dns_options=["ndots:2", "timeout:1"],
    ) as container:
        result = container.run()
        host_config = container.inspect()["HostConfig"]
    assert (result.exit_code, result.stdout.decode()) == (
        0,
        HEAD + "10.1.2.3\tdb\n::1\tsix\n10.1.2.4\tapi\n"
        f"127.0.0.1\t{container.short_id}\n"
        "--\n"
        "nameserver 9.9.9.9\nnameserver 2620:fe::fe\n"
        "search example.com corp.example\noptions ndots:2 timeout:1\n",
    )
    keys = ("ExtraHosts", "Dns", "DnsSearch", "DnsOptions")
    assert {key: host_config[key] for key in keys} == {
        "ExtraHosts": ["db:10.1.2.3", "six:::1", "api:10.1.2.4"],
        "Dns": ["9.9.9.9", "2620:fe::fe"],
        "DnsSearch": ["example.com", "corp.example"],
        "DnsOptions": ["ndots:2", "timeout:1"],
    }


def test_a_search_of_dot_drops_the_search_line_and_keeps_the_hosts_servers(busybox):
    """--dns-search . means no search domain; without --dns the host's
    servers stay, as docker keeps them."""
    with Container(
        busybox,
        ["cat", "/etc/resolv.conf"],
        network="none",
        dns_search=["."],
        dns_options=["ndots:1"],
    ) as container:
        result = container.run()
    servers = "".join(f"{line}\n" for line in host_lines("nameserver"))
    assert result.stdout.decode() == servers + "options ndots:1\n"


def test_a_container_without_flags_has_no_extra_lines(busybox):
    """Without the flags, inspect shows docker's empty values."""
    with Container(busybox, ["true"], network="none") as container:
        host_config = container.inspect()["HostConfig"]
    keys = ("ExtraHosts", "Dns", "DnsSearch", "DnsOptions")
    assert [host_config[key] for key in keys] == [None, [], [], []]


def test_host_gateway_is_the_default_bridges_address(busybox, store):
    """host-gateway reaches the host: the default bridge's gateway as root,
    slirp4netns's rootless."""
    if os.geteuid() != 0 and _slirp.unusable():
        with pytest.raises(ContainerConfigError) as caught:
            Container(busybox, ["true"], extra_hosts={"gateway": "host-gateway"})
        assert str(caught.value) == (
            "add-host host-gateway needs root, or network 'bridge' through "
            "slirp4netns without it"
        )
        return
    with Container(
        busybox, ["cat", "/etc/hosts"], extra_hosts={"gateway": "host-gateway"}
    ) as container:
        if os.geteuid() == 0:
            (network,) = store.networks()
            gateway = network.gateway
        else:
            gateway = _slirp.GATEWAY
        result = container.run()
    lines = result.stdout.decode().splitlines()
    assert lines[2] == f"{gateway}\tgateway"


def test_a_user_network_members_hosts_file_has_its_extra_hosts(busybox, store):
    """On a user-defined network the entries precede the member's own line."""
    if os.geteuid() != 0:
        pytest.skip("user-defined networks need root")
    store.create_network("namesnet")
    try:
        with Container(
            busybox,
            ["cat", "/etc/hosts"],
            name="member",
            network="namesnet",
            extra_hosts=["db:10.1.2.3"],
        ) as container:
            lease = store.path / f"networks/namesnet/endpoints/{container.id}.json"
            address = json.loads(lease.read_text())["address"]
            result = container.run()
    finally:
        store.remove_network("namesnet")
    assert result.stdout.decode() == (
        HEAD + f"10.1.2.3\tdb\n{address}\t{container.short_id} member\n"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"extra_hosts": ["nocolon"]}, 'bad format for add-host: "nocolon"'),
        ({"extra_hosts": ["db:"]}, 'bad format for add-host: "db:"'),
        (
            {"extra_hosts": ["db:not-an-ip"]},
            'invalid IP address in add-host: "not-an-ip"',
        ),
        ({"dns": ["resolver"]}, "resolver is not an ip address"),
        (
            {"network": "container:other", "dns": ["9.9.9.9"]},
            "conflicting options: dns and the network mode",
        ),
        (
            {"network": "container:other", "extra_hosts": ["db:10.1.2.3"]},
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
    ],
)
def test_malformed_settings_are_refused_with_dockers_messages(
    busybox, store, settings, message
):
    """Nothing is created when an entry is malformed."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], **settings)
    assert str(caught.value) == message
    assert store.containers(all=True) == []


def test_cli_run_takes_the_docker_flags(busybox, store, capfd):
    """run --add-host --dns --dns-search --dns-option, as a docker user types them."""
    code = main(
        [
            "--store",
            str(store.path),
            "run",
            "--rm",
            "--network",
            "none",
            "--hostname",
            "box",
            "--add-host",
            "db:10.1.2.3",
            "--dns",
            "9.9.9.9",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:2",
            "busybox",
            *SCRIPT,
        ]
    )
    assert (code, capfd.readouterr().out) == (
        0,
        HEAD + "10.1.2.3\tdb\n127.0.0.1\tbox\n--\n"
        "nameserver 9.9.9.9\nsearch example.com\noptions ndots:2\n",
    )


def test_cli_bad_add_host_exits_125_with_the_entry(busybox, store, capfd):
    """A malformed --add-host is an argument error: exit 125 naming it."""
    code = main(
        [
            *("--store", str(store.path), "run", "--rm"),
            *("--add-host", "db", "busybox", "true"),
        ]
    )
    assert (code, capfd.readouterr().err) == (
        125,
        'layercake: error: bad format for add-host: "db"\n',
    )
