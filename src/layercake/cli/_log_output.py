"""Print a container's log as ``docker logs`` does: what the container wrote
to stderr goes to stderr, the rest to stdout, in the order it was written.

The API returns one stream at a time with each line's time, so the two are
read apart and put back in order by time; the times are fixed-width UTC
RFC 3339 strings, so they sort as text.
"""

from __future__ import annotations

import heapq
import sys
import threading
from typing import TYPE_CHECKING, BinaryIO

from layercake.errors import LayercakeError

if TYPE_CHECKING:
    from layercake import Container

__all__ = ["print_logs"]

_STREAMS = ("stdout", "stderr")


def print_logs(
    container: Container,
    *,
    tail: int | None,
    since_ns: int | None,
    timestamps: bool,
    follow: bool,
) -> None:
    """Write the container's log lines to this process's stdout and stderr.

    Raises:
        ContainerError: the container was removed.
    """
    logged = {stream: _stamped_lines(container, stream) for stream in _STREAMS}
    merged = heapq.merge(
        *(
            [(line[:_STAMP_END], stream, line) for line in logged[stream]]
            for stream in _STREAMS
        )
    )
    floor = b"" if since_ns is None else _stamp(since_ns)
    lines = [(stream, line) for stamp, stream, line in merged if stamp >= floor]
    if tail is not None:
        lines = lines[len(lines) - tail :] if tail else []

    outputs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    previous = "stdout"
    for stream, line in lines:
        if stream != previous:
            # Keep the order where both streams meet (2>&1).
            outputs[previous].flush()
            previous = stream
        outputs[stream].write(line if timestamps else line[_STAMP_END + 1 :])
    outputs[previous].flush()
    if not follow:
        return

    # Each stream from its start in a thread of its own, skipping what was
    # printed above; the first error either meets is raised here.
    errors: list[BaseException] = []
    threads = [
        threading.Thread(
            target=_follow,
            args=(container, stream, len(logged[stream]), timestamps, outputs[stream]),
            kwargs={"errors": errors},
            daemon=True,
        )
        for stream in _STREAMS
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# "2026-12-04T10:00:00.123456789Z" is 30 bytes; a space follows.
_STAMP_END = 30


def _stamp(ns: int) -> bytes:
    import datetime

    seconds, fraction = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return (when.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z").encode()


def _stamped_lines(container: Container, stream: str) -> list[bytes]:
    data = container.logs(
        stdout=stream == "stdout", stderr=stream == "stderr", timestamps=True
    )
    # Every line but a stream's last may end without a newline.
    lines = data.split(b"\n")
    last = lines.pop()
    return [line + b"\n" for line in lines] + ([last] if last else [])


def _follow(
    container: Container,
    stream: str,
    skip: int,
    timestamps: bool,
    output: BinaryIO,
    *,
    errors: list[BaseException],
) -> None:
    lines = container.logs(
        stdout=stream == "stdout",
        stderr=stream == "stderr",
        timestamps=True,
        follow=True,
    )
    try:
        for index, line in enumerate(lines):
            if index < skip:
                continue
            output.write(line if timestamps else line[_STAMP_END + 1 :])
            output.flush()
    except (LayercakeError, OSError) as error:  # raised again in main thread
        errors.append(error)
