"""Bridge networks: addresses, outbound access, names, published ports, cleanup."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import busybox_context, missing

import layercake
from layercake import _bridge
from layercake._container import Container
from layercake.errors import ContainerConfigError, ContainerError

pytestmark = pytest.mark.usefixtures("container_runtime", "as_root")


@pytest.fixture
def as_root() -> None:
    """Bridge networks need root (rootless 'bridge' is slirp4netns)."""
    if os.geteuid() != 0:
        missing("bridge networks need root")


def links() -> str:
    """The host's network device names, one a line."""
    return subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout


LEASES = Path("/run/layercake/bridge/leases")


def lease_holders() -> dict[str, str]:
    """The default bridge's leases: container directory to address."""
    holders = {}
    for entry in os.listdir(LEASES):
        try:
            holders[os.readlink(LEASES / entry)] = entry
        except FileNotFoundError:
            continue  # given back meanwhile, by another test's container
    return holders


def nft_rules() -> list[str]:
    """The rules of the host's nft ruleset that masquerade or drop."""
    listing = subprocess.run(
        ["nft", "list", "ruleset"], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.strip()
        for line in listing.splitlines()
        if " masquerade" in line or " drop" in line
    ]


def test_bridge_container_gets_an_address_a_route_and_its_hosts_entry(
    busybox, networks
):
    """The default network puts eth0 on the host's layercake0, in its subnet."""
    script = "ip -4 -o addr show eth0 | awk '{print $4}'; ip route; cat /etc/hosts"
    with Container(busybox, ["sh", "-c", script]) as container:
        (network,) = networks.networks()
        lease = json.loads(
            (networks.path / f"networks/bridge/endpoints/{container.id}.json")
            .read_text()
        )
        address = lease["address"]
        assert os.readlink(LEASES / address) == str(container.path)
        assert ipaddress.IPv4Address(address) in ipaddress.IPv4Network(
            network.subnet
        )
        prefix = network.subnet.split("/")[1]
        result = container.run()
        assert result.exit_code == 0
        assert result.stdout.decode() == (
            f"{address}/{prefix}\n"
            f"default via {network.gateway} dev eth0 \n"
            f"{network.subnet} dev eth0 scope link  src {address} \n"
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{address}\t{container.short_id}\n"
        )
        assert (network.name, network.device) == ("bridge", "layercake0")
        assert container.inspect()["HostConfig"]["NetworkMode"] == "bridge"


def test_after_rm_no_veth_lease_or_rule_is_left_and_the_bridge_stays(
    busybox, networks
):
    """Removal takes the container's veth, lease and store record; layercake0
    stays, as docker0 does, and no nft rule names the container."""
    container = Container(busybox, ["true"])
    address = json.loads(
        (networks.path / f"networks/bridge/endpoints/{container.id}.json").read_text()
    )["address"]
    container.start()
    container.wait(10)
    container.remove()
    assert networks.networks() == []
    assert _bridge.veth_name(container.id) not in links()
    # Another test's container may take the address at once: not this one.
    assert str(container.path) not in lease_holders()
    assert not (networks.path / "networks" / "bridge").exists()
    assert "layercake0" in links()
    veth = _bridge.veth_name(container.id)
    assert [r for r in nft_rules() if f"{address} " in r or veth in r] == []


def test_two_stores_at_once_get_different_addresses(
    busybox, networks, busybox_rootfs, tmp_path
):
    """Stores share the host's default bridge: their leases never collide."""
    other_store = layercake.Store(tmp_path / "other")
    other = layercake.Builder(other_store).build(
        busybox_context(tmp_path / "other-context", busybox_rootfs)
    )
    with Container(busybox, ["true"]) as first, Container(other, ["true"]) as second:
        (mine,) = networks.networks()
        (theirs,) = other_store.networks()
        holders = lease_holders()
        addresses = {holders[str(first.path)], holders[str(second.path)]}
        assert mine == theirs
        assert len(addresses) == 2
        subnet = ipaddress.IPv4Network(mine.subnet)
        assert all(ipaddress.IPv4Address(a) in subnet for a in addresses)


