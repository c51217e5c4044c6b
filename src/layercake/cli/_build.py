"""``layercake build``: build a context directory into an image."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from layercake.cli._progress import JsonProgress, PlainProgress

__all__ = ["key_values", "register"]


def key_values(items: Sequence[str], flag: str) -> dict[str, str]:
    """Turn repeated ``KEY=VALUE`` flags into a dict.

    A bare ``KEY`` takes its value from the environment, as docker's CLI
    does, and is left out when the environment has none.
    """
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise SystemExit(f"layercake: invalid {flag} {item!r}: expected KEY=VALUE")
        if sep:
            values[key] = value
        elif key in os.environ:
            values[key] = os.environ[key]
    return values


def _secrets(items: Sequence[str]) -> dict[str, Path]:
    secrets = {}
    for item in items:
        fields = dict(field.partition("=")[::2] for field in item.split(","))
        name = fields.get("id", "")
        source = fields.get("src") or fields.get("source")
        if not name or not source:
            raise SystemExit(
                f"layercake: invalid --secret {item!r}: expected id=NAME,src=PATH"
            )
        secrets[name] = Path(source)
    return secrets


def build(args: argparse.Namespace) -> int:
    """Build; print the steps as they run."""
    import layercake

    if args.check:
        from layercake import dockerfile as df

        if args.file == "-":
            parsed = df.parse(sys.stdin.read())
        else:
            parsed = df.parse(Path(args.file or f"{args.context}/Dockerfile"))
        sys.stdout.write(df.dump(parsed))
        from layercake.builder import check_build_args

        build_args = key_values(args.build_arg, "--build-arg")
        for message in check_build_args(parsed, build_args):
            sys.stdout.write(f"warning: {message}\n")
        return 0

    progress = (
        None
        if args.quiet
        else JsonProgress(sys.stdout)
        if args.progress == "json"
        else PlainProgress(sys.stdout)
    )
    # As with docker, -f is relative to the current directory, and "-" is stdin.
    text = sys.stdin.read() if args.file == "-" else None
    dockerfile = None if args.file in (None, "-") else Path(args.file).absolute()
    image = layercake.Builder(layercake.Store(args.store)).build(
        args.context,
        dockerfile=dockerfile,
        text=text,
        tag=args.tag,
        build_args=key_values(args.build_arg, "--build-arg"),
        target=args.target,
        no_cache=args.no_cache,
        secrets=_secrets(args.secret),
        pull=args.pull,
        on_event=progress,
    )
    if args.quiet:
        sys.stdout.write(image.id + "\n")
    return 0


def register(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], only: str | None = None
) -> None:
    """Add the build verb.

    ``only``, which every verb module takes, can only be ``build`` here:
    the module has no other verb to leave out.
    """
    parser = verbs.add_parser("build", help="build an image from a Dockerfile")
    parser.add_argument("context", help="the build context directory")
    parser.add_argument("-t", "--tag", action="append", default=[], help="name:tag")
    parser.add_argument(
        "-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile; - for stdin)"
    )
    parser.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a build argument",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="id=NAME,src=PATH",
        help="a file for RUN --mount=type=secret",
    )
    parser.add_argument("--no-cache", action="store_true", help="do not use the cache")
    parser.add_argument(
        "--pull",
        nargs="?",
        const="always",
        default="missing",
        choices=("missing", "always", "never"),
        help="pull FROM images: missing (default), always (--pull) or never",
    )
    parser.add_argument("--target", help="build up to this stage")
    parser.add_argument(
        "--progress",
        choices=("auto", "plain", "json"),
        default="auto",
        help="output style (auto is plain: one line per step)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only the image id when the build succeeds",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="print the parsed Dockerfile, build nothing",
    )
    parser.set_defaults(handler=build)
