"""Network verbs: network create, ls, inspect, rm, prune."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from typing import TYPE_CHECKING, Any

from layercake.cli._format import table

if TYPE_CHECKING:
    from layercake import Network, Store

__all__ = ["register"]


def create(args: argparse.Namespace) -> int:
    """Create a bridge network; print its id."""
    import layercake

    network = layercake.Store(args.store).create_network(
        args.name, subnet=args.subnet, driver=args.driver
    )
    sys.stdout.write(network.id + "\n")
    return 0


def ls(args: argparse.Namespace) -> int:
    """List networks: NETWORK ID, NAME, DRIVER, SCOPE; a network whose
    record cannot be read is named on stderr (``network rm`` removes it)."""
    import layercake

    store = layercake.Store(args.store)
    for name, reason in store.unreadable_networks().items():
        sys.stderr.write(f"layercake: warning: network {name}: {reason}\n")
    found = store.networks()
    if args.quiet:
        for network in found:
            sys.stdout.write(network.short_id + "\n")
        return 0
    if args.format == "json":
        for network in found:
            row = {
                "ID": network.short_id,
                "Name": network.name,
                "Driver": network.driver,
                "Scope": "local",
            }
            sys.stdout.write(json.dumps(row) + "\n")
        return 0
    table(
        ("NETWORK ID", "NAME", "DRIVER", "SCOPE"),
        [(n.short_id, n.name, n.driver, "local") for n in found],
    )
    return 0


def _details(store: Store, network: Network) -> dict[str, Any]:
    prefix = ipaddress.IPv4Network(network.subnet).prefixlen
    members: dict[str, Any] = {}
    for container in store.network_containers(network.name):
        entry = container.inspect()["NetworkSettings"]["Networks"][network.name]
        members[container.id] = {
            "Name": container.name,
            "MacAddress": entry["MacAddress"],
            "IPv4Address": f"{entry['IPAddress']}/{prefix}"
            if entry["IPAddress"]
            else "",
            "IPv6Address": "",
        }
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": network.created,
        "Scope": "local",
        "Driver": network.driver,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Config": [{"Subnet": network.subnet, "Gateway": network.gateway}],
        },
        "Internal": False,
        "Containers": members,
        "Options": {"com.docker.network.bridge.name": network.device},
        "Labels": {},
    }


def inspect(args: argparse.Namespace) -> int:
    """Print networks' details as a JSON array, as docker does."""
    import layercake

    store = layercake.Store(args.store)
    details = [_details(store, store.network(name)) for name in args.names]
    sys.stdout.write(json.dumps(details, indent=4) + "\n")
    return 0


def rm(args: argparse.Namespace) -> int:
    """Remove networks (refused while running containers use them); each
    name is tried, and any failure makes the exit code 1, as docker's."""
    import layercake
    from layercake.cli._each import for_each

    store = layercake.Store(args.store)
    return for_each(args.names, store.remove_network, debug=args.debug)


def prune(args: argparse.Namespace) -> int:
    """Remove every network no container uses."""
    import layercake

    removed = layercake.Store(args.store).prune_networks()
    if removed:
        sys.stdout.write("Deleted Networks:\n")
    for name in removed:
        sys.stdout.write(name + "\n")
    return 0


def register(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], only: str | None = None
) -> None:
    """Add the network verb and its actions.

    ``only``, which every verb module takes, can only be ``network`` here:
    the module has no other verb to leave out.
    """
    network = verbs.add_parser("network", help="manage bridge networks")
    actions = network.add_subparsers(dest="action", required=True, metavar="ACTION")
    parser = actions.add_parser("create", help="create a network")
    parser.add_argument("name")
    parser.add_argument(
        "--subnet", help="IPv4 subnet in CIDR form (default: a free /24)"
    )
    parser.add_argument(
        "-d", "--driver", default="bridge", help="only bridge (the default)"
    )
    parser.set_defaults(handler=create)
    parser = actions.add_parser("ls", help="list networks")
    parser.add_argument("-q", "--quiet", action="store_true", help="only ids")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=ls)
    parser = actions.add_parser("inspect", help="details of networks")
    parser.add_argument("names", nargs="+")
    parser.set_defaults(handler=inspect)
    parser = actions.add_parser("rm", help="remove networks")
    parser.add_argument("names", nargs="+")
    parser.set_defaults(handler=rm)
    parser = actions.add_parser("prune", help="remove unused networks")
    parser.add_argument(
        "-f", "--force", action="store_true", help="do not ask (it never asks)"
    )
    parser.set_defaults(handler=prune)
