"""The user-owned network namespace that holds a rootless user's networks.

An unprivileged user cannot make bridges on the host. So, as podman's
rootless netns, one process of the user (the *holder*, see
:func:`layercake.runtime.hold_namespaces`) keeps a user namespace and a
network namespace alive; the bridges of the store's networks live in that
network namespace, and containers on them join the holder's user namespace,
so that their own network namespaces are owned by it and can be given a
veth pair on a bridge. One slirp4netns attached to the holder gives every
network outbound access (10.0.2.100 on ``tap0``, masqueraded by an nft
table inside), when slirp4netns can run; published ports are forwarded by
each container's monitor as for every other network mode.

The holder of a store is found again by every process of its user through
``netns.json`` in a private directory: ``$XDG_RUNTIME_DIR/layercake/
netns-<hash of the store path>``, else ``<store>/netns``. Its pid is
trusted only with its start time and owner. It lives while containers on
the store's user-defined networks run: the end of the last one, and the
next ps, prune or start after a crash, stop it, and slirp4netns with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import attrs

from layercake import _bridge, _slirp, runtime
from layercake._container_state import is_alive, process_start_time
from layercake.errors import ContainerError

__all__ = [
    "UserNetns",
    "attach",
    "begin_start",
    "finish_start",
    "find",
    "remove_bridge",
    "state_dir",
    "stop_if_idle",
    "sync_bridges",
]

logger = logging.getLogger(__name__)

OUTBOUND_DEVICE = "tap0"
OUTBOUND_SUBNET = "10.0.2.0/24"
_STATE = "netns.json"
_TABLE = "layercake"
_READY_TIMEOUT = 10.0


@attrs.frozen
class UserNetns:
    """A running holder and the slirp4netns serving it.

    Attributes:
        pid: the holder's pid.
        start: its kernel start time, which tells it from a recycled pid.
        slirp_pid: slirp4netns's pid, 0 without outbound access.
        slirp_start: its start time.
        outbound: why there is no outbound access; empty when there is.
    """

    pid: int
    start: int
    slirp_pid: int = 0
    slirp_start: int = 0
    outbound: str = ""

    @property
    def user_namespace(self) -> str:
        """The path of the holder's user namespace, for containers to join."""
        return f"/proc/{self.pid}/ns/user"


def state_dir(store_path: Path) -> Path:
    """The private directory where the store's holder is recorded."""
    key = hashlib.sha256(os.fsencode(os.path.abspath(store_path))).hexdigest()[:16]
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
    with contextlib.suppress(OSError):
        if runtime_dir and os.stat(runtime_dir).st_uid == os.geteuid():
            return Path(runtime_dir) / "layercake" / f"netns-{key}"
    return store_path / "netns"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ours(pid: int, start: int) -> bool:
    if not is_alive(pid, start):
        return False
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.geteuid()
    except OSError:
        return False


