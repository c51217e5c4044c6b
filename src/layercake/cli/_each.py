"""Verbs that take many names, as docker's: each name is tried in turn."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from layercake.errors import LayercakeError

__all__ = ["for_each"]


def for_each(
    names: Sequence[str], action: Callable[[str], object], *, debug: bool = False
) -> int:
    """Apply ``action`` to each name, printing the name once it succeeded.

    A failure is written to stderr and the next name still handled; the
    exit code is then 1, as docker's. With ``debug`` the first error is
    raised instead, for its traceback.
    """
    failed = False
    for name in names:
        try:
            action(name)
        except LayercakeError as error:
            if debug:
                raise
            sys.stdout.flush()
            sys.stderr.write(f"layercake: error: {error}\n")
            failed = True
            continue
        sys.stdout.write(name + "\n")
    return 1 if failed else 0
