"""The ``layercake`` command: a thin, docker-like shell over the public API.

Errors print as one line on stderr with docker's exit codes: 125 when
layercake itself fails, 126 or 127 when the container's command cannot run,
otherwise the container's own exit code. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import attrs

import layercake
from layercake.errors import LayercakeError
from layercake.events import (
    BuildFinished,
    BuildWarning,
    Event,
    StepCached,
    StepFinished,
    StepOutput,
    StepStarted,
)

__all__ = ["main"]

ENGINE_ERROR = 125


class PlainProgress:
    """Renders build events as docker's classic ``Step N/M`` lines."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.cached: set[int] = set()

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self.write(f"Step {event.step}/{event.total} : {event.instruction}")
        elif isinstance(event, StepCached):
            self.cached.add(event.step)
            self.write(" ---> CACHED")
        elif isinstance(event, StepOutput):
            self.out.write(event.data.decode("utf-8", "replace"))
            self.out.flush()
        elif isinstance(event, StepFinished):
            if event.step not in self.cached:
                self.write(f" ---> {event.image_id[7:19]} ({event.duration:.2f}s)")
        elif isinstance(event, BuildWarning):
            self.write(f"warning: {event.message}")
        elif isinstance(event, BuildFinished):
            self.write(f"Successfully built {event.image_id[7:19]}")
            for tag in event.tags:
                self.write(f"Successfully tagged {tag}")

    def write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


class JsonProgress:
    """Renders build events as one JSON object a line, for scripts."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        record = attrs.asdict(event)
        if isinstance(event, StepOutput):
            record["data"] = event.data.decode("utf-8", "replace")
        record = {"event": type(event).__name__, **record}
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()


def _key_values(items: Sequence[str], flag: str) -> dict[str, str]:
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise SystemExit(f"layercake: invalid {flag} {item!r}: expected KEY=VALUE")
        values[key] = value if sep else ""
    return values


def cmd_build(args: argparse.Namespace) -> int:
    """``layercake build``: build a context directory into an image."""
    store = layercake.Store(args.store)
    if args.check:
        from layercake import dockerfile as df

        if args.file == "-":
            parsed = df.parse(sys.stdin.read())
        else:
            parsed = df.parse(Path(args.file or f"{args.context}/Dockerfile"))
        sys.stdout.write(df.dump(parsed))
        return 0
    progress = (
        JsonProgress(sys.stdout)
        if args.progress == "json"
        else PlainProgress(sys.stdout)
    )
    # As with docker, -f is relative to the current directory, and "-" is stdin.
    text = sys.stdin.read() if args.file == "-" else None
    dockerfile = None if args.file in (None, "-") else Path(args.file).absolute()
    layercake.Builder(store).build(
        args.context,
        dockerfile=dockerfile,
        text=text,
        tag=args.tag,
        build_args=_key_values(args.build_arg, "--build-arg"),
        target=args.target,
        no_cache=args.no_cache,
        on_event=progress,
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``layercake run``: run a command in a new container and return its code."""
    if args.tty:
        raise LayercakeError("run -t: terminals are not supported yet; drop -t")
    store = layercake.Store(args.store)
    image = store.image(args.image)
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


def _age(created: str | None) -> str:
    if not created:
        return "N/A"
    try:
        moment = time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "N/A"
    seconds = max(0.0, time.mktime(time.gmtime()) - moment)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "N/A"


def _size(total: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if total < 1000 or unit == "GB":
            return f"{total:.3g}{unit}" if unit != "B" else f"{total}B"
        total /= 1000  # type: ignore[assignment]
    return f"{total}B"


def _split_tag(name: str) -> tuple[str, str]:
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, "<none>"


def cmd_images(args: argparse.Namespace) -> int:
    """``layercake images``: list tagged images."""
    store = layercake.Store(args.store)
    rows = []
    for image in store.images():
        size = sum(layer.size for layer in image.layers)
        for name in image.tags:
            repository, tag = _split_tag(name)
            rows.append(
                {
                    "Repository": repository,
                    "Tag": tag,
                    "ID": image.short_id,
                    "Digest": str(image.digest),
                    "CreatedAt": image.config.created,
                    "Size": size,
                }
            )
    if args.format == "json":
        for row in rows:
            sys.stdout.write(json.dumps(row) + "\n")
        return 0
    table = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    for row in rows:
        table.append(
            (
                str(row["Repository"]),
                str(row["Tag"]),
                str(row["ID"]),
                _age(row["CreatedAt"]),  # type: ignore[arg-type]
                _size(row["Size"]),  # type: ignore[arg-type]
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths)]
        sys.stdout.write("   ".join(cells).rstrip() + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layercake",
        description="Build Docker images and run containers, with no daemon.",
    )
    parser.add_argument(
        "--store",
        help="store directory (default: $LAYERCAKE_STORE or the user data dir)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and logs")
    parser.add_argument(
        "--version", action="version", version=f"layercake {layercake.__version__}"
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    build = verbs.add_parser("build", help="build an image from a Dockerfile")
    build.add_argument("context", help="the build context directory")
    build.add_argument("-t", "--tag", action="append", default=[], help="name:tag")
    build.add_argument(
        "-f", "--file", help="the Dockerfile (default: CONTEXT/Dockerfile)"
    )
    build.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a build argument",
    )
    build.add_argument("--no-cache", action="store_true", help="do not use the cache")
    build.add_argument("--target", help="build up to this stage")
    build.add_argument(
        "--progress", choices=("plain", "json"), default="plain", help="output style"
    )
    build.add_argument(
        "--check",
        action="store_true",
        help="print the parsed Dockerfile, build nothing",
    )
    build.set_defaults(handler=cmd_build)

    run = verbs.add_parser("run", help="run a command in a new container")
    run.add_argument("image")
    run.add_argument("command", nargs=argparse.REMAINDER)
    run.add_argument(
        "--rm",
        action="store_true",
        help="remove the container on exit (always done in this version)",
    )
    run.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("-w", "--workdir")
    run.add_argument("-u", "--user")
    run.add_argument("--entrypoint")
    run.add_argument("--hostname")
    run.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    run.add_argument(
        "-t",
        "--tty",
        action="store_true",
        help="allocate a terminal (not supported yet)",
    )
    run.add_argument("--network", choices=("none", "host"), default="none")
    run.set_defaults(handler=cmd_run)

    images = verbs.add_parser("images", help="list images")
    images.add_argument("--format", choices=("table", "json"), default="table")
    images.set_defaults(handler=cmd_images)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding like Ctrl-C so that the code that made containers
    and temporary build directories cleans them up."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = _parser().parse_args(argv)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code: int = args.handler(args)
    except (LayercakeError, OSError) as error:
        return _fail(args, error)
    except _Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code


def _fail(args: argparse.Namespace, error: Exception) -> int:
    if args.debug:
        raise error
    sys.stderr.write(f"layercake: error: {error}\n")
    return ENGINE_ERROR


if __name__ == "__main__":
    sys.exit(main())