def _read(directory: Path) -> UserNetns | None:
    try:
        return UserNetns(**json.loads((directory / _STATE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _kill(pid: int, start: int) -> None:
    """SIGKILL ``pid`` if it still is our process that started at ``start``,
    and wait for it to end."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        # Checked after the pidfd is open: the pidfd cannot be recycled.
        if _ours(pid, start):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            # Readable once it has ended: gone when the caller returns.
            select.select([pidfd], [], [], _READY_TIMEOUT)
    finally:
        os.close(pidfd)


def _clear(directory: Path, netns: UserNetns) -> None:
    _kill(netns.pid, netns.start)
    if netns.slirp_pid:
        _kill(netns.slirp_pid, netns.slirp_start)
    (directory / _STATE).unlink(missing_ok=True)


def _current(directory: Path) -> UserNetns | None:
    """The recorded holder if it still runs; a dead one's record is cleared."""
    netns = _read(directory)
    if netns is None:
        return None
    if _ours(netns.pid, netns.start):
        return netns
    logger.info("the user-owned network namespace (pid %d) had ended", netns.pid)
    _clear(directory, netns)
    return None


def find(store_path: Path) -> UserNetns | None:
    """The store's running holder, if any (a dead one's traces are removed)."""
    directory = state_dir(store_path)
    if not (directory / _STATE).exists():
        return None
    with _locked(directory):
        return _current(directory)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _start() -> UserNetns:
    holder = runtime.hold_namespaces()
    threading.Thread(target=_reap, args=(holder.pid,), daemon=True).start()
    start = process_start_time(holder.pid) or 0
    try:
        _inside(UserNetns(holder.pid, start), _enable_forwarding)
        slirp_pid, reason = _start_slirp(holder.pid, holder.exit_fd)
    except BaseException:
        _kill(holder.pid, start)
        raise
    finally:
        os.close(holder.exit_fd)
    if reason:
        logger.warning("user-defined networks have no outbound access: %s", reason)
        return UserNetns(holder.pid, start, outbound=reason)
    return UserNetns(
        holder.pid, start, slirp_pid, process_start_time(slirp_pid) or 0
    )


def _enable_forwarding() -> bytes:
    with open("/proc/sys/net/ipv4/ip_forward", "w") as file:
        file.write("1")
    return b""


def _start_slirp(pid: int, exit_fd: int) -> tuple[int, str]:
    """Serve the holder's namespace with slirp4netns; its pid, or why not."""
    binary = shutil.which("slirp4netns")
    if binary is None:
        return 0, "slirp4netns is not installed (Debian: apt-get install slirp4netns)"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return 0, "slirp4netns needs read and write access to /dev/net/tun"
    try:
        process = _slirp.launch(binary, pid, OUTBOUND_DEVICE, exit_fd, detached=True)
    except ContainerError as error:
        return 0, str(error)
    threading.Thread(target=process.wait, daemon=True).start()
    return process.pid, ""


def _inside(netns: UserNetns, work: Callable[[], bytes]) -> bytes:
    """Run ``work`` in a forked child that joined the holder's namespaces.

    Raises:
        ContainerError: the namespaces could not be joined or ``work``
            failed (its message).
    """
    out_r, out_w = os.pipe()
    child = os.fork()
    if child == 0:
        _run_inside(netns, work, out_r, out_w)
    os.close(out_w)
    with open(out_r, "rb", buffering=0) as out:
        answer = out.readall()
    _, status = os.waitpid(child, 0)
    kind, _, payload = answer.partition(b" ")
    if os.waitstatus_to_exitcode(status) != 0 or kind != b"ok":
        raise ContainerError(payload.decode(errors="replace") or "failed")
    return payload


def _run_inside(
    netns: UserNetns, work: Callable[[], bytes], out_r: int, out_w: int
) -> None:
    # The forked child: it must never return into the caller's code.
    code = 0
    try:
        os.close(out_r)
        gone = f"the user-owned network namespace (pid {netns.pid}) ended"
        if not _ours(netns.pid, netns.start):
            raise OSError(gone)
        runtime.join_network_of(netns.pid)
        # Checked again once joined: the pid was not recycled meanwhile.
        if not _ours(netns.pid, netns.start):
            raise OSError(gone)
        result = work()
        os.write(out_w, b"ok " + result)
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        code = 1
        text = getattr(error, "strerror", None) or str(error)
        with contextlib.suppress(OSError):
            os.write(out_w, b"error " + str(text).encode(errors="replace"))
    finally:
        os._exit(code)


def _command(argv: list[str], script: str) -> Callable[[], bytes]:
    def run() -> bytes:
        result = subprocess.run(
            argv, input=script.encode(), capture_output=True, check=False
        )
        if result.returncode:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            raise OSError(f"{argv[0]}: {lines[0] if lines else 'failed'}")
        return result.stdout

    return run


def sync_bridges(netns: UserNetns, wanted: Sequence[tuple[str, str, int]]) -> None:
    """Make the bridges ``(device, gateway, prefixlen)`` that are missing.

    The nft table (masquerade out of ``tap0``, no traffic between networks)
    is rewritten for them when one was made.

    Raises:
        ContainerError: ``ip`` or ``nft`` refused (the message says why).
    """
    present = set(_inside(netns, _links).decode().split())
    missing = [w for w in wanted if w[0] not in present]
    if not missing:
        return
    commands = []
    for device, gateway, prefixlen in missing:
        commands += [
            f"link add {device} type bridge",
            f"addr add {gateway}/{prefixlen} dev {device}",
            f"link set {device} up",
        ]
    _inside(netns, _command(["ip", "-batch", "-"], "\n".join(commands) + "\n"))
    _write_table(netns, sorted(present | {w[0] for w in wanted}))


def _links() -> bytes:
    return " ".join(name for _, name in socket.if_nameindex()).encode()


def _write_table(netns: UserNetns, devices: Sequence[str]) -> None:
    bridges = [d for d in devices if d.startswith("lcbr")]
    script = [
        f"table ip {_TABLE} {{}}",
        f"delete table ip {_TABLE}",
        f"table ip {_TABLE} {{",
        "  chain postrouting { type nat hook postrouting priority srcnat;",
        f'    oifname "{OUTBOUND_DEVICE}" masquerade',
        "  }",
        "  chain forward { type filter hook forward priority filter;",
    ]
    script += _bridge.isolation_rules(bridges)
    script += ["  }", "}"]
    _inside(netns, _command(["nft", "-f", "-"], "\n".join(script) + "\n"))


def remove_bridge(store_path: Path, device: str) -> None:
    """Delete the bridge ``device`` in the store's holder, if one runs."""
    netns = find(store_path)
    if netns is None:
        return
    try:
        present = set(_inside(netns, _links).decode().split())
        if device in present:
            _inside(netns, _command(["ip", "-batch", "-"], f"link del {device}\n"))
            _write_table(netns, sorted(present - {device}))
    except ContainerError as error:
        logger.debug("cannot remove bridge %s: %s", device, error)


def attach(
    netns: UserNetns,
    pid: int,
    *,
    bridge: str,
    veth: str,
    address: str,
    prefixlen: int,
    gateway: str,
    mac: str,
) -> None:
    """Give the network namespace of container ``pid`` an ``eth0`` on ``bridge``.

    Raises:
        ContainerError: the container is not in the holder's user namespace
            (it ended meanwhile), or the kernel refused a step.
    """
    try:
        inside = os.stat(f"/proc/{pid}/ns/user").st_ino
        holder = os.stat(netns.user_namespace).st_ino
    except OSError:
        inside, holder = 0, -1
    if inside != holder or not _ours(netns.pid, netns.start):
        raise ContainerError(
            "the user-owned network namespace ended while the container started"
        )

    def plug() -> bytes:
        _bridge.attach(
            pid,
            bridge=bridge,
            veth=veth,
            address=address,
            prefixlen=prefixlen,
            gateway=gateway,
            mac=mac,
        )
        return b""

    _inside(netns, plug)


def _starting(directory: Path) -> Path:
    return directory / "starting"


def begin_start(store_path: Path, container_id: str) -> UserNetns:
    """The holder for a container about to start on one of its networks.

    Until :func:`finish_start`, or the end of this process, the holder is
    not stopped as idle.

    Raises:
        ContainerError: the namespaces could not be made.
    """
    directory = state_dir(store_path)
    with _locked(directory):
        netns = _current(directory)
        if netns is None:
            netns = _start()
            (directory / _STATE).write_text(json.dumps(attrs.asdict(netns)))
            logger.info(
                "started the user-owned network namespace (pid %d)", netns.pid
            )
        marks = _starting(directory)
        marks.mkdir(exist_ok=True)
        me = os.getpid()
        (marks / container_id).write_text(f"{me} {process_start_time(me) or 0}")
    return netns


def finish_start(store_path: Path, container_id: str) -> None:
    """Say that the container of :func:`begin_start` is in the namespace."""
    (_starting(state_dir(store_path)) / container_id).unlink(missing_ok=True)


def _starts_pending(directory: Path) -> bool:
    marks = _starting(directory)
    if not marks.is_dir():
        return False
    pending = False
    for mark in marks.iterdir():
        try:
            pid, start = (int(n) for n in mark.read_text().split())
        except (OSError, ValueError):
            continue
        if is_alive(pid, start):
            pending = True
        else:
            mark.unlink(missing_ok=True)
    return pending


def _members(netns: UserNetns) -> list[int]:
    """Container processes in the holder's user namespace.

    Helpers in the caller's PID namespace (a monitor's socket maker, a
    starting container's relay) do not count: they end with a container.
    """
    try:
        user = os.readlink(netns.user_namespace)
        own_pid_namespace = os.readlink(f"/proc/{netns.pid}/ns/pid")
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == netns.pid:
            continue
        try:
            if (
                os.readlink(f"/proc/{entry}/ns/user") == user
                and os.readlink(f"/proc/{entry}/ns/pid") != own_pid_namespace
                # A zombie keeps its namespaces' links until it is reaped.
                and process_start_time(int(entry)) is not None
            ):
                found.append(int(entry))
        except OSError:
            continue
    return found


def stop_if_idle(store_path: Path) -> bool:
    """Stop the store's holder (and slirp4netns) when no container uses it.

    A dead holder's traces are removed too. Returns whether one was stopped.
    """
    directory = state_dir(store_path)
    if not (directory / _STATE).exists():
        return False
    with _locked(directory):
        netns = _current(directory)
        if netns is None:
            _remove_directory(directory)
            return False
        if _starts_pending(directory) or _members(netns):
            return False
        _clear(directory, netns)
        _remove_directory(directory)
    logger.info("stopped the idle user-owned network namespace (pid %d)", netns.pid)
    return True


def _remove_directory(directory: Path) -> None:
    # The lock file stays: a process may be waiting for it right now.
    with contextlib.suppress(OSError):
        _starting(directory).rmdir()
