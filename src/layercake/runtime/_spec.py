"""The plain values a sandbox is described by and the result of a run."""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = [
    "DEFAULT_PATH",
    "EXECUTORS",
    "BindMount",
    "ProcessSpec",
    "RootfsSpec",
    "RunResult",
    "SandboxSpec",
    "TmpfsMount",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH a process gets when its environment names none, as in Docker."""

EXECUTORS = ("builtin", "runc", "crun")
"""The names :class:`layercake.Container` accepts as ``executor``."""


@attrs.frozen
class BindMount:
    """A host path made visible at ``target`` inside the container.

    Directories are bound recursively; a missing target is created (a
    directory for a directory source, an empty file otherwise) and removed
    from the upper directory after the run.
    """

    source: str
    target: str
    read_only: bool = False


@attrs.frozen
class TmpfsMount:
    """A fresh tmpfs mounted at ``target`` inside the container.

    ``size`` is in bytes (0: the kernel's default, half of RAM); ``mode`` is
    the permission of its root directory and ``uid``/``gid`` (None: root)
    its owner. By default it is mounted noexec, nosuid and nodev, as
    ``docker run --tmpfs``; ``read_only`` mounts it read-only.
    """

    target: str
    size: int = 0
    mode: int = 0o1777
    read_only: bool = False
    noexec: bool = True
    nosuid: bool = True
    nodev: bool = True
    uid: int | None = None
    gid: int | None = None


@attrs.frozen
class ProcessSpec:
    """The process to run as the container's PID 1.

    ``args[0]`` without a ``/`` is looked up in the PATH of ``env`` (or
    :data:`DEFAULT_PATH`); ``env`` holds ``KEY=VALUE`` entries; ``cwd`` is
    created (owned by root, mode 0755) when missing. ``capabilities`` are
    the capability numbers kept in the bounding set (``None``: Docker's
    default set); ``no_new_privileges`` stops setuid binaries and file
    capabilities from raising privileges. ``seccomp`` installs the default
    filter of system calls (see docs/security.md); privileged containers
    and ``seccomp=unconfined`` run without it.
    """

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    capabilities: frozenset[int] | None = None
    no_new_privileges: bool = False
    seccomp: bool = True
    terminal: bool = False
    terminal_size: tuple[int, int] | None = None


@attrs.frozen
class RootfsSpec:
    """The directories the container's root file system is made of.

    ``lower_dirs`` are listed top-most first, as overlayfs lists them, and
    may be empty (a ``scratch`` root). ``upper_dir`` receives every change;
    ``work_dir`` is overlayfs's scratch space on the same file system;
    ``mount_point`` is an empty directory the merged tree is mounted on,
    visible only inside the container. Missing directories are created.

    ``driver`` ``"copy"`` is for where overlayfs cannot be mounted: at the
    first use, the lower directories are merged into ``upper_dir`` by
    copying (see :func:`layercake.runtime.materialize`), which then holds
    the whole root file system and is bound on ``mount_point``.

    ``volatile`` is for an upper directory that is mounted once and then
    thrown away (``docker run --rm``): overlayfs is mounted with its
    ``volatile`` option, so the container's exit does not wait for the
    upper directory's whole file system to be synced. overlayfs marks such
    a work directory so as to refuse it after a crash; a layer mounted
    again (a ``--rm`` container started again or read before its removal)
    has the mark cleared first. Kernels before 5.10, which know no
    ``volatile``, and rootless containers mount without it.
    """

    lower_dirs: tuple[str, ...]
    upper_dir: str
    work_dir: str
    mount_point: str
    driver: Literal["overlay", "copy"] = "overlay"
    volatile: bool = False


@attrs.frozen
class SandboxSpec:
    """Everything needed to run one process in an isolated container.

    ``network`` is ``"none"`` (a new network namespace with only loopback,
    up) or ``"host"`` (the caller's network); a ``network_namespace`` path
    (``/proc/<pid>/ns/net`` of another container) is joined instead.
    ``tmpfs`` mounts come after the bind ``mounts``. With ``init`` a minimal
    init is PID 1: it forwards signals to the process and reaps orphaned
    zombies; without it the process itself is PID 1. ``read_only`` makes the
    root file system read-only (mounts keep their own mode). ``privileged``
    leaves /proc and /sys unmasked and writable (give it every capability in
    the process). The container's processes join
    the cgroups whose ``cgroup.procs`` files ``cgroup_procs`` names (see
    :func:`layercake.runtime.create_cgroup`). ``hosts_file`` names a host
    file bound on /etc/hosts instead of the generated one, so the caller can
    rewrite it while the container runs (a network's members by name).
    /etc/resolv.conf is the host's, with ``dns`` servers, ``dns_search``
    domains (``(".",)``: none) and ``dns_options``, when given, in place of
    its own lines of that kind, as ``docker run --dns``, ``--dns-search``
    and ``--dns-option`` do. ``extra_hosts`` (name, address) are lines of
    the generated /etc/hosts, before the container's own (``--add-host``).
    Rootless, ``user_namespace`` names a user namespace (such as
    ``/proc/<pid>/ns/user`` of a :func:`layercake.runtime.hold_namespaces`
    process) that the container joins instead of making its own, so that
    its new namespaces are owned by it; it is ignored as root.
    """

    rootfs: RootfsSpec
    process: ProcessSpec
    hostname: str = "layercake"
    network: Literal["none", "host"] = "none"
    mounts: tuple[BindMount, ...] = ()
    tmpfs: tuple[TmpfsMount, ...] = ()
    init: bool = False
    read_only: bool = False
    privileged: bool = False
    network_namespace: str = ""
    cgroup_procs: tuple[str, ...] = ()
    hosts_file: str = ""
    dns: tuple[str, ...] = ()
    user_namespace: str = ""
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class RunResult:
    """How a finished container ended and what it wrote.

    ``exit_code`` is the process's exit code, or 128 plus the signal number
    when a signal ended it, as Docker reports it. ``warnings`` says what
    was asked for but could not be done (resource limits without cgroups).
    """

    exit_code: int
    stdout: bytes
    stderr: bytes
    warnings: tuple[str, ...] = ()
