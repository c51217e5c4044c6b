"""Linux capability names and Docker's default set, for cap_add and cap_drop."""

from __future__ import annotations

from collections.abc import Iterable

from layercake.errors import ContainerConfigError

__all__ = ["DOCKER_DEFAULT", "NAMES", "capability_set"]

NAMES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)
"""Capability names without ``CAP_``, indexed by number."""

DOCKER_DEFAULT = frozenset({0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31})
"""The capabilities Docker leaves a container by default."""


def _number(name: str) -> int:
    text = name.upper().removeprefix("CAP_")
    try:
        return NAMES.index(text)
    except ValueError:
        raise ContainerConfigError(f"unknown capability: {name!r}") from None


def capability_set(
    add: Iterable[str], drop: Iterable[str], *, privileged: bool
) -> frozenset[int]:
    """Docker's default set with ``add`` and ``drop`` applied (``ALL`` works).

    Privileged containers keep every capability. As in Docker, additions
    are applied after drops, so ``drop=["ALL"], add=["CHOWN"]`` keeps one.

    Raises:
        ContainerConfigError: an unknown capability name.
    """
    everything = frozenset(range(len(NAMES)))
    if privileged:
        return everything
    drops = [d.upper() for d in drop]
    adds = [a.upper() for a in add]
    kept = set(DOCKER_DEFAULT)
    if "ALL" in drops:
        kept.clear()
    kept -= {_number(d) for d in drops if d != "ALL"}
    if "ALL" in adds:
        kept |= everything
    kept |= {_number(a) for a in adds if a != "ALL"}
    return frozenset(kept)
