"""Volume verbs: volume create, ls, inspect, rm, prune."""

from __future__ import annotations

import argparse
import json
import sys

from layercake.errors import ContainerError

__all__ = ["register"]


def create(args: argparse.Namespace) -> int:
    """Create a named volume; print its name."""
    import layercake

    layercake.Store(args.store).create_volume(args.name)
    sys.stdout.write(args.name + "\n")
    return 0


def ls(args: argparse.Namespace) -> int:
    """List named volumes."""
    import layercake

    names = layercake.Store(args.store).volumes()
    if args.format == "json":
        for name in names:
            sys.stdout.write(json.dumps({"Driver": "local", "Name": name}) + "\n")
        return 0
    if not args.quiet:
        sys.stdout.write("DRIVER    VOLUME NAME\n")
    for name in names:
        sys.stdout.write(name + "\n" if args.quiet else f"local     {name}\n")
    return 0


def inspect(args: argparse.Namespace) -> int:
    """Print volumes' details as a JSON array, as docker does."""
    import layercake

    store = layercake.Store(args.store)
    details = []
    for name in args.names:
        if name not in store.volumes():
            raise ContainerError(f"no such volume: {name}")
        details.append(
            {
                "Name": name,
                "Driver": "local",
                "Mountpoint": str(store.path / "volumes" / name),
                "Scope": "local",
            }
        )
    sys.stdout.write(json.dumps(details, indent=4) + "\n")
    return 0


def rm(args: argparse.Namespace) -> int:
    """Remove named volumes; one a container uses is refused even with -f,
    which only makes a missing volume no error, as docker."""
    import layercake

    store = layercake.Store(args.store)
    for name in args.names:
        store.remove_volume(name, force=args.force)
        sys.stdout.write(name + "\n")
    return 0


def prune(args: argparse.Namespace) -> int:
    """Remove the volumes no container uses: with -a every such named volume.

    As docker (since 23.0) without -a prunes only anonymous volumes, and a
    container's anonymous volumes here go with the container, plain
    ``volume prune`` finds nothing to remove.
    """
    import layercake

    if not args.all:
        return 0
    for name in layercake.Store(args.store).prune_volumes():
        sys.stdout.write(f"Deleted Volume: {name}\n")
    return 0


def register(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], only: str | None = None
) -> None:
    """Add the volume verb and its actions.

    ``only``, which every verb module takes, can only be ``volume`` here:
    the module has no other verb to leave out.
    """
    volume = verbs.add_parser("volume", help="manage named volumes")
    actions = volume.add_subparsers(dest="action", required=True, metavar="ACTION")
    parser = actions.add_parser("create", help="create a volume")
    parser.add_argument("name")
    parser.set_defaults(handler=create)
    parser = actions.add_parser("ls", help="list volumes")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(handler=ls)
    parser = actions.add_parser("inspect", help="details of volumes")
    parser.add_argument("names", nargs="+")
    parser.set_defaults(handler=inspect)
    parser = actions.add_parser("rm", help="remove volumes")
    parser.add_argument("names", nargs="+")
    parser.add_argument(
        "-f", "--force", action="store_true", help="no error for a missing volume"
    )
    parser.set_defaults(handler=rm)
    parser = actions.add_parser("prune", help="remove unused volumes")
    parser.add_argument(
        "-a", "--all", action="store_true", help="also unused named volumes"
    )
    parser.set_defaults(handler=prune)