def test_a_deleted_store_gives_its_leases_back(busybox, networks, tmp_path):
    """Leases of containers whose directories vanished are reclaimed by the next."""
    gone = Container(busybox, ["true"])
    assert str(gone.path) in lease_holders()
    shutil.rmtree(gone.path)
    with Container(busybox, ["true"]):
        assert str(gone.path) not in lease_holders()
    assert not (networks.path / "networks" / "bridge").exists()


def test_a_removal_gives_back_the_leases_of_deleted_stores_too(busybox, networks):
    """Removing a container also takes back the leases and endpoints of
    containers whose directories vanished."""
    kept = Container(busybox, ["true"])
    gone = Container(busybox, ["true"])
    shutil.rmtree(gone.path)
    kept.remove()
    assert {str(kept.path), str(gone.path)} & set(lease_holders()) == set()
    assert not (networks.path / "networks" / "bridge").exists()


def test_a_container_reaches_a_server_on_the_bridge_address(busybox, networks):
    """A host server listening on the gateway (not 0.0.0.0) answers a container."""
    holder = Container(busybox, ["true"])
    gateway = networks.network("bridge").gateway
    listener = socket.create_server((gateway, 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        client, peer = listener.accept()
        client.sendall(f"hello {peer[0]}\n".encode())
        client.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with Container(
            busybox,
            ["nc", "-w", "5", gateway, str(port)],
        ) as client:
            address = json.loads(
                (networks.path / f"networks/bridge/endpoints/{client.id}.json")
                .read_text()
            )["address"]
            result = client.run(timeout=30)
    finally:
        listener.close()
        holder.remove()
    assert (result.exit_code, result.stdout.decode()) == (0, f"hello {address}\n")


def test_a_container_reaches_a_published_port_of_another_via_the_host(
    busybox, networks
):
    """A port published on the bridge address serves other default-bridge containers."""
    probe = Container(busybox, ["true"])
    gateway = networks.network("bridge").gateway
    serve = "mkdir /www && echo served > /www/index.html && httpd -f -p 80 -h /www"
    with Container(
        busybox, ["sh", "-c", serve], ports={80: (gateway, 0)}
    ) as server:
        server.start()
        port = server.host_port(80)
        fetch = (
            f"for i in $(seq 100); do wget -q -O - http://{gateway}:{port}/ "
            "&& break; sleep 0.1; done"
        )
        with Container(busybox, ["sh", "-c", fetch]) as client:
            result = client.run(timeout=30)
    probe.remove()
    assert (result.exit_code, result.stdout.decode()) == (0, "served\n")


def test_names_do_not_resolve_between_default_bridge_containers(busybox, networks):
    """As on Docker's default network, a container's name means nothing to another."""
    with Container(busybox, ["sleep", "60"], name="quiet") as quiet, Container(
        busybox, ["sleep", "60"], name="asker"
    ) as asker:
        quiet.start()
        asker.start()
        address = asker.inspect()["NetworkSettings"]["IPAddress"]
        hosts = asker.exec(["cat", "/etc/hosts"]).stdout.decode()
        lookup = asker.exec(["ping", "-c", "1", "-W", "1", "quiet"])
    assert hosts == (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"{address}\t{asker.short_id}\n"
    )
    assert (lookup.exit_code, lookup.stderr.decode()) == (
        1,
        "ping: bad address 'quiet'\n",
    )


def test_lease_of_a_vanished_container_is_freed(busybox, networks):
    """A lease whose container directory is gone (a crash) is reused."""
    network = networks.create_network("crashnet")
    first = Container(busybox, ["true"], network="crashnet")
    shutil.rmtree(networks.path / "containers" / first.id)
    second = Container(busybox, ["true"], network="crashnet")
    endpoints = networks.path / "networks" / "crashnet" / "endpoints"
    assert sorted(p.name for p in endpoints.iterdir()) == [f"{second.id}.json"]
    hosts = ipaddress.IPv4Network(network.subnet).hosts()
    next(hosts)
    lease = json.loads((endpoints / f"{second.id}.json").read_text())
    assert lease["address"] == str(next(hosts))


@pytest.fixture
def server_namespace() -> Iterator[tuple[str, str, str]]:
    """A network namespace with a veth to the host: (name, host side, far side)."""
    taken = [route for route, _ in _bridge.host_routes()]
    pool = ipaddress.IPv4Network("10.214.0.0/16").subnets(new_prefix=30)
    start = secrets.randbelow(16000)
    subnet = next(
        s
        for i, s in enumerate(pool)
        if i >= start and not any(s.overlaps(t) for t in taken)
    )
    near, far = (str(a) for a in subnet.hosts())
    tag = secrets.token_hex(4)
    name, host_end, far_end = f"lctest{tag}", f"lct{tag}a", f"lct{tag}b"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        commands = [
            f"link add {host_end} type veth peer name {far_end} netns {name}",
            f"addr add {near}/30 dev {host_end}",
            f"link set {host_end} up",
            f"-n {name} addr add {far}/30 dev {far_end}",
            f"-n {name} link set {far_end} up",
            f"-n {name} link set lo up",
        ]
        for command in commands:
            subprocess.run(["ip", *command.split()], check=True)
        yield name, near, far
    finally:
        subprocess.run(
            ["ip", "link", "del", host_end], check=False, capture_output=True
        )
        subprocess.run(["ip", "netns", "del", name], check=True)


def test_outbound_connection_is_masqueraded_behind_the_host(
    busybox, networks, server_namespace
):
    """A server outside the host reached from a bridge container sees the host's address."""
    name, near, far = server_namespace
    server = textwrap.dedent(
        f"""
        import socket
        listener = socket.create_server(({far!r}, 7000))
        print("ready", flush=True)
        client, peer = listener.accept()
        client.sendall(peer[0].encode() + b"\\n")
        client.close()
        """
    )
    with subprocess.Popen(
        ["ip", "netns", "exec", name, sys.executable, "-c", server],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
            with Container(
                busybox, ["nc", "-w", "5", far, "7000"], network="bridge"
            ) as container:
                result = container.run(timeout=30)
            assert (result.exit_code, result.stdout) == (0, near.encode() + b"\n")
        finally:
            process.kill()


def test_containers_on_a_user_network_reach_each_other_by_name_and_alias(
    busybox, networks
):
    """A member resolves another by container name and alias and connects to it."""
    networks.create_network("appnet")
    serve = "mkdir /www && echo hello > /www/index.html && httpd -f -p 80 -h /www"
    web = Container(
        busybox,
        ["sh", "-c", serve],
        name="web",
        network="appnet",
        network_aliases=["site"],
    )
    web.start()
    fetch = (
        "for i in $(seq 100); do wget -q -O - http://web/ && break; sleep 0.1; done;"
        " wget -q -O - http://site/; ping -c 1 -W 5 web | head -1"
    )
    client = Container(busybox, ["sh", "-c", fetch], name="client", network="appnet")
    result = client.run(timeout=30)
    address = web.inspect()["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
    assert result.stdout.decode() == (
        f"hello\nhello\nPING web ({address}): 56 data bytes\n"
    )
    assert result.exit_code == 0


def test_hosts_of_running_members_list_a_new_member(busybox, networks):
    """A member started later appears in the /etc/hosts of one already running."""
    networks.create_network("hostsnet")
    first = Container(busybox, ["sleep", "60"], name="first", network="hostsnet")
    first.start()
    second = Container(busybox, ["sleep", "60"], name="second", network="hostsnet")
    second.start()
    settings = {
        c.name: c.inspect()["NetworkSettings"]["Networks"]["hostsnet"]
        for c in (first, second)
    }
    hosts = first.exec(["cat", "/etc/hosts"]).stdout.decode()
    assert hosts == (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"{settings['first']['IPAddress']}\t{first.short_id} first\n"
        f"{settings['second']['IPAddress']}\tsecond\n"
    )
    second.remove(force=True)
    assert first.exec(["cat", "/etc/hosts"]).stdout.decode() == (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"{settings['first']['IPAddress']}\t{first.short_id} first\n"
    )


def test_inspect_shows_the_network_settings_as_docker(busybox, networks):
    """NetworkSettings has the address, gateway, MAC and network entry."""
    network = networks.create_network("inspectnet")
    with Container(
        busybox, ["sleep", "60"], network="inspectnet", network_aliases=["db"]
    ) as container:
        container.start()
        settings = container.inspect()["NetworkSettings"]
        address = ipaddress.IPv4Address(settings["Networks"]["inspectnet"]["IPAddress"])
        mac = "02:42:" + ":".join(f"{b:02x}" for b in address.packed)
        assert settings == {
            "Ports": {},
            "IPAddress": "",
            "IPPrefixLen": 0,
            "Gateway": "",
            "MacAddress": "",
            "Networks": {
                "inspectnet": {
                    "Aliases": ["db"],
                    "NetworkID": network.id,
                    "Gateway": network.gateway,
                    "IPAddress": str(address),
                    "IPPrefixLen": 24,
                    "MacAddress": mac,
                }
            },
        }
        inside = container.exec(["cat", "/sys/class/net/eth0/address"])
        assert inside.stdout.decode() == mac + "\n"
        assert container.inspect()["HostConfig"]["NetworkMode"] == "inspectnet"


def test_tcp_and_udp_ports_are_published_from_a_bridge_container(busybox, networks):
    """A UDP datagram to 127.0.0.1 reaches a bridge container and its answer comes back."""
    echo = textwrap.dedent(
        """
        import socket
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("0.0.0.0", 53))
        while True:
            data, peer = server.recvfrom(512)
            server.sendto(b"echo " + data, peer)
        """
    )
    host_tools = [("/usr", "/usr", "ro"), ("/lib", "/lib", "ro")]
    if os.path.isdir("/lib64"):
        host_tools.append(("/lib64", "/lib64", "ro"))
    with Container(
        busybox,
        ["/usr/bin/python3", "-c", echo],
        network="bridge",
        volumes=host_tools,
        ports={"53/udp": 0, 80: ("127.0.0.1", 0)},
    ) as container:
        container.start()
        udp_port = container.host_port("53/udp")
        tcp_port = container.host_port(80)
        assert container.inspect()["NetworkSettings"]["Ports"] == {
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": str(udp_port)}],
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(tcp_port)}],
        }
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(0.2)
            answer = b""
            deadline = time.monotonic() + 20
            while not answer and time.monotonic() < deadline:
                client.sendto(b"ping", ("127.0.0.1", udp_port))
                try:
                    answer = client.recv(512)
                except TimeoutError:
                    continue
        assert answer == b"echo ping"


def test_unknown_network_is_a_clear_error(busybox, networks):
    """Creating a container on a network that does not exist names it."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], network="nope")
    assert str(caught.value) == "network nope not found"
    assert list((networks.path / "containers").iterdir()) == []


def test_removing_a_network_with_running_containers_names_them(busybox, networks):
    """remove_network() refuses while members run, and works once they are gone."""
    network = networks.create_network("busynet")
    for name in ("beta", "alpha"):
        Container(busybox, ["sleep", "60"], name=name, network="busynet").start()
    with pytest.raises(ContainerError) as caught:
        networks.remove_network("busynet")
    assert str(caught.value) == (
        "network busynet is in use by running containers: alpha, beta"
    )
    for container in networks.containers(all=True):
        container.remove(force=True)
    networks.remove_network("busynet")
    assert networks.networks() == []
    assert network.device not in links()


def test_overlapping_subnets_are_refused(busybox, networks, tmp_path):
    """A subnet that overlaps one of the store's networks or a host route is refused."""
    first = networks.create_network("first")
    with pytest.raises(ContainerConfigError) as caught:
        networks.create_network("second", subnet=first.subnet)
    assert str(caught.value) == (
        f"subnet {first.subnet} overlaps {first.subnet} of network 'first'"
    )
    other = layercake.Store(tmp_path / "other-store")
    with pytest.raises(ContainerConfigError) as caught:
        other.create_network("second", subnet=first.subnet)
    assert str(caught.value) == (
        f"subnet {first.subnet} overlaps {first.subnet} of the host route on "
        f"{first.device}"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda s: s.create_network("bridge"),
            "network name 'bridge' is reserved for the default network",
        ),
        (
            lambda s: s.create_network("host"),
            "network name 'host' is reserved for the network mode of that name",
        ),
        (
            lambda s: s.create_network("bad/name"),
            (
                "invalid network name 'bad/name': only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                "are allowed"
            ),
        ),
        (
            lambda s: s.create_network("tiny", subnet="10.215.0.0/30"),
            "subnet 10.215.0.0/30 is too small: a network needs at least a /29",
        ),
        (
            lambda s: s.create_network("odd", subnet="10.215.0.1/24"),
            "invalid subnet '10.215.0.1/24': 10.215.0.1/24 has host bits set",
        ),
    ],
)
def test_network_creation_errors(networks, call, message):
    """Reserved names, bad names and bad subnets are refused with a clear message."""
    with pytest.raises(ContainerConfigError) as caught:
        call(networks)
    assert str(caught.value) == message
    assert networks.networks() == []


