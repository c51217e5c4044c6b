"""OCI runtime bundles: a sandbox spec as ``config.json``, run by runc or crun.

:func:`oci_config` describes the container the built-in runtime would make
(the same mounts, masked and read-only paths, namespaces, capabilities and
user) in the OCI runtime specification's terms. :func:`write_bundle` writes
it with the files it binds (``hosts``, ``hostname``, ``resolv.conf``) and
mounts the overlay on ``rootfs``; :func:`run_oci` runs a spec through an OCI
runtime binary instead of the built-in one.

A container whose network the caller configures (``configure_network``,
a bridge) gets its network namespace from the forked process that execs
the runtime: that process unshares it, brings loopback up and waits while
the caller plugs it in; the bundle then names no network namespace, so
the runtime's container inherits that one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from layercake.errors import (
    CommandNotStarted,
    ContainerConfigError,
    ContainerError,
    ContainerTimeout,
)

from . import _libc as libc
from ._capabilities import NAMES
from ._copy import mount_copy
from ._litter import remove_litter, upper_dirs_present
from ._plan import Plan, mount_overlay, prepare
from ._run import OutputCallback, collect
from ._seccomp import oci_profile
from ._spec import EXECUTORS, RunResult, SandboxSpec

__all__ = [
    "EXECUTORS",
    "OciProcess",
    "mount_rootfs",
    "oci_config",
    "run_oci",
    "start_oci",
    "write_bundle",
]

_OCI_VERSION = "1.0.2"
_ETC_FILES = ("hosts", "hostname", "resolv.conf")
_MASKED = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
_READ_ONLY = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)
_SYSFS_ROOT = "/sys/fs/cgroup"
_SETUP_FAILED = 125
_STATE_TIMEOUT = 10.0
_STATE_POLL = 0.005


def _mount(destination: str, kind: str, source: str, options: list[str]) -> Any:
    return {
        "destination": destination,
        "type": kind,
        "source": source,
        "options": options,
    }


def _base_mounts(privileged: bool) -> list[Any]:
    return [
        _mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        _mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            ["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        ),
        _mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        _mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        _mount(
            "/sys",
            "sysfs",
            "sysfs",
            ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"]),
        ),
    ]


def _capabilities(plan: Plan) -> dict[str, list[str]]:
    names = [f"CAP_{NAMES[n]}" for n in sorted(plan.capabilities) if n < len(NAMES)]
    # As Docker does: a process that is not root gets the bounding set only,
    # so switching user leaves it no effective capability.
    held = names if plan.uid == 0 else []
    return {"bounding": names, "effective": held, "permitted": held}


def _cgroups_path(spec: SandboxSpec) -> str | None:
    """The cgroup the runtime should use: the one the spec's limits made."""
    if not spec.cgroup_procs:
        return None
    directory = os.path.dirname(spec.cgroup_procs[0])
    relative = os.path.relpath(directory, _SYSFS_ROOT)
    if not os.path.exists(os.path.join(_SYSFS_ROOT, "cgroup.controllers")):
        # cgroup v1: paths are /sys/fs/cgroup/<controller>/<path>.
        relative = relative.partition("/")[2]
    return "/" + relative


