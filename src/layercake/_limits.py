"""Check a container's resource limits and working directory as ``docker
run`` does, with docker's words where it has them."""

from __future__ import annotations

import os

from layercake.errors import ContainerConfigError

__all__ = ["MIN_MEMORY", "check_limits", "check_workdir"]

# docker run refuses less: "Minimum memory limit allowed is 6MB".
MIN_MEMORY = 6 * 1024 * 1024


def check_limits(
    memory: object, cpus: object, cpu_shares: object, pids_limit: object
) -> tuple[int, float, int, int]:
    """Return the limits as ``(memory, cpus, cpu_shares, pids_limit)``, with
    docker's ``pids_limit=-1`` (no limit) as 0.

    0 means no limit for each of them.

    Raises:
        ContainerConfigError: a limit is not a number of the right kind, or
            outside what docker accepts.
    """
    memory = _integer("memory", memory)
    if memory < 0:
        raise ContainerConfigError(
            f"invalid memory limit {memory}: give bytes, or 0 for no limit"
        )
    if 0 < memory < MIN_MEMORY:
        raise ContainerConfigError("Minimum memory limit allowed is 6MB")

    if isinstance(cpus, bool) or not isinstance(cpus, int | float):
        raise ContainerConfigError(f"cpus must be a number, not {cpus!r}")
    available = len(os.sched_getaffinity(0))
    nano_cpus = round(cpus * 1_000_000_000)
    if nano_cpus and not 10_000_000 <= nano_cpus <= available * 1_000_000_000:
        raise ContainerConfigError(
            f"Range of CPUs is from 0.01 to {available}.00, as there are only "
            f"{available} CPUs available"
        )

    cpu_shares = _integer("cpu_shares", cpu_shares)
    if cpu_shares < 0:
        raise ContainerConfigError(
            f"invalid cpu shares {cpu_shares}: give a positive weight, or 0 "
            "for the default"
        )

    pids_limit = _integer("pids_limit", pids_limit)
    if pids_limit < -1:
        raise ContainerConfigError(
            f"invalid pids limit {pids_limit}: give a positive number, or 0 "
            "or -1 for no limit"
        )
    return memory, float(cpus), cpu_shares, max(pids_limit, 0)


def check_workdir(workdir: str | None) -> None:
    """Refuse a working directory that is not absolute, as docker does.

    Raises:
        ContainerConfigError: ``workdir`` is relative.
    """
    if workdir and not workdir.startswith("/"):
        raise ContainerConfigError(
            f"the working directory '{workdir}' is invalid, it needs to be an "
            "absolute path"
        )


def _integer(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContainerConfigError(f"{what} must be an integer, not {value!r}")
    return value
