"""Hand a download's chunks to a thread that hashes and writes them.

Reading a response body (socket reads and HTTP parsing) and storing it
(SHA-256 and file writes, which release the GIL) then overlap, instead of
taking turns within one download thread.
"""

from __future__ import annotations

import queue
import threading
from types import TracebackType
from typing import Protocol, Self

__all__ = ["ChunkPipe"]

#: Chunks in flight per download: with 64 KiB reads, about 4 MiB.
_DEPTH = 64


class _Sink(Protocol):
    def write(self, data: bytes) -> int: ...


class ChunkPipe:
    """Writes chunks to ``sink`` from a thread of its own, in order.

    Use as a context manager; leaving the block waits until every chunk is
    written. An error of the sink is raised from :meth:`write` or on leaving
    the block, whichever comes first; an error in the block stops the
    thread and propagates.
    """

    def __init__(self, sink: _Sink) -> None:
        self._sink = sink
        self._chunks: queue.Queue[bytes | None] = queue.Queue(_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def write(self, chunk: bytes) -> None:
        """Queue ``chunk`` for writing (waits while the queue is full).

        Raises:
            Exception: whatever the sink raised for an earlier chunk.
        """
        if self._error is not None:
            raise self._error
        self._chunks.put(chunk)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._chunks.put(None)
        self._thread.join()
        if kind is None and self._error is not None:
            raise self._error

    def _drain(self) -> None:
        # After a failure, keep taking chunks so the reader never blocks.
        while (chunk := self._chunks.get()) is not None:
            if self._error is None:
                try:
                    self._sink.write(chunk)
                except BaseException as exc:  # noqa: BLE001 - re-raised by the reader
                    self._error = exc
