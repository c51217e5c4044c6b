"""What a container's directory records, so any process can find and drive it.

``containers/<id>/`` holds ``config.json`` (how the container was created,
written once), ``state.json`` (status, pids, exit code and times, replaced
atomically on each change) and ``container-json.log`` (its output, one JSON
object per line as Docker's json-file log driver writes it). ``stop-requested``
exists from the moment the user stops or kills the container until it is
started again: its monitor then restarts it no more, whatever its policy.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import attrs

if TYPE_CHECKING:
    import cattrs

from layercake._restart_policy import NO_RESTART, RestartPolicy
from layercake.runtime import ProcessSpec

__all__ = [
    "CONFIG_FILE",
    "LOG_FILE",
    "STATE_FILE",
    "STOP_FILE",
    "ZERO_TIME",
    "ContainerRecord",
    "ContainerState",
    "is_alive",
    "now",
    "parse_time",
    "process_start_time",
    "read_record",
    "read_state",
    "status_text",
    "write_record",
    "write_state",
]

logger = logging.getLogger(__name__)

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Docker's StartedAt and FinishedAt for a time that has not come yet."""

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
LOG_FILE = "container-json.log"
STOP_FILE = "stop-requested"

Status = Literal["created", "running", "exited", "dead"]


@functools.cache
def _converter() -> cattrs.Converter:
    import cattrs  # only container records need it: keep it off start-up

    return cattrs.Converter()


@attrs.frozen
class ContainerRecord:
    """How a container was created: its image, overrides and resolved process."""

    id: str
    name: str
    created: str
    image: str
    image_reference: str
    process: ProcessSpec
    lower_dirs: tuple[str, ...]
    hostname: str
    network: str = "none"
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    init: bool = False
    read_only: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    tmpfs: tuple[tuple[str, int, int], ...] = ()
    # Each tmpfs's other options in --tmpfs form (rw,noexec,...), in order.
    tmpfs_options: tuple[str, ...] = ()
    binds: tuple[tuple[str, str, bool], ...] = ()
    memory: int = 0
    cpus: float = 0.0
    cpu_shares: int = 0
    pids_limit: int = 0
    privileged: bool = False
    ports: tuple[tuple[int, str, str, int], ...] = ()
    executor: str = "builtin"
    network_aliases: tuple[str, ...] = ()
    restart: RestartPolicy = NO_RESTART
    stdin_open: bool = False
    storage_driver: str = "overlay"
    auto_remove: bool = False
    extra_hosts: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()


@attrs.frozen
class ContainerState:
    """Where a container is in its life (Docker's ``State`` object, and pids).

    ``paused`` is true while a running container's cgroup is frozen.
    ``attached`` marks a container run by ``run()`` or ``attach()``: its
    ``monitor_pid`` is the process that runs it, which outlives it.

    ``pid_start`` and ``monitor_start`` are the kernel start times of the
    two processes, so a pid reused by an unrelated process is never taken
    for the container's.

    ``restarting`` is true while the monitor waits to start the process
    again under the restart policy (``status`` stays ``running``, ``pid``
    is 0, ``exit_code`` and ``finished_at`` are the last run's, as Docker
    records it); ``restart_count`` counts the policy's restarts since the
    container was last started by the user.
    """

    status: Status = "created"
    pid: int = 0
    pid_start: int = 0
    monitor_pid: int = 0
    monitor_start: int = 0
    exit_code: int = 0
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    oom_killed: bool = False
    error: str = ""
    cgroup_version: int = 0
    cgroup_paths: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    ports: tuple[tuple[int, str, str, int], ...] = ()
    paused: bool = False
    attached: bool = False
    restarting: bool = False
    restart_count: int = 0


def now() -> str:
    """The current UTC time in RFC 3339 with nanoseconds, as Docker writes it."""
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of a time :func:`now` wrote."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    stamp = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    seconds = int(stamp.replace(tzinfo=datetime.UTC).timestamp())
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


