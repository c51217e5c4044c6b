"""The Linux system calls Python's ``os`` module lacks, through ctypes.

Every wrapper raises :class:`OSError` with the errno the kernel gave, so the
container set-up code can report which step failed and why.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import platform
import struct

__all__ = [
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "PR_CAPBSET_DROP",
    "PR_SET_DUMPABLE",
    "PR_SET_NAME",
    "PR_SET_NO_NEW_PRIVS",
    "PR_SET_PDEATHSIG",
    "has_pivot_root",
    "install_seccomp",
    "loopback_up",
    "mount",
    "namespace_owner",
    "pivot_root",
    "prctl",
    "reset_signals",
    "set_capabilities",
    "set_title",
    "sethostname",
    "setns",
    "umount2",
    "unshare",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203}
_SIOCSIFFLAGS = 0x8914
_NS_GET_USERNS = 0xB701
_IFF_UP_RUNNING = 0x1 | 0x40

_libc = ctypes.CDLL(None, use_errno=True)

_mount = _libc.mount
_mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_sethostname = _libc.sethostname
_sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_capset = _libc.capset
_capset.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
_prctl = _libc.prctl
_prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_syscall = _libc.syscall
_socket = _libc.socket
_socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
_ioctl = _libc.ioctl
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_char_p]
_signal = _libc.signal
_signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
_sigprocmask = _libc.sigprocmask
_sigprocmask.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]

_pivot_root_nr = _SYS_PIVOT_ROOT.get(platform.machine())

# struct ifreq for "lo": the name padded to IFNAMSIZ, then the flags short.
_LO_IFREQ = b"lo".ljust(16, b"\0") + _IFF_UP_RUNNING.to_bytes(2, "little") + bytes(22)
_EMPTY_SIGSET = bytes(128)


def _check(result: int) -> None:
    if result == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def mount(
    source: bytes | None,
    target: bytes,
    fstype: bytes | None,
    flags: int,
    data: bytes | None = None,
) -> None:
    """Call mount(2); raises OSError on failure."""
    _check(_mount(source, target, fstype, flags, data))


def umount2(target: bytes, flags: int) -> None:
    """Call umount2(2); raises OSError on failure."""
    _check(_umount2(target, flags))


def unshare(flags: int) -> None:
    """Call unshare(2); raises OSError on failure."""
    _check(_unshare(flags))


def setns(fd: int, nstype: int) -> None:
    """Call setns(2) to join the namespace ``fd`` refers to; raises OSError."""
    _check(_setns(fd, nstype))


def sethostname(name: bytes) -> None:
    """Call sethostname(2); raises OSError on failure."""
    _check(_sethostname(name, len(name)))


def prctl(option: int, arg: int) -> None:
    """Call prctl(2) with one argument; raises OSError on failure."""
    _check(_prctl(option, arg, 0, 0, 0))


def set_title(argv: tuple[bytes, ...]) -> None:
    """Show ``argv`` as this process's command line and name in /proc.

    The kernel reads /proc/PID/cmdline from the memory that held the
    original arguments, so they are overwritten in place, cut to fit.

    Raises:
        OSError: /proc/self/stat cannot be read, or prctl fails.
    """
    with open("/proc/self/stat", "rb") as file:
        fields = file.read().rpartition(b")")[2].split()
    # Fields 48 and 49 of proc(5), counted from 1; this list starts at 3.
    start, end = int(fields[45]), int(fields[46])
    title = b"\0".join(argv)[: end - start - 1]
    ctypes.memmove(start, title.ljust(end - start, b"\0"), end - start)
    name = ctypes.create_string_buffer(argv[0][:15])
    _check(_prctl(PR_SET_NAME, ctypes.addressof(name), 0, 0, 0))


_CAPABILITY_VERSION_3 = 0x20080522


def set_capabilities(capabilities: frozenset[int]) -> None:
    """Make ``capabilities`` this thread's effective and permitted sets.

    The inheritable set is emptied. Raises OSError on failure.
    """
    low = sum(1 << cap for cap in capabilities if cap < 32)
    high = sum(1 << (cap - 32) for cap in capabilities if cap >= 32)
    header = ctypes.create_string_buffer(struct.pack("=Ii", _CAPABILITY_VERSION_3, 0))
    data = ctypes.create_string_buffer(struct.pack("=6I", low, low, 0, high, high, 0))
    _check(_capset(header, data))


class _FilterProgram(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install_seccomp(program: bytes) -> None:
    """Install the packed BPF ``program`` as this thread's seccomp filter.

    Needs CAP_SYS_ADMIN or no_new_privs. Raises OSError on failure.
    """
    fprog = _FilterProgram(len(program) // 8, program)
    _check(_prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0))


def pivot_root(new_root: bytes, put_old: bytes) -> None:
    """Call pivot_root(2); raises OSError on failure or unknown machines."""
    if _pivot_root_nr is None:
        raise OSError(38, "pivot_root is not known on " + platform.machine())
    _check(
        _syscall(_pivot_root_nr, ctypes.c_char_p(new_root), ctypes.c_char_p(put_old))
    )


def loopback_up() -> None:
    """Bring the loopback interface of the current network namespace up.

    Raises OSError when no socket can be made or the ioctl is refused.
    """
    fd = _socket(2, 2, 0)
    _check(fd)
    try:
        _check(_ioctl(fd, _SIOCSIFFLAGS, _LO_IFREQ))
    finally:
        os.close(fd)


def reset_signals() -> None:
    """Unblock every signal and restore the default action of each.

    A Python parent ignores SIGPIPE and SIGXFSZ, and ignored signals survive
    execve, so a container process would otherwise inherit them.
    """
    for signum in range(1, 32):
        if signum not in (9, 19):
            _signal(signum, None)
    _sigprocmask(2, _EMPTY_SIGSET, None)


def namespace_owner(fd: int) -> int:
    """A new descriptor of the user namespace owning namespace ``fd``.

    Raises OSError when the kernel refuses (NS_GET_USERNS, Linux 4.9).
    """
    return fcntl.ioctl(fd, _NS_GET_USERNS)


def has_pivot_root() -> bool:
    """Return whether pivot_root(2)'s number is known for this machine."""
    return _pivot_root_nr is not None
