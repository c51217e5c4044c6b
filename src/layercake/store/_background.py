"""Run calls (or writes to a sink) in order in a worker thread.

Packing a layer uses two: one reads the files, one hashes and writes the
blob (``read``, ``write`` and ``hashlib`` release the GIL), beside the
thread that walks the tree. A bounded queue keeps memory flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

__all__ = ["background_calls", "background_writes"]

# At most this many items (batches or chunks of about 1 MiB) wait for the
# worker, which bounds the memory the pipeline can hold.
_DEPTH = 8


T = TypeVar("T")


class _Sink(Protocol):
    def write(self, data: bytes | bytearray, /) -> int: ...


class _Worker(Generic[T]):
    def __init__(self, call: Callable[[T], object]) -> None:
        self._call = call
        self._queue: queue.Queue[tuple[T] | None] = queue.Queue(_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        """Queue a call with ``item``; re-raise an earlier call's error."""
        if self._error is not None:
            raise self._error
        self._queue.put((item,))

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue ``data`` (copied unless it is ``bytes``); return its length."""
        chunk = data if isinstance(data, bytes) else bytes(data)
        self.put(chunk)  # type: ignore[arg-type]
        return len(chunk)

    def close(self) -> None:
        """Wait until every queued write is done; re-raise the worker's error."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._call(item[0])
                except Exception as exc:  # noqa: BLE001 (raised by the producer)
                    # Keep draining so the producer never blocks on a full
                    # queue; it sees the error on its next write.
                    self._error = exc


@contextmanager
def background_calls(call: Callable[[T], object]) -> Iterator[_Worker[T]]:
    """Yield a worker whose ``put(item)`` runs ``call(item)`` in a thread, in order.

    When the block ends, every call has run. An error raised by ``call`` is
    raised from a later ``put`` or at the end of the block; if the block
    itself raises, that error wins.

    Raises:
        Exception: whatever ``call`` raised.
    """
    worker = _Worker(call)
    try:
        yield worker
    except BaseException:
        worker._queue.put(None)
        worker._thread.join()
        raise
    worker.close()


@contextmanager
def background_writes(inner: _Sink) -> Iterator[_Worker[bytes | bytearray]]:
    """Yield a sink whose writes reach ``inner`` in order from a worker thread.

    When the block ends, every write has reached ``inner``. An error raised
    by ``inner.write`` is raised from a later ``write`` or at the end of the
    block; if the block itself raises, that error wins.

    Raises:
        BaseException: whatever ``inner.write`` raised.
    """
    with background_calls(inner.write) as worker:
        yield worker