def oci_config(
    spec: SandboxSpec,
    *,
    root_path: str = "rootfs",
    etc_dir: str = ".",
    inherit_network: bool = False,
) -> dict[str, Any]:
    """The OCI runtime ``config.json`` for ``spec``, as a JSON-ready dict.

    ``root_path`` is the root file system (relative to the bundle or
    absolute); ``etc_dir`` is where :func:`write_bundle` puts ``hosts``,
    ``hostname`` and ``resolv.conf``, which are bound over ``/etc`` (the
    spec's ``hosts_file`` instead, when it has one). ``inherit_network``
    leaves the container in the runtime's network namespace.

    Raises:
        ContainerConfigError: the spec cannot work, or needs what a bundle
            cannot express (``init``, a rootless user namespace).
    """
    plan = prepare(spec)
    if plan.rootless:
        raise ContainerConfigError(
            "an OCI bundle of a rootless container is not supported: run as root"
        )
    if spec.init:
        raise ContainerConfigError(
            "init=True needs the built-in executor: the OCI bundle has no init binary"
        )
    mounts = _base_mounts(spec.privileged)
    for name in _ETC_FILES:
        source = os.path.join(etc_dir, name)
        if name == "hosts" and spec.hosts_file:
            source = spec.hosts_file
        mounts.append(_mount(f"/etc/{name}", "bind", source, ["rbind", "rprivate"]))
    for bind in spec.mounts:
        options = ["rbind", "rprivate"] + (["ro"] if bind.read_only else [])
        mounts.append(
            _mount(bind.target, "bind", os.path.abspath(bind.source), options)
        )
    for tmpfs in spec.tmpfs:
        flags = (
            ("ro", tmpfs.read_only),
            ("noexec", tmpfs.noexec),
            ("nosuid", tmpfs.nosuid),
            ("nodev", tmpfs.nodev),
        )
        options = [name for name, wanted in flags if wanted]
        options.append(f"mode={tmpfs.mode:o}")
        if tmpfs.size:
            options.append(f"size={tmpfs.size}")
        options += [f"uid={tmpfs.uid}"] if tmpfs.uid is not None else []
        options += [f"gid={tmpfs.gid}"] if tmpfs.gid is not None else []
        mounts.append(_mount(tmpfs.target, "tmpfs", "tmpfs", options))

    namespaces: list[dict[str, str]] = [
        {"type": "pid"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "mount"},
    ]
    if plan.join_net is not None:
        namespaces.append({"type": "network", "path": os.fsdecode(plan.join_net)})
    elif plan.new_net and not inherit_network:
        namespaces.append({"type": "network"})

    linux: dict[str, Any] = {"namespaces": namespaces}
    if not spec.privileged:
        linux["maskedPaths"] = list(_MASKED)
        linux["readonlyPaths"] = list(_READ_ONLY)
    if plan.seccomp_filter:
        linux["seccomp"] = oci_profile(plan.capabilities)
    cgroups_path = _cgroups_path(spec)
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path
    user: dict[str, Any] = {"uid": plan.uid, "gid": plan.gid}
    if plan.groups:
        user["additionalGids"] = list(plan.groups)
    return {
        "ociVersion": _OCI_VERSION,
        "process": {
            "terminal": False,
            "user": user,
            "args": list(plan.argv),
            "env": [f"{key}={value}" for key, value in plan.env.items()],
            "cwd": plan.cwd,
            "capabilities": _capabilities(plan),
            "noNewPrivileges": plan.no_new_privileges,
        },
        "root": {"path": root_path, "readonly": spec.read_only},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": linux,
    }


def _write_etc(spec: SandboxSpec, directory: Path) -> None:
    plan = prepare(spec)
    for path, content in plan.etc_files:
        (directory / os.path.basename(path)).write_bytes(content)
        (directory / os.path.basename(path)).chmod(0o644)


def mount_rootfs(spec: SandboxSpec, target: str | os.PathLike[str]) -> None:
    """Mount ``spec``'s overlay (its lower and upper directories) on ``target``.

    The caller unmounts it (``umount``) once done; writes through it land
    in the spec's upper directory, as in a container.

    Raises:
        ContainerError: the kernel refused the mount.
    """
    plan = prepare(spec)
    target_b = os.fsencode(os.path.abspath(target))
    os.makedirs(target_b, exist_ok=True)
    here = os.getcwd()
    try:
        if plan.copy_dirs is not None:
            mount_copy(plan.copy_dirs, target_b)
        else:
            if plan.overlay_chdir is not None:
                os.chdir(plan.overlay_chdir)
            mount_overlay(target_b, plan.overlay_data)
    except OSError as error:
        raise ContainerError(
            f"cannot mount the container's overlay on {os.fsdecode(target_b)}: "
            f"{(error.strerror or str(error)).lower()}"
        ) from None
    finally:
        os.chdir(here)


