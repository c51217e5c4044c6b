"""Rootless ``bridge``: outbound access through slirp4netns.

An unprivileged user cannot make bridges or veth pairs on the host, so the
container's namespace gets a tap device served by slirp4netns, a user-mode
network stack that runs as the same user: the container has 10.0.2.100/24,
its gateway 10.0.2.2 and a DNS forwarder at 10.0.2.3; the host's loopback
is not reachable from it (``--disable-host-loopback``).

slirp4netns lives as long as the container: a thread of the process that
started it closes slirp4netns's exit pipe when PID 1 ends, and the pipe
also closes if that process dies first. Where slirp4netns cannot run (not
installed, or no access to /dev/net/tun) a rootless container on
``bridge`` has loopback only, as with ``none``, and creating it logs why
(:func:`unusable`).
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import subprocess
import threading
from collections.abc import Callable

from layercake.errors import ContainerConfigError, ContainerError

__all__ = ["ADDRESS", "DNS", "GATEWAY", "cause", "hook", "launch", "unusable"]

logger = logging.getLogger(__name__)

ADDRESS = "10.0.2.100"
GATEWAY = "10.0.2.2"
DNS = "10.0.2.3"
_READY_TIMEOUT = 10.0
_TUN = "/dev/net/tun"


def unusable() -> str:
    """Why slirp4netns cannot serve this user's containers; empty if it can."""
    if shutil.which("slirp4netns") is None:
        return (
            "network 'bridge' without root needs slirp4netns: install it "
            "(Debian: apt-get install slirp4netns) or use network='none' "
            "with published ports"
        )
    if not os.access(_TUN, os.R_OK | os.W_OK):
        return (
            f"network 'bridge' without root needs read and write access to "
            f"{_TUN} for slirp4netns (Debian makes it mode 0666); use "
            "network='none' with published ports"
        )
    return ""


def cause() -> str:
    """Why slirp4netns cannot run for this user, in a few words (``/dev/net/tun:
    permission denied``); empty if it can."""
    if shutil.which("slirp4netns") is None:
        return "slirp4netns is not installed"
    try:
        # Opening it is what slirp4netns does first; no device is made yet.
        os.close(os.open(_TUN, os.O_RDWR | os.O_CLOEXEC))
    except OSError as error:
        return f"{_TUN}: {(error.strerror or str(error)).lower()}"
    return ""


def _binary() -> str:
    reason = unusable()
    if reason:
        raise ContainerConfigError(reason)
    return shutil.which("slirp4netns") or "slirp4netns"


def hook() -> Callable[[int], None]:
    """The runtime hook that serves the namespace of PID 1 with slirp4netns.

    Raises:
        ContainerConfigError: slirp4netns is not installed, or this user
            cannot open /dev/net/tun.
    """
    binary = _binary()

    def start(pid: int) -> None:
        exit_r, exit_w = os.pipe()
        try:
            process = launch(binary, pid, "tap0", exit_r)
        except BaseException:
            os.close(exit_w)
            raise
        finally:
            os.close(exit_r)
        threading.Thread(
            target=_stop_with, args=(pid, exit_w, process), daemon=True
        ).start()

    return start


def launch(
    binary: str, pid: int, device: str, exit_fd: int, *, detached: bool = False
) -> subprocess.Popen[bytes]:
    """Start slirp4netns on the network namespace of process ``pid`` and
    return once its ``device`` is up; it ends when ``exit_fd``'s pipe closes.

    ``detached``: it outlives the starting process (a session of its own, and
    nothing of the starter's to write to), as the user-owned namespace's does.

    Raises:
        ContainerError: it could not be started or never became ready (with
            the last line it wrote, where it is not detached).
    """
    ready_r, ready_w = os.pipe()
    try:
        process = subprocess.Popen(
            [
                binary,
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                f"--ready-fd={ready_w}",
                f"--exit-fd={exit_fd}",
                str(pid),
                device,
            ],
            pass_fds=(ready_w, exit_fd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if detached else subprocess.PIPE,
            start_new_session=detached,
        )
    except OSError as error:
        os.close(ready_r)
        raise ContainerError(
            f"cannot start slirp4netns: {error.strerror or error}"
        ) from None
    finally:
        os.close(ready_w)
    try:
        ready = select.select([ready_r], [], [], _READY_TIMEOUT)[0]
        answer = os.read(ready_r, 1) if ready else b""
    finally:
        os.close(ready_r)
    if answer != b"1":
        process.kill()
        _, stderr = process.communicate()
        said = (stderr or b"").decode(errors="replace").strip().splitlines()
        raise ContainerError(
            "slirp4netns did not start: " + (said[-1] if said else "no answer")
        )
    return process


def _stop_with(pid: int, exit_w: int, process: subprocess.Popen[bytes]) -> None:
    """Wait for PID 1 to end, then make slirp4netns exit and reap it."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    if pidfd >= 0:
        select.select([pidfd], [], [])
        os.close(pidfd)
    os.close(exit_w)
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
    logger.debug("slirp4netns of process %d ended", pid)
