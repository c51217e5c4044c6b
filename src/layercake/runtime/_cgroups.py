"""Resource limits through cgroups: v2 where it is mounted, else v1 controllers.

Each container gets a cgroup ``layercake/<name>`` below the cgroup of the
process that creates it (so limits set above still apply), one per v1
controller or one in the v2 tree. The runtime's relay process joins it
before forking the container's PID 1, so everything the container runs is
counted from its first instruction.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from pathlib import Path

import attrs

__all__ = ["Cgroup", "Resources", "create_cgroup", "find_cgroup", "open_cgroup"]

logger = logging.getLogger(__name__)

_ROOT = Path("/sys/fs/cgroup")
_PARENT = "layercake"
_PERIOD_US = 100_000
_UNLIMITED_V1 = 1 << 62
_RELEASE_TIMEOUT = 2.0
_V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
_V1_FREEZER = "freezer"
_FREEZE_TIMEOUT = 5.0


@attrs.frozen
class Resources:
    """Limits as ``docker run`` takes them; 0 means no limit.

    ``memory`` is in bytes (swap is not allowed beyond it); ``cpus`` is a
    number of CPUs (``--cpus``); ``cpu_shares`` a relative weight
    (``--cpu-shares``, 1024 is the default); ``pids_limit`` the most
    processes at a time.
    """

    memory: int = 0
    cpus: float = 0.0
    cpu_shares: int = 0
    pids_limit: int = 0


@attrs.frozen
class Cgroup:
    """A container's cgroup: its directories, one per v1 controller or one v2."""

    version: int
    paths: tuple[str, ...]

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The ``cgroup.procs`` files a process writes its pid to, to join."""
        return tuple(path + "/cgroup.procs" for path in self.paths)

    def _file(self, controller: str, name: str) -> Path | None:
        for path in self.paths:
            if self.version == 2 or f"/{controller}/" in path:
                candidate = Path(path) / name
                if candidate.exists():
                    return candidate
        return None

    def _read_int(self, controller: str, name: str) -> int | None:
        file = self._file(controller, name)
        if file is None:
            return None
        text = file.read_text().strip()
        if text == "max":
            return None
        value = int(text)
        # cgroup v1 shows "no limit" as the largest page-aligned value.
        return None if value >= _UNLIMITED_V1 else value

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this cgroup."""
        return self.oom_kills() > 0

    def oom_kills(self) -> int:
        """How many processes of this cgroup the kernel's OOM killer killed."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        file = self._file("memory", name)
        if file is None:
            return 0
        for line in file.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def stats(self) -> dict[str, dict[str, int | None]]:
        """Current usage, with ``docker stats`` API names."""
        if self.version == 2:
            cpu = 0
            file = self._file("cpu", "cpu.stat")
            if file is not None:
                for line in file.read_text().splitlines():
                    if line.startswith("usage_usec "):
                        cpu = int(line.split()[1]) * 1000
            memory = {
                "usage": self._read_int("memory", "memory.current"),
                "max_usage": self._read_int("memory", "memory.peak"),
                "limit": self._read_int("memory", "memory.max"),
            }
        else:
            cpu = self._read_int("cpuacct", "cpuacct.usage") or 0
            memory = {
                "usage": self._read_int("memory", "memory.usage_in_bytes"),
                "max_usage": self._read_int("memory", "memory.max_usage_in_bytes"),
                "limit": self._read_int("memory", "memory.limit_in_bytes"),
            }
        return {
            "cpu_stats": {"total_usage": cpu},
            "memory_stats": memory,
            "pids_stats": {
                "current": self._read_int("pids", "pids.current"),
                "limit": self._read_int("pids", "pids.max"),
            },
        }

    def _freezer_file(self) -> Path | None:
        name = "cgroup.freeze" if self.version == 2 else "freezer.state"
        return self._file(_V1_FREEZER, name)

    def can_freeze(self) -> bool:
        """Whether this cgroup has a freezer (v2, or the v1 freezer mounted)."""
        return self._freezer_file() is not None

    def frozen(self) -> bool:
        """Whether the processes of this cgroup are frozen (paused)."""
        file = self._freezer_file()
        if file is None:
            return False
        return file.read_text().strip() in ("1", "FROZEN", "FREEZING")

    def freeze(self, frozen: bool = True) -> None:
        """Freeze (or thaw) every process of the cgroup and wait until done.

        Raises:
            OSError: the cgroup has no freezer, or the kernel refused or did
                not finish within a few seconds.
        """
        file = self._freezer_file()
        if file is None:
            raise OSError(errno.ENOTSUP, "the cgroup freezer is not available")
        if self.version == 2:
            file.write_text("1" if frozen else "0")
            wanted, events = "1" if frozen else "0", file.with_name("cgroup.events")
            check = events if events.exists() else file
        else:
            file.write_text("FROZEN" if frozen else "THAWED")
            wanted, check = "FROZEN" if frozen else "THAWED", file
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        while True:
            text = check.read_text()
            if check.name == "cgroup.events":
                text = dict(line.partition(" ")[::2] for line in text.splitlines()).get(
                    "frozen", ""
                )
            if text.strip() == wanted:
                return
            if time.monotonic() > deadline:
                raise OSError(errno.ETIMEDOUT, f"the cgroup freezer stayed {text!r}")
            time.sleep(0.001)

    def kill_all(self) -> None:
        """SIGKILL every process in the cgroup and wait (briefly) until none is left.

        Never raises: what cannot be killed stays, and :meth:`remove` says so.
        """
        deadline = time.monotonic() + _RELEASE_TIMEOUT
        while True:
            pids: set[int] = set()
            for path in self.paths:
                try:
                    with open(path + "/cgroup.procs") as procs:
                        pids.update(int(line) for line in procs.read().split())
                except OSError:
                    continue
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        """Delete the cgroup directories (and the parent, once empty).

        Failures are logged, never raised: a process still in it keeps it.
        """
        for path in self.paths:
            try:
                _rmdir_when_released(path)
            except FileNotFoundError:
                pass
            except OSError as error:
                logger.warning("cannot remove cgroup %s: %s", path, error.strerror)
                continue
            try:
                os.rmdir(os.path.dirname(path))
            except OSError:
                pass


def _rmdir_when_released(path: str) -> None:
    # Tasks that were just reaped stay charged to the cgroup for a moment,
    # which makes rmdir fail with EBUSY although cgroup.procs is empty.
    deadline = time.monotonic() + _RELEASE_TIMEOUT
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            with open(path + "/cgroup.procs") as procs:
                if procs.read().strip():
                    raise
        time.sleep(0.005)


def _own_paths() -> dict[str, str]:
    """This process's cgroup per v1 controller, and ``""`` for v2."""
    paths = {}
    with open("/proc/self/cgroup") as file:
        for line in file:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    return paths