def write_bundle(spec: SandboxSpec, path: str | os.PathLike[str]) -> Path:
    """Write an OCI runtime bundle for ``spec`` in ``path`` and return its path.

    ``path/config.json`` is :func:`oci_config`'s; ``path/hosts``,
    ``path/hostname`` and ``path/resolv.conf`` are the files bound over
    ``/etc``; ``path/rootfs`` is the container's overlay, mounted: the
    caller must unmount it (``umount path/rootfs``) when done. A scratch
    image (no lower directory) gets an empty read-only root.

    Raises:
        ContainerConfigError: see :func:`oci_config`.
        ContainerError: the overlay could not be mounted.
    """
    bundle = Path(path).absolute()
    bundle.mkdir(parents=True, exist_ok=True)
    config = oci_config(spec)
    _write_etc(spec, bundle)
    (bundle / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    mount_rootfs(spec, bundle / "rootfs")
    return bundle


def _targets(spec: SandboxSpec, config: dict[str, Any]) -> list[str]:
    """Mount targets the OCI runtime will create because the tree lacks them."""
    roots = [spec.rootfs.upper_dir, *spec.rootfs.lower_dirs]
    missing = []
    for mount in config["mounts"]:
        destination = os.path.normpath(mount["destination"])
        parts = destination.strip("/").split("/")
        # Every missing level is created, the deepest last.
        for depth in range(1, len(parts) + 1):
            path = "/" + "/".join(parts[:depth])
            if path in missing:
                continue
            if not any(os.path.lexists(root + path) for root in roots):
                missing.append(path)
    return missing


class OciProcess:
    """A container run by an OCI runtime binary (``runc run`` in the foreground).

    Attributes:
        pid: the host pid of the container's PID 1 (0 if it never ran).
        runtime_pid: the host pid of the OCI runtime process.
    """

    def __init__(
        self,
        runtime_pid: int,
        pid: int,
        command: list[str],
        container_id: str,
        state_dir: Path,
        cleanup: tuple[str, list[str], frozenset[str]],
    ) -> None:
        self.runtime_pid = runtime_pid
        self.pid = pid
        self._command = command
        self._id = container_id
        self._state_dir = state_dir
        self._cleanup = cleanup
        self._exit_code: int | None = None
        self.terminal: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the container to end and return its exit code.

        Raises:
            ContainerTimeout: still running after ``timeout`` seconds.
        """
        if self._exit_code is not None:
            return self._exit_code
        if timeout is not None and not _ended_within(self.runtime_pid, timeout):
            raise ContainerTimeout(
                f"container process {self.pid} still running after {timeout:g} seconds",
                timeout=timeout,
            )
        _, status = os.waitpid(self.runtime_pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self._exit_code = 128 - code if code < 0 else code
        shutil.rmtree(self._state_dir, ignore_errors=True)
        remove_litter(*self._cleanup)
        return self._exit_code

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the container's PID 1; nothing if it already ended.

        As in Docker, a PID 1 that installed no handler ignores most signals.
        """
        if self._exit_code is not None:
            return
        if self.pid > 0:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            return
        subprocess.run(
            [*self._command, "kill", self._id, str(sig)],
            capture_output=True,
            check=False,
        )

    def kill(self) -> None:
        """SIGKILL the container's PID 1, which ends every process in it."""
        self.send_signal(signal.SIGKILL)


def _ended_within(pid: int, timeout: float) -> bool:
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0.0, timeout) * 1000))
    finally:
        os.close(pidfd)


