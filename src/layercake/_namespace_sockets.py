"""Sockets made in a container's network namespace by a rootless caller.

A socket stays in the network namespace it was made in. Root makes one by
moving a thread into the namespace for a moment; an unprivileged user may
not (setns needs CAP_SYS_ADMIN in the caller's own user namespace). So a
forked child joins the container's user and network namespaces and sends
back, over a socket pair, each socket it is asked for.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

from layercake import runtime

__all__ = ["SocketMaker"]


class SocketMaker:
    """A child process in the network namespace of a container's PID 1."""

    def __init__(self, pid: int) -> None:
        """Fork the child and have it join the namespaces of ``pid``.

        Raises:
            OSError: the child could not join them (the error it met).
        """
        self._lock = threading.Lock()
        self._channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._child = os.fork()
        if self._child == 0:
            self._channel.close()
            _serve(theirs, pid)
        theirs.close()
        greeting = self._channel.recv(256)
        if greeting != b"ready":
            self.close()
            raise OSError(
                f"cannot join the network of process {pid}: "
                + greeting.decode(errors="replace")
            )

    def socket(self, kind: int) -> socket.socket:
        """A new AF_INET socket of ``kind`` in the container's namespace.

        Raises:
            OSError: the child could not make it, or has gone.
        """
        with self._lock:
            self._channel.send(bytes([kind]))
            message, fds, _, _ = socket.recv_fds(self._channel, 256, 1)
        if not fds:
            raise OSError(message.decode(errors="replace") or "socket maker ended")
        return socket.socket(fileno=fds[0])

    def close(self) -> None:
        """End the child (it also dies with this process)."""
        self._channel.close()
        try:
            os.kill(self._child, signal.SIGKILL)
            os.waitpid(self._child, 0)
        except ChildProcessError:
            pass
        except ProcessLookupError:
            os.waitpid(self._child, 0)


def _serve(channel: socket.socket, pid: int) -> None:
    # The forked child: it must never return into the caller's code.
    try:
        # Only the channel stays open: the caller's listeners must close when
        # it closes them. The channel's end (EOF) is this child's end.
        keep = channel.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        try:
            runtime.join_network_of(pid)
        except OSError as error:
            channel.send((error.strerror or str(error)).encode())
            os._exit(1)
        channel.send(b"ready")
        while request := channel.recv(1):
            try:
                made = socket.socket(socket.AF_INET, request[0])
            except OSError as error:
                channel.send((error.strerror or str(error)).encode())
                continue
            socket.send_fds(channel, [b"s"], [made.fileno()])
            made.close()
    except BaseException:  # noqa: BLE001 - a forked child must never return
        os._exit(1)
    os._exit(0)
