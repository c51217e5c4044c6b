"""A container's pseudo terminal: made inside, its master handed out.

As runc's console socket does, the terminal is allocated by the container's
own process after pivot_root, through the ``/dev/ptmx`` of the container's
private devpts, so the process sees ``/dev/pts/0`` as Docker shows it. The
master travels to the starting process over a Unix socket pair
(``SCM_RIGHTS``); the slave becomes the process's stdin, stdout, stderr
and controlling terminal.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
from typing import TYPE_CHECKING

from layercake.errors import ContainerError

if TYPE_CHECKING:
    import socket

# socket is imported by the functions that need it: a container without a
# terminal does not pay for it at start-up. console_pair() runs before the
# fork, so the child finds it already loaded.

__all__ = ["console_pair", "open_terminal", "receive_master", "set_terminal_size"]

# linux/tty.h ioctls Python's termios module does not name.
_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def console_pair() -> tuple[socket.socket, int]:
    """A socket pair: the parent's end, and the child's end as a descriptor.

    Both ends sit above the standard descriptors, which the child rewires
    before it execs.
    """
    import socket

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child_fd = fcntl.fcntl(child.fileno(), fcntl.F_DUPFD_CLOEXEC, 3)
    child.close()
    if parent.fileno() < 3:
        moved = socket.socket(fileno=fcntl.fcntl(parent, fcntl.F_DUPFD_CLOEXEC, 3))
        parent.detach()
        parent = moved
    return parent, child_fd


def receive_master(parent: socket.socket) -> int:
    """Take the master the child sent; the child has exec'd or failed by now.

    Raises:
        ContainerError: the child sent no terminal.
    """
    import socket

    parent.setblocking(False)
    try:
        _, fds, _, _ = socket.recv_fds(parent, 1, 1)
    except BlockingIOError:
        fds = []
    finally:
        parent.close()
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise ContainerError("container set-up failed: no terminal was received")
    os.set_inheritable(fds[0], False)
    return fds[0]


def take_master(
    console: socket.socket | None, started: bool, failure: str | None
) -> tuple[int | None, str | None]:
    """Collect the terminal master of a start, if one was asked for.

    Returns the master (None without a terminal or when the start failed)
    and the start's failure, which a missing master becomes.
    """
    if console is None:
        return None, failure
    if failure is not None or not started:
        console.close()
        return None, failure
    try:
        return receive_master(console), None
    except ContainerError as error:
        return None, str(error).removeprefix("container set-up failed: ")


def set_terminal_size(fd: int, rows: int, columns: int) -> None:
    """Set the window size of the terminal ``fd`` is either side of.

    The kernel sends SIGWINCH to the terminal's foreground process group.

    Raises:
        OSError: ``fd`` is not a terminal.
    """
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def open_terminal(
    size: tuple[int, int] | None, uid: int, gid: int, console: int
) -> int:
    """In the container's child: allocate the terminal, send the master.

    Makes the calling process a session leader with the slave as its
    controlling terminal, owned by the process's user as Docker makes it;
    returns the slave. Call after pivot_root, before dropping privileges.

    Raises:
        OSError: a step failed.
    """
    import socket

    if os.getsid(0) != os.getpid():
        os.setsid()
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        (number,) = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))
        slave = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        os.fchown(slave, uid, gid)
        if size is not None:
            set_terminal_size(slave, *size)
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        socket.send_fds(socket.socket(fileno=console), [b"t"], [master])
    finally:
        os.close(master)
    return slave