def _container_pid(command: list[str], container_id: str, runtime_pid: int) -> int:
    """PID 1's host pid, from ``<runtime> state`` once the container exists.

    0 when the runtime ended first (the container failed or already ended).
    """
    deadline = time.monotonic() + _STATE_TIMEOUT
    while time.monotonic() < deadline:
        done = subprocess.run(
            [*command, "state", container_id], capture_output=True, check=False
        )
        if done.returncode == 0:
            state = json.loads(done.stdout)
            if state.get("status") in ("running", "paused") and state.get("pid"):
                return int(state["pid"])
            if state.get("status") == "stopped":
                return 0
        if _ended_within(runtime_pid, _STATE_POLL):
            return 0
    return 0


def _exec_runtime(
    plan: Plan,
    argv: list[str],
    fds: tuple[int | None, int | None, int | None],
    network: tuple[tuple[int, int], tuple[int, int]] | None,
) -> NoReturn:
    # The forked child: the overlay is mounted in a mount namespace of the
    # runtime's own, so it goes away with it and never shows on the host.
    try:
        if network is not None:
            # The container's network namespace, plugged in by the parent
            # while this process waits: one byte says it is done. The
            # parent's ends are closed, so that its death ends the wait.
            (ready_r, ready_w), (go_r, go_w) = network
            os.close(ready_r)
            os.close(go_w)
            libc.unshare(libc.CLONE_NEWNET)
            libc.loopback_up()
            os.write(ready_w, b"N")
            os.close(ready_w)
            if os.read(go_r, 1) != b"G":
                os._exit(_SETUP_FAILED)
            os.close(go_r)
        stdin = fds[0] if fds[0] is not None else os.open(os.devnull, os.O_RDONLY)
        for target, fd in enumerate((stdin, fds[1], fds[2])):
            if fd is not None and fd != target:
                os.dup2(fd, target)
        os.setsid()
        libc.unshare(libc.CLONE_NEWNS)
        libc.mount(None, b"/", None, libc.MS_REC | libc.MS_PRIVATE)
        if plan.copy_dirs is not None:
            mount_copy(plan.copy_dirs, plan.root_b)
        else:
            if plan.overlay_chdir is not None:
                os.chdir(plan.overlay_chdir)
            mount_overlay(plan.root_b, plan.overlay_data)
        os.chdir("/")
        os.execv(argv[0], argv)
    except BaseException as error:  # noqa: BLE001 - a forked child never returns
        try:
            os.write(2, f"cannot start {argv[0]}: {error}\n".encode())
        finally:
            os._exit(_SETUP_FAILED)


def _plug_in(
    runtime_pid: int,
    pipes: tuple[tuple[int, int], tuple[int, int]],
    configure_network: Callable[[int], None],
) -> None:
    """Configure the forked runtime's network namespace, then let it go on.

    Raises:
        ContainerError: the child died first, or ``configure_network`` failed;
            the child is killed and reaped.
    """
    (ready_r, ready_w), (go_r, go_w) = pipes
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"N":
            failure: str | None = "the runtime process ended before it was plugged in"
        else:
            failure = None
            configure_network(runtime_pid)
            os.write(go_w, b"G")
    except Exception as error:  # noqa: BLE001 - reported as the set-up failure
        failure = str(error)
    except BaseException:
        os.kill(runtime_pid, signal.SIGKILL)
        os.waitpid(runtime_pid, 0)
        raise
    finally:
        os.close(ready_r)
        os.close(go_w)
    if failure is not None:
        os.kill(runtime_pid, signal.SIGKILL)
        os.waitpid(runtime_pid, 0)
        raise ContainerError(f"container set-up failed: network: {failure}")


