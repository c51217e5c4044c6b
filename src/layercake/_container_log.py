"""A container's output log: one JSON object per line, Docker's json-file format.

Each line becomes ``{"log": "<line>\\n", "stream": "stdout"|"stderr",
"time": "<RFC 3339>"}``; a last line without a newline is written as it is
when the stream ends. The file is opened on the first output, so a
container that writes nothing costs no file.

Reading turns the entries back into the output lines ``docker logs`` shows,
only whole entries: the monitor may be writing the next one.
"""

from __future__ import annotations

import json
import os
import select
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from layercake._container_state import ZERO_TIME, now, parse_time

__all__ = ["LogWriter", "follow_lines", "read_lines", "relay_output", "since_ns"]

Stream = Literal["stdout", "stderr"]

_CHUNK = 65536
# How often a follower looks for new entries.
_POLL_INTERVAL = 0.05


class LogWriter:
    """Append a container's output to its log file, whole lines at a time."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd = -1
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def feed(self, stream: Stream, chunk: bytes) -> None:
        """Log the complete lines of ``chunk``; keep a trailing partial line."""
        *lines, self._partial[stream] = (self._partial[stream] + chunk).split(b"\n")
        if lines:
            self._write([line + b"\n" for line in lines], stream)

    def end(self, stream: Stream) -> None:
        """The stream ended: log what is left of its last line."""
        rest, self._partial[stream] = self._partial[stream], b""
        if rest:
            self._write([rest], stream)

    def close(self) -> None:
        """Log both streams' partial lines and close the file."""
        self.end("stdout")
        self.end("stderr")
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self, lines: list[bytes], stream: str) -> None:
        if self._fd < 0:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            self._fd = os.open(self._path, flags, 0o640)
        stamp = now()
        os.write(
            self._fd,
            b"".join(
                json.dumps(
                    {
                        "log": line.decode(errors="replace"),
                        "stream": stream,
                        "time": stamp,
                    }
                ).encode()
                + b"\n"
                for line in lines
            ),
        )


def relay_output(
    out_r: int,
    err_r: int,
    targets: tuple[int | None, int | None],
    log: LogWriter | None,
) -> None:
    """Copy both pipes to ``targets`` (None: discard) and the log (if any) until
    both end.

    Closes the pipes. A target that went away (a closed pipe) stops
    receiving, but the log still gets everything.
    """
    streams: dict[int, tuple[Stream, int | None]] = {
        out_r: ("stdout", targets[0]),
        err_r: ("stderr", targets[1]),
    }
    poller = select.poll()
    for fd in streams:
        poller.register(fd, select.POLLIN)
    open_fds = set(streams)
    try:
        while open_fds:
            for fd, _event in poller.poll():
                stream, target = streams[fd]
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    if log is not None:
                        log.end(stream)
                    continue
                if log is not None:
                    log.feed(stream, chunk)
                if target is not None:
                    try:
                        _write_all(target, chunk)
                    except OSError:
                        streams[fd] = (stream, None)
    finally:
        for fd in streams:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def since_ns(since: float | str | None) -> int:
    """``docker logs --since`` as nanoseconds since the epoch; 0 for ``None``.

    Raises:
        ContainerConfigError: ``since`` is a string that is not a time.
    """
    if since is None:
        return 0
    if isinstance(since, str):
        from layercake._log_times import parse_log_time

        return parse_log_time(since)
    return int(since * 1_000_000_000)


def _format_line(
    raw: bytes, streams: set[str], floor: int, timestamps: bool
) -> bytes | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if entry.get("stream") not in streams:
        return None
    stamp = str(entry.get("time", ZERO_TIME))
    if floor and parse_time(stamp) < floor:
        return None
    text = str(entry.get("log", "")).encode()
    return (stamp.encode() + b" " + text) if timestamps else text


def _format_lines(
    data: bytes, streams: set[str], floor: int, timestamps: bool
) -> list[bytes]:
    lines = []
    for raw in data.splitlines():
        line = _format_line(raw, streams, floor, timestamps)
        if line is not None:
            lines.append(line)
    return lines


def read_lines(
    path: Path, streams: set[str], floor: int, timestamps: bool
) -> tuple[list[bytes], int]:
    """The lines of the log at ``path`` from ``streams``, written at or after
    ``floor`` (nanoseconds), and the offset after the last whole entry."""
    data = path.read_bytes() if path.exists() else b""
    # Only whole entries: the monitor may be writing the next one.
    complete = data[: data.rfind(b"\n") + 1]
    return _format_lines(complete, streams, floor, timestamps), len(complete)


def follow_lines(
    path: Path,
    first: list[bytes],
    offset: int,
    *,
    running: Callable[[], bool],
    streams: set[str],
    floor: int,
    timestamps: bool,
) -> Iterator[bytes]:
    """Yield ``first``, then each entry written after ``offset`` as it comes,
    until ``running`` says the container ended and the log is read out."""
    yield from first
    while True:
        # Read the state first: whatever was logged before the exit was
        # recorded is then read below, before stopping.
        still_running = running()
        if path.exists():
            with open(path, "rb") as file:
                file.seek(offset)
                data = file.read()
            complete = data[: data.rfind(b"\n") + 1]
            offset += len(complete)
            yield from _format_lines(complete, streams, floor, timestamps)
        if not still_running:
            return
        time.sleep(_POLL_INTERVAL)
