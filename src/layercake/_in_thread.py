"""Coroutine twins of blocking methods, run in a worker thread."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

__all__ = ["in_worker_thread"]

P = ParamSpec("P")
R = TypeVar("R")


def in_worker_thread(
    method: Callable[P, R], doc: str
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Return a coroutine function that runs ``method`` in a worker thread.

    It takes exactly ``method``'s arguments (type checkers see them) and
    raises what ``method`` raises; ``doc`` becomes its docstring.
    """

    @functools.wraps(method)
    async def twin(*args: P.args, **kwargs: P.kwargs) -> R:
        import asyncio  # only async callers pay for importing it

        return await asyncio.to_thread(method, *args, **kwargs)

    twin.__doc__ = doc
    twin.__name__ = "a" + method.__name__
    owner, dot, _ = method.__qualname__.rpartition(".")
    twin.__qualname__ = owner + dot + twin.__name__
    return twin