def _is_v2() -> bool:
    return (_ROOT / "cgroup.controllers").exists()


def _make(path: Path) -> None:
    for _ in range(3):
        try:
            path.parent.mkdir(exist_ok=True)
            path.mkdir()
            return
        except FileExistsError:
            return
        except FileNotFoundError:
            # Another container removed the emptied parent just now.
            continue
    raise OSError(errno.ENOENT, "cgroup parent keeps disappearing", str(path))


def create_cgroup(name: str, resources: Resources) -> tuple[Cgroup | None, str]:
    """Create the cgroup ``layercake/<name>`` with ``resources`` applied.

    Returns the cgroup, or ``None`` and the reason when cgroups cannot be
    used here (no cgroup file system, no write access, a controller
    missing); the caller must report that reason, never drop it.
    """
    try:
        own = _own_paths()
        if _is_v2():
            cgroup = _create_v2(own.get("", "/"), name, resources)
        else:
            cgroup = _create_v1(own, name, resources)
    except OSError as error:
        reason = error.strerror or str(error)
        where = f" ({error.filename})" if error.filename else ""
        return None, f"resource limits not applied: {reason.lower()}{where}"
    return cgroup, ""


def _create_v2(own: str, name: str, resources: Resources) -> Cgroup:
    base = _ROOT / own.lstrip("/") / _PARENT
    if not base.exists():
        base.mkdir()
    wanted = {"memory", "cpu", "pids"}
    available = set((base.parent / "cgroup.controllers").read_text().split())
    missing = wanted - available
    if missing:
        raise OSError(
            errno.ENOTSUP,
            f"cgroup v2 controllers {', '.join(sorted(missing))} are not enabled",
        )
    (base.parent / "cgroup.subtree_control").write_text("+memory +cpu +pids")
    (base / "cgroup.subtree_control").write_text("+memory +cpu +pids")
    path = base / name
    _make(path)
    cgroup = Cgroup(2, (str(path),))
    try:
        if resources.memory:
            (path / "memory.max").write_text(str(resources.memory))
            swap = path / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
        if resources.cpus:
            quota = int(resources.cpus * _PERIOD_US)
            (path / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
        if resources.cpu_shares:
            weight = 1 + ((resources.cpu_shares - 2) * 9999) // 262142
            (path / "cpu.weight").write_text(str(max(1, min(10000, weight))))
        if resources.pids_limit:
            (path / "pids.max").write_text(str(resources.pids_limit))
    except OSError:
        cgroup.remove()
        raise
    return cgroup


def _create_v1(own: dict[str, str], name: str, resources: Resources) -> Cgroup:
    paths = []
    try:
        for controller in _V1_CONTROLLERS:
            mount = _ROOT / controller
            if not (mount / "cgroup.procs").exists():
                raise OSError(
                    errno.ENOENT, f"cgroup v1 controller {controller} is not mounted"
                )
            path = mount / own.get(controller, "/").lstrip("/") / _PARENT / name
            _make(path)
            paths.append(str(path))
        # The freezer only serves pause(); a machine without it still limits.
        freezer = _ROOT / _V1_FREEZER
        if (freezer / "cgroup.procs").exists():
            path = freezer / own.get(_V1_FREEZER, "/").lstrip("/") / _PARENT / name
            _make(path)
            paths.append(str(path))
        cgroup = Cgroup(1, tuple(paths))
        memory, cpu = Path(paths[0]), Path(paths[1])
        if resources.memory:
            (memory / "memory.limit_in_bytes").write_text(str(resources.memory))
            swap = memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(resources.memory))
        if resources.cpus:
            (cpu / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
            quota = int(resources.cpus * _PERIOD_US)
            (cpu / "cpu.cfs_quota_us").write_text(str(quota))
        if resources.cpu_shares:
            (cpu / "cpu.shares").write_text(str(resources.cpu_shares))
        if resources.pids_limit:
            (Path(paths[3]) / "pids.max").write_text(str(resources.pids_limit))
    except OSError:
        Cgroup(1, tuple(paths)).remove()
        raise
    return cgroup


def find_cgroup(name: str) -> Cgroup | None:
    """The cgroup ``layercake/<name>`` :func:`create_cgroup` would make here, if any.

    It finds a cgroup whose creator died before recording it, as long as
    it was made below this process's own cgroup. Never raises.
    """
    try:
        own = _own_paths()
        if _is_v2():
            candidates = [_ROOT / own.get("", "/").lstrip("/") / _PARENT / name]
        else:
            candidates = [
                _ROOT
                / controller
                / own.get(controller, "/").lstrip("/")
                / _PARENT
                / name
                for controller in (*_V1_CONTROLLERS, _V1_FREEZER)
            ]
    except OSError:
        return None
    paths = tuple(str(path) for path in candidates if path.is_dir())
    if not paths:
        return None
    return Cgroup(2 if _is_v2() else 1, paths)


def open_cgroup(version: int, paths: tuple[str, ...]) -> Cgroup:
    """The cgroup recorded as ``version`` and ``paths`` (by another process)."""
    return Cgroup(version, paths)
