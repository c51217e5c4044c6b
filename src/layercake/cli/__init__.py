"""The ``layercake`` command: a thin, docker-like shell over the public API.

One module per group of verbs registers its verbs and handles them with the
public API only. Errors print as one line on stderr with docker's exit
codes: 125 when layercake itself fails, 126 or 127 when the container's
command cannot run, otherwise the container's own exit code; 130 after
Ctrl-C and 143 after SIGTERM. ``--debug`` shows tracebacks and logs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from layercake import __version__
from layercake.errors import CommandNotStarted, LayercakeError

__all__ = ["main"]

ENGINE_ERROR = 125

# The module that registers each verb. A command line naming one of them
# imports and registers only that module, so `layercake run` does not pay
# for the builder's progress display or the image verbs.
VERBS = {
    "layercake.cli._build": ("build",),
    "layercake.cli._containers": (
        "run",
        "create",
        "start",
        "rm",
        "stop",
        "restart",
        "kill",
        "pause",
        "unpause",
        "rename",
        "ps",
        "logs",
        "exec",
        "attach",
        "cp",
        "commit",
        "diff",
        "export",
        "port",
    ),
    "layercake.cli._images": (
        "images",
        "tag",
        "rmi",
        "history",
        "inspect",
        "save",
        "load",
        "import",
        "pull",
        "push",
        "login",
        "logout",
    ),
    "layercake.cli._networks": ("network",),
    "layercake.cli._system": ("version", "info", "prune", "system"),
    "layercake.cli._volumes": ("volume",),
}


def _verb_of(argv: Sequence[str]) -> str | None:
    """The verb ``argv`` names, or None when the parser needs every verb.

    Only the global options that are spelled out in full are skipped; any
    other option before the verb (help, version, an abbreviation) gets
    every verb, so the parser reports it exactly as the full parser does.
    """
    args = iter(argv)
    for arg in args:
        if arg == "--debug" or arg.startswith("--store="):
            continue
        if arg == "--store":
            next(args, None)
            continue
        if arg.startswith("-"):
            break
        if any(arg in verbs for verbs in VERBS.values()):
            return arg
        break
    return None


def _groups_for(argv: Sequence[str]) -> Sequence[str]:
    """The modules whose verbs the parser needs for ``argv``."""
    verb = _verb_of(argv)
    for module, verbs in VERBS.items():
        if verb in verbs:
            return (module,)
    return tuple(VERBS)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 125 as docker's flag errors do."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ENGINE_ERROR, f"{self.prog}: error: {message}\n")


def _parser(
    groups: Sequence[str] = tuple(VERBS), only: str | None = None
) -> argparse.ArgumentParser:
    """The parser of the verbs of ``groups``, or only of the verb ``only``."""
    parser = _Parser(
        prog="layercake",
        description="Build Docker images and run containers, with no daemon.",
    )
    parser.add_argument(
        "--store",
        help="store directory (default: $LAYERCAKE_STORE or the user data dir)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and logs")
    parser.add_argument(
        "--version", action="version", version=f"layercake {__version__}"
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for group in groups:
        importlib.import_module(group).register(verbs, only)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, unwinding like Ctrl-C so that the code that made containers
    and temporary build directories cleans them up."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _quiet_stdout() -> None:
    # Point stdout at /dev/null so the interpreter's final flush of a pipe
    # that is gone does not print another error.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    if argv is None:
        argv = sys.argv[1:]
    args = _parser(_groups_for(argv), _verb_of(argv)).parse_args(argv)
    if args.debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:
        # The reader went away (| head): not an error, as with any Unix tool.
        _quiet_stdout()
        return 0
    except (LayercakeError, OSError) as error:
        if args.debug:
            raise
        sys.stderr.write(f"layercake: error: {error}\n")
        if isinstance(error, CommandNotStarted):
            # As docker run and exec: 127 not found, 126 not executable.
            return error.exit_code
        return ENGINE_ERROR
    except _Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code
