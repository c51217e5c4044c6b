"""The ``layercake`` command: a thin, docker-like shell over the public API.

One module per group of verbs registers its verbs and handles them with the
public API only. Errors print as one line on stderr with docker's exit
codes: 125 when layercake itself fails, 126 or 127 when the container's
command cannot run, otherwise the container's own exit code; 130 after
Ctrl-C and 143 after SIGTERM. ``--debug`` shows tracebacks and logs.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from layercake import __version__
from layercake.cli import (
    _build,
    _containers,
    _images,
    _networks,
    _system,
    _volumes,
)
from layercake.errors import LayercakeError

__all__ = ["main"]

ENGINE_ERROR = 125


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
        "--version", action="version", version=f"layercake {__version__}"
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for group in (_build, _containers, _images, _networks, _system, _volumes):
        group.register(verbs)
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
    args = _parser().parse_args(argv)
    if args.debug:
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
        return ENGINE_ERROR
    except _Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code