def test_aliases_need_a_user_network(busybox, networks):
    """network_aliases on the default network is refused, as Docker does."""
    with pytest.raises(ContainerConfigError) as caught:
        Container(busybox, ["true"], network="bridge", network_aliases=["x"])
    assert str(caught.value) == (
        "network aliases need a user-defined network, not 'bridge'"
    )


def test_prune_networks_removes_only_unused_ones(busybox, networks):
    """prune_networks() keeps a network a container is on and removes the rest."""
    networks.create_network("used")
    networks.create_network("unused")
    Container(busybox, ["true"], network="used")
    assert networks.prune_networks() == ["unused"]
    assert [n.name for n in networks.networks()] == ["used"]


def test_network_lookup_by_name_or_id_prefix(networks):
    """store.network() finds a network by name or id prefix, else says so."""
    network = networks.create_network("lookup")
    assert networks.network("lookup") == network
    assert networks.network(network.id[:8]) == network
    with pytest.raises(ContainerError) as caught:
        networks.network("missing")
    assert str(caught.value) == "network missing not found"


def test_slirp4netns_serves_a_namespace_with_outbound_access(
    tmp_path, server_namespace, tool
):
    """The rootless 'bridge' hook: tap0 at 10.0.2.100 via slirp4netns reaches a server."""
    tool("slirp4netns")
    from tests.runtime.conftest import make_busybox_root

    from layercake import _slirp
    from layercake.runtime import ProcessSpec, RootfsSpec, SandboxSpec, collect, start

    name, near, far = server_namespace
    root = make_busybox_root(tmp_path / "rootfs")
    rootfs = RootfsSpec(
        (str(root),),
        str(tmp_path / "upper"),
        str(tmp_path / "work"),
        str(tmp_path / "merged"),
    )
    script = (
        "ip -4 -o addr show tap0 | awk '{print $4}'; ip route | head -1; "
        f"cat /etc/resolv.conf; nc -w 5 {far} 7000"
    )
    spec = SandboxSpec(
        rootfs, ProcessSpec(args=("sh", "-c", script)), dns=(_slirp.DNS,)
    )
    hook = _slirp.hook()
    server = textwrap.dedent(
        f"""
        import socket
        listener = socket.create_server(({far!r}, 7000))
        print("ready", flush=True)
        client, peer = listener.accept()
        client.sendall(peer[0].encode() + b"\\n")
        client.close()
        """
    )
    with subprocess.Popen(
        ["ip", "netns", "exec", name, sys.executable, "-c", server],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
            result = collect(
                lambda i, o, e: start(
                    spec, stdin=i, stdout=o, stderr=e, configure_network=hook
                ),
                None,
                None,
                30,
            )
        finally:
            process.kill()
    assert result.stdout.decode() == (
        f"10.0.2.100/24\ndefault via 10.0.2.2 dev tap0 \nnameserver 10.0.2.3\n{near}\n"
    )


def test_rootless_user_makes_networks_and_is_told_what_slirp4netns_needs(nobody):
    """An unprivileged user creates a network; the rootless 'bridge' says
    what slirp4netns needs."""
    tun_open = os.stat("/dev/net/tun").st_mode & 0o006 == 0o006
    directory = Path(tempfile.mkdtemp(prefix="layercake-rootless-net-"))
    try:
        directory.chmod(0o755)
        os.chown(directory, 65534, 65534)
        script = textwrap.dedent(
            f"""
            import layercake
            from layercake import _slirp
            store = layercake.Store({str(directory / "store")!r})
            for attempt in (lambda: store.create_network("n"), _slirp.hook):
                try:
                    attempt()
                    print("ok")
                except Exception as error:
                    print(type(error).__name__, error)
            """
        )
        # From a copy of the tree: a clone under /root is out of nobody's reach.
        completed = nobody.python_script(script, timeout=60)
    finally:
        shutil.rmtree(directory)
    slirp = (
        "ok\n"
        if tun_open
        else "ContainerConfigError network 'bridge' without root needs read and "
        "write access to /dev/net/tun for slirp4netns (Debian makes it mode "
        "0666); use network='none' with published ports\n"
    )
    assert completed.stdout == "ok\n" + slirp, completed.stderr


def test_restart_keeps_the_address_and_rename_updates_the_names(busybox, networks):
    """A restarted member keeps its address; a renamed one is listed by its new name."""
    networks.create_network("keepnet")
    first = Container(busybox, ["sleep", "60"], name="one", network="keepnet")
    first.start()
    before = first.inspect()["NetworkSettings"]["Networks"]["keepnet"]["IPAddress"]
    first.restart(timeout=0)
    after = first.inspect()["NetworkSettings"]["Networks"]["keepnet"]["IPAddress"]
    assert after == before
    address = first.exec(["sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'"])
    assert address.stdout.decode() == f"{before}/24\n"
    first.rename("renamed")
    hosts = first.exec(["cat", "/etc/hosts"]).stdout.decode()
    assert hosts.splitlines()[-1] == f"{before}\t{first.short_id} renamed"


def test_default_network_survives_concurrent_create_and_remove(busybox, networks):
    """Containers made and removed at once on 'bridge' never see it vanish."""
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            for _ in range(8):
                Container(busybox, ["true"], network="bridge").remove()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert networks.networks() == []


def test_runc_containers_join_the_default_bridge(busybox, networks, tool):
    """Through runc too, the default network gives eth0, a route and loopback up."""
    tool("runc")
    script = (
        "ip -4 -o addr show eth0 | awk '{print $4}'; ip route | head -1; "
        "cat /sys/class/net/lo/operstate"
    )
    with Container(busybox, ["sh", "-c", script], executor="runc") as container:
        (network,) = networks.networks()
        address = json.loads(
            (networks.path / f"networks/bridge/endpoints/{container.id}.json")
            .read_text()
        )["address"]
        result = container.run(timeout=30)
    assert (result.exit_code, result.stdout.decode()) == (
        0,
        f"{address}/20\ndefault via {network.gateway} dev eth0 \nunknown\n",
    )


def test_the_default_network_cannot_be_removed(busybox, networks):
    """network rm bridge is refused, as docker refuses it, and prune keeps it."""
    with Container(busybox, ["true"]):
        with pytest.raises(ContainerError) as caught:
            networks.remove_network("bridge")
        assert networks.prune_networks() == []
        assert [n.name for n in networks.networks()] == ["bridge"]
    assert str(caught.value) == (
        "bridge is a pre-defined network and cannot be removed"
    )


@pytest.mark.parametrize("remove", ["rm", "prune"])
def test_a_half_written_network_goes_with_its_bridge_and_rule(networks, remove):
    """rm or prune of a network whose record is cut short deletes its bridge
    and its masquerade rule, found through the bridge's alias."""
    network = networks.create_network("hw")
    assert network.device in links()
    (networks.path / "networks" / "hw" / "network.json").write_text('{"name":')
    rule = f'ip saddr {network.subnet} oifname != "{network.device}" masquerade'
    assert rule in nft_rules()
    if remove == "rm":
        networks.remove_network("hw")
    else:
        assert networks.prune_networks() == ["hw"]
    assert network.device not in links()
    assert rule not in nft_rules()
    assert networks.unreadable_networks() == {}
