"""Container verbs: ``run``."""

from __future__ import annotations

import argparse
import sys

from layercake.errors import LayercakeError

__all__ = ["register"]


def run(args: argparse.Namespace) -> int:
    """Run a command in a new container; return its exit code."""
    import layercake

    if args.tty:
        raise LayercakeError("run -t: terminals are not supported yet; drop -t")
    image = layercake.Store(args.store).image(args.image)
    with layercake.Container(
        image,
        args.command or None,
        entrypoint=args.entrypoint,
        env=args.env,
        workdir=args.workdir,
        user=args.user,
        hostname=args.hostname,
        network=args.network,
    ) as container:
        stdin = sys.stdin.fileno() if args.interactive else None
        return container.attach(stdin=stdin)


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the container verbs."""
    parser = verbs.add_parser("run", help="run a command in a new container")
    parser.add_argument("image")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    parser.add_argument(
        "--rm",
        action="store_true",
        help="remove the container on exit (always done in this version)",
    )
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("-w", "--workdir")
    parser.add_argument("-u", "--user")
    parser.add_argument("--entrypoint")
    parser.add_argument("--hostname")
    parser.add_argument(
        "-i", "--interactive", action="store_true", help="keep stdin open"
    )
    parser.add_argument(
        "-t",
        "--tty",
        action="store_true",
        help="allocate a terminal (not supported yet)",
    )
    parser.add_argument("--network", choices=("none", "host"), default="none")
    parser.set_defaults(handler=run)
