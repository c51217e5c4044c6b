"""The Unix socket a container's monitor listens on for attaching clients.

Split from :mod:`._attach` so the monitor can bind it before it reports the
start (a client that connects at once waits in the backlog) while the
server's threads, and their imports, come only after.

The socket is reached through ``/proc/self/fd/N`` of the container's
directory, so a long store path does not hit the 108-byte limit of socket
addresses.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

__all__ = ["ATTACH_SOCKET", "SocketPlace", "listen"]

ATTACH_SOCKET = "attach.sock"
"""The socket's name in the container's directory."""

_BACKLOG = 8


class SocketPlace:
    """An open container directory and the short socket path through it."""

    def __init__(self, directory: Path) -> None:
        self.fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.path = f"/proc/self/fd/{self.fd}/{ATTACH_SOCKET}"

    def close(self) -> None:
        """Close the directory."""
        os.close(self.fd)


def listen(directory: Path) -> tuple[socket.socket, SocketPlace]:
    """Bind and listen on the container's socket (only its owner may connect).

    Raises:
        OSError: the socket could not be made.
    """
    place = SocketPlace(directory)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(place.path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(place.path)
        os.chmod(place.path, 0o600)
        listener.listen(_BACKLOG)
    except OSError:
        listener.close()
        place.close()
        raise
    return listener, place
