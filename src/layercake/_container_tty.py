"""Relay between a container's terminal master and the caller's descriptors.

A container with a terminal writes stdout and stderr into one stream, read
from the master and logged as ``stdout``, as Docker's json-file log records
a terminal's output. Input read from the caller is written to the master,
where the terminal's line discipline echoes it and turns Ctrl-C into SIGINT
for the container's foreground processes.
"""

from __future__ import annotations

import errno
import os
import select

from layercake._container_log import LogWriter
from layercake.runtime import read_chunk, write_all

__all__ = ["relay_terminal"]

_CHUNK = 65536
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR


def relay_terminal(
    master: int, stdin: int | None, stdout: int | None, log: LogWriter | None
) -> None:
    """Copy ``stdin`` to the master and the master to ``stdout`` and the log.

    Returns when every holder of the terminal's slave closed it (the
    container's processes ended), after its last output; closes the master.
    The end of ``stdin`` only stops reading it. A ``stdout`` that went away
    stops receiving; the log still gets everything.
    """
    os.set_blocking(master, False)
    poller = select.poll()
    poller.register(master, select.POLLIN)
    if stdin is not None:
        poller.register(stdin, select.POLLIN)
    pending = b""
    try:
        while True:
            for fd, event in poller.poll():
                if fd == stdin:
                    chunk = read_chunk(stdin)
                    if chunk is None:
                        continue
                    if not chunk:
                        poller.unregister(stdin)
                        stdin = None
                        continue
                    pending += chunk
                    # Input waits until the terminal takes it; meanwhile no
                    # more is read, and output keeps flowing.
                    poller.unregister(stdin)
                    poller.modify(master, select.POLLIN | select.POLLOUT)
                    continue
                if event & select.POLLOUT and pending:
                    pending = _feed(master, pending)
                    if not pending:
                        poller.modify(master, select.POLLIN)
                        if stdin is not None:
                            poller.register(stdin, select.POLLIN)
                if not event & _READABLE:
                    continue
                output = read_chunk(master)
                if output is None:
                    continue
                if not output:
                    return
                if log is not None:
                    log.feed("stdout", output)
                if stdout is not None:
                    try:
                        write_all(stdout, output)
                    except OSError:
                        stdout = None
    finally:
        if log is not None:
            log.end("stdout")
        os.close(master)


def _feed(master: int, data: bytes) -> bytes:
    try:
        written = os.write(master, data)
    except BlockingIOError:
        return data
    except OSError as error:
        if error.errno == errno.EIO:
            return b""
        raise
    return data[written:]
