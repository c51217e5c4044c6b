"""Append to a file through a few large buffers written by a second thread.

Copying a blob's bytes into the page cache is the largest single cost of
writing a layer on the development VM (half of the pack's CPU time in a
``perf`` profile, more than its sha256), and ``os.write`` releases the GIL
while it copies. So the caller fills one buffer (and hashes it while its
bytes are still in the CPU cache) while a writer thread copies the
previous one into the file. Buffers are large so that the two threads hand
over the GIL a few times per buffer, not per entry or per chunk: every
hand-over costs a wake-up, which waits for a CPU on a busy machine. The
first 16 MiB of a file, and everything given to ``write`` rather than put
in a lent buffer (downloads, archive loads), are written by the caller as
before: only a packed layer's in-place buffers are worth a thread.

Every file also asks the kernel to start writing each completed range to
disk (see :mod:`._writeback`), so the final fsync is short.
"""

from __future__ import annotations

import mmap
import os
import queue
import threading
from collections.abc import Callable

from ._writeback import Writeback

__all__ = ["BUFFER", "SpooledFile"]

#: Size of each buffer. Three of them per file at most: 12 MiB, so four
#: parallel downloads stay far below the store's 100 MiB memory budget.
BUFFER = 4 << 20
_BUFFERS = 3
# The first bytes of a file are written by the caller, at once: most blobs
# (configs, manifests, small layers) never need a thread, and a full disk
# shows at the write that fills it.
_THREAD_FROM = 16 << 20
# The buffer of writes before the thread starts: pieces this large or
# larger go straight to the file, so a full disk shows at the write that
# fills it.
_STRAIGHT = 1 << 20


class SpooledFile:
    """Appends bytes to the file ``fd``; past its first 16 MiB, from a thread.

    Either call :meth:`write` with any bytes, or fill buffers in place:
    :meth:`take` one, fill its first bytes, and :meth:`put` it back with the
    length filled; a taken buffer belongs to the caller until it is put
    back. The
    first 16 MiB and whatever :meth:`write` gets before a thread exists are
    written by the caller; once a file holds 16 MiB, the next buffer given
    to :meth:`put` starts a writer thread that writes everything after it.
    :meth:`close` writes what is left and waits for the thread. A write
    error of the thread is raised by the next call.

    ``observe`` sees every run of bytes in file order before it is written
    (the blob's hash), in the caller's thread.
    """

    def __init__(
        self, fd: int, observe: Callable[[bytes | bytearray | memoryview], object]
    ) -> None:
        self._fd = fd
        # Until the thread starts, bytes go through this buffered file (which
        # owns ``fd``), as they did before there was a thread.
        self._file = open(fd, "wb", buffering=_STRAIGHT)
        self._observe = observe
        self._writeback = Writeback(fd)
        self._accepted = 0
        self._written = 0
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        self._made = 0
        self._full: queue.SimpleQueue[tuple[memoryview, int] | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # Small writes after that gather in a buffer of the pool, up to _pos.
        self._current: memoryview | None = None
        self._pos = 0
        self._dropping = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``.

        Raises:
            OSError: writing it, or an earlier buffer, failed.
        """
        if self._thread is None:
            self._append(data)
            return
        view = memoryview(data).cast("B")
        while view:
            if self._current is None:
                self._current = self.take()
                self._pos = 0
            room = BUFFER - self._pos
            piece = view[:room]
            end = self._pos + len(piece)
            self._current[self._pos : end] = piece
            self._pos = end
            view = view[room:]
            if end == BUFFER:
                self._flush_current()

    def take(self) -> memoryview:
        """Return an empty buffer of :data:`BUFFER` bytes for the caller to fill.

        Raises:
            OSError: the writer thread could not write an earlier buffer.
        """
        self._raise()
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        if self._made < _BUFFERS:
            self._made += 1
            # An anonymous mapping: its pages are only touched (and paid
            # for) as they are filled, where a bytearray is zeroed first.
            return memoryview(mmap.mmap(-1, BUFFER))
        buffer = self._free.get()
        self._raise()
        return buffer

    def put(self, buffer: memoryview, length: int) -> None:
        """Append the first ``length`` bytes of ``buffer``, taken from :meth:`take`.

        Raises:
            OSError: writing it, or an earlier buffer, failed.
        """
        if self._thread is None and self._accepted < _THREAD_FROM:
            self._append(buffer[:length])
            self._free.put(buffer)
            return
        self._flush_current()
        self._queue(buffer, length)

    def close(self) -> None:
        """Write everything left and stop the writer thread.

        Raises:
            OSError: a write failed.
        """
        self._flush_current()
        self._stop()
        self._raise()
        self._file.flush()

    def abandon(self) -> None:
        """Stop the writer thread, drop what it has not written, close ``fd``.

        Raises:
            OSError: flushing what :meth:`write` left buffered failed (``fd``
                is closed all the same).
        """
        self._current = None
        self._dropping = True
        self._stop()
        self._file.close()

    def _append(self, data: bytes | bytearray | memoryview) -> None:
        # Written by the caller, while no thread exists.
        self._observe(data)
        self._file.write(data)
        self._accepted += len(data)
        if self._writeback.due(self._accepted):
            self._file.flush()
            self._writeback.start(self._accepted)

    def _flush_current(self) -> None:
        # Gathered bytes go to the file before any later ones.
        if self._current is not None and self._pos:
            current, self._current = self._current, None
            self._queue(current, self._pos)

    def _queue(self, buffer: memoryview, length: int) -> None:
        self._raise()
        self._observe(buffer[:length])
        if self._full is None:
            # Everything accepted so far must be in the file first.
            self._file.flush()
            self._written = self._accepted
            self._full = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._run, name="layercake-blob-writer", daemon=True
            )
            self._thread.start()
        self._accepted += length
        self._full.put((buffer, length))

    def _stop(self) -> None:
        if self._thread is not None and self._full is not None:
            self._full.put(None)
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        assert self._full is not None
        while (item := self._full.get()) is not None:
            buffer, length = item
            if self._error is None and not self._dropping:
                try:
                    self._write(buffer[:length])
                except BaseException as error:  # handed to the caller's thread
                    self._error = error
            self._free.put(buffer)

    def _write(self, view: memoryview) -> None:
        # In the writer thread.
        size = len(view)
        while view:
            view = view[os.write(self._fd, view) :]
        self._written += size
        if self._writeback.due(self._written):
            self._writeback.start(self._written)