def process_start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` (clock ticks after boot), or None if ended."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: count from the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None  # ended, only waiting to be reaped
    return int(fields[19])


def is_alive(pid: int, start: int) -> bool:
    """Whether ``pid`` still is the process that started at ``start``."""
    return pid > 0 and process_start_time(pid) == start


def status_text(state: ContainerState) -> str:
    """Docker's ``State.Status`` of a recorded state."""
    if state.status == "running" and state.restarting:
        return "restarting"
    if state.status == "running" and state.paused:
        return "paused"
    return state.status


def _sorted_set(value: object) -> list[object]:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")


def _write_json(path: Path, value: object) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    # dumps, not dump: only the one-shot encoder is the C one, about three
    # times faster on a record, which is written at each start and exit.
    text = json.dumps(value, separators=(",", ":"), default=_sorted_set)
    with open(temporary, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def write_record(directory: Path, record: ContainerRecord) -> None:
    """Write ``config.json`` in a container's directory."""
    # attrs.asdict keeps tuples and sets, so the JSON is the one cattrs's
    # unstructure gives, without cattrs's import and generated functions on
    # the way of every container's creation.
    _write_json(directory / CONFIG_FILE, attrs.asdict(record))


def read_record(directory: Path) -> ContainerRecord:
    """Read ``config.json``; raises OSError or ValueError when it is missing or bad."""
    with open(directory / CONFIG_FILE) as file:
        data = json.load(file)
    import cattrs

    try:
        return _converter().structure(data, ContainerRecord)
    except (cattrs.BaseValidationError, KeyError, TypeError) as error:
        raise ValueError(f"{directory / CONFIG_FILE}: {error}") from None


def write_state(directory: Path, state: ContainerState) -> None:
    """Replace ``state.json`` atomically."""
    _write_json(directory / STATE_FILE, attrs.asdict(state))


def read_state(directory: Path) -> ContainerState:
    """Read ``state.json``; a container never started has none (``created``).

    A file that cannot be read or makes no sense (cut short by a crash or a
    full disk) gives the status ``dead``, as Docker calls a container it
    cannot account for, and a logged warning naming the file: the container
    can still be listed and removed. Never raises.
    """
    path = directory / STATE_FILE
    try:
        with open(path) as file:
            data = json.load(file)
    except FileNotFoundError:
        return ContainerState()
    except (OSError, ValueError) as e:
        return _dead(path, e)
    try:
        return _plain_state(data)
    except (_NotPlain, TypeError, ValueError):
        pass  # cattrs converts what it can, and words what is wrong
    import cattrs

    try:
        return _converter().structure(data, ContainerState)
    except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as e:
        return _dead(path, e)


def _dead(path: Path, e: Exception) -> ContainerState:
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    logger.warning("cannot read %s, the container is taken as dead: %s", path, reason)
    return ContainerState(status="dead", error=f"cannot read {path}: {reason}")


class _NotPlain(Exception):
    """A state.json value that is not exactly of its field's type."""


# state.json as write_state wrote it is read without cattrs: its import and
# generated functions would cost every `run` and `ps` milliseconds. Anything
# else goes to the cattrs reader, so the two never give different states.
def _plain_state(data: Any) -> ContainerState:
    if type(data) is not dict:
        raise _NotPlain
    annotations = ContainerState.__annotations__
    return ContainerState(
        **{k: _plain(annotations[k], v) for k, v in data.items() if k in annotations}
    )


def _plain(annotation: str, value: Any) -> Any:
    if annotation == "Status":
        if value not in get_args(Status):
            raise _NotPlain
        return value
    if annotation.startswith("tuple[") and annotation.endswith(", ...]"):
        if type(value) is not list:
            raise _NotPlain
        return tuple(_plain(annotation[6:-6], item) for item in value)
    if annotation.startswith("tuple["):
        kinds = annotation[6:-1].split(", ")
        if type(value) is not list or len(value) != len(kinds):
            raise _NotPlain
        return tuple(_plain(kind, item) for kind, item in zip(kinds, value))
    if type(value) is not _SCALARS[annotation]:
        raise _NotPlain
    return value


_SCALARS = {"str": str, "int": int, "bool": bool}