def start_oci(
    spec: SandboxSpec,
    executor: str,
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    configure_network: Callable[[int], None] | None = None,
) -> OciProcess:
    """Start ``spec`` through the OCI runtime ``executor`` (``runc`` or ``crun``).

    The bundle is written next to the spec's upper directory (``oci/``);
    the overlay is mounted in a private mount namespace of the runtime
    process, so nothing is left mounted on the host.
    ``configure_network(pid)``, when given, is called with the pid of a
    process in the container's new network namespace before the runtime
    starts (see the module's docstring).

    Raises:
        ContainerConfigError: see :func:`oci_config`, or an unknown executor.
        CommandNotStarted: the runtime says the command could not be
            executed (not found, not executable).
        ContainerError: the executor is not installed, or
            ``configure_network`` failed (its message follows "network: ").
    """
    if executor not in EXECUTORS[1:]:
        raise ContainerConfigError(
            f"unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}"
        )
    binary = shutil.which(executor)
    if binary is None:
        raise ContainerError(f"the OCI runtime {executor} is not installed")
    plan = prepare(spec)
    bundle = Path(spec.rootfs.upper_dir).absolute().parent / "oci"
    bundle.mkdir(exist_ok=True)
    config = oci_config(
        spec,
        root_path=plan.root,
        etc_dir=str(bundle),
        inherit_network=configure_network is not None,
    )
    _write_etc(spec, bundle)
    (bundle / "config.json").write_text(json.dumps(config) + "\n")

    created = _targets(spec, config)
    present = upper_dirs_present(
        spec.rootfs.upper_dir,
        tuple(m.target for m in spec.mounts),
        driver=spec.rootfs.driver,
    )
    container_id = "layercake-" + secrets.token_hex(8)
    state_dir = bundle / "state"
    command = [binary, "--root", str(state_dir)]
    # The runtime's own errors, apart from the container's stderr.
    log = bundle / "runtime-log.json"
    log.unlink(missing_ok=True)
    logging = ["--log", str(log), "--log-format", "json"]
    argv = [*command, *logging, "run", "--bundle", str(bundle), container_id]
    pipes = (os.pipe(), os.pipe()) if configure_network is not None else None
    runtime_pid = os.fork()
    if runtime_pid == 0:
        _exec_runtime(plan, argv, (stdin, stdout, stderr), pipes)
    if pipes is not None and configure_network is not None:
        _plug_in(runtime_pid, pipes, configure_network)
    process = OciProcess(
        runtime_pid,
        _container_pid(command, container_id, runtime_pid),
        command,
        container_id,
        state_dir,
        (spec.rootfs.upper_dir, created, present),
    )
    # No pid: the container already ended or never ran, and the runtime is
    # about to end too; its log says whether the command could not be run.
    if process.pid == 0 and _ended_within(runtime_pid, _STATE_TIMEOUT):
        process.wait()
        not_started = _exec_failure(log, spec.process.args[0])
        if not_started is not None:
            raise not_started
    return process


# How runc and crun word a command they could not execute.
_EXEC_FAILED = re.compile(r'exec: "(?:[^"\\]|\\.)*": (.*)$')


def _exec_failure(log: Path, command: str) -> CommandNotStarted | None:
    """The error for a command the runtime's log says it could not execute."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    finally:
        log.unlink(missing_ok=True)
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        found = _EXEC_FAILED.search(str(entry.get("msg", "")))
        if entry.get("level") != "error" or found is None:
            continue
        reason = found.group(1)
        missing = "not found" in reason or "no such file" in reason
        return CommandNotStarted(
            f'exec: "{command}": {reason}',
            command=command,
            reason=reason,
            exit_code=127 if missing else 126,
        )
    return None


def run_oci(
    spec: SandboxSpec,
    executor: str,
    *,
    stdin: bytes | None = None,
    on_output: OutputCallback | None = None,
    timeout: float | None = None,
) -> RunResult:
    """Run ``spec`` through ``executor`` to its end, as :func:`run` does.

    Raises:
        ContainerConfigError: see :func:`start_oci`.
        ContainerError: the executor is not installed.
        ContainerTimeout: it ran longer than ``timeout`` seconds and was killed.
    """
    return collect(
        lambda i, o, e: start_oci(spec, executor, stdin=i, stdout=o, stderr=e),
        stdin,
        on_output,
        timeout,
    )
