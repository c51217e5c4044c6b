"""Turn a :class:`SandboxSpec` into the ready-made values the child uses.

Everything that allocates, parses, reads host files or can raise a
configuration error happens here, before the fork, so the forked child only
makes system calls.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil

import attrs

from layercake.errors import ContainerConfigError

from . import _libc as libc
from ._capabilities import DOCKER_DEFAULT
from ._idmap import IdMap, id_map
from ._seccomp import filter_program
from ._spec import DEFAULT_PATH, ProcessSpec, SandboxSpec, TmpfsMount

__all__ = ["Plan", "ProcessPlan", "mount_overlay", "prepare", "prepare_process"]

_PAGE_SIZE = resource.getpagesize()
_HOST_RESOLV_CONF = "/etc/resolv.conf"
_SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
# Always the last of the overlay options, so it can be dropped again.
_VOLATILE = b",volatile"


@attrs.frozen
class ProcessPlan:
    """The fork-ready form of a process run in an existing container."""

    argv: tuple[str, ...]
    env: dict[str, str]
    search_path: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    capabilities: frozenset[int]
    no_new_privileges: bool
    rootless: bool
    seccomp_filter: bytes
    terminal: bool
    terminal_size: tuple[int, int] | None
    id_map: IdMap | None


@attrs.frozen
class Plan(ProcessPlan):
    """The fork-ready form of a sandbox spec: its process, plus the paths and
    options the container's set-up needs."""

    root: str
    root_b: bytes
    copy_dirs: tuple[tuple[str, ...], str, str] | None
    overlay_data: bytes
    overlay_chdir: str | None
    scratch: bool
    hostname: bytes
    new_net: bool
    join_net: bytes | None
    join_user: bytes | None
    etc_files: tuple[tuple[str, bytes], ...]
    mounts: tuple[tuple[bytes, str, bool, bool], ...]
    tmpfs: tuple[tuple[str, int, bytes], ...]
    init: bool
    read_only: bool
    cgroup_procs: tuple[bytes, ...]
    privileged: bool


def prepare_process(process: ProcessSpec) -> ProcessPlan:
    """Check a process spec for :func:`layercake.runtime.enter`.

    Raises:
        ContainerConfigError: no command, a malformed environment entry, or
            a user the rootless id map does not hold.
    """
    if not process.args:
        raise ContainerConfigError("no command given to run")
    env = _environment(process.env)
    capabilities = _capabilities(process)
    rootless = os.geteuid() != 0
    idmap = id_map() if rootless else None
    if idmap is not None:
        _check_user(process, idmap)
    return ProcessPlan(
        argv=process.args,
        env=env,
        search_path=tuple(env["PATH"].split(":")),
        cwd=process.cwd or "/",
        uid=process.uid,
        gid=process.gid,
        groups=process.additional_gids,
        capabilities=capabilities,
        no_new_privileges=process.no_new_privileges,
        rootless=rootless,
        seccomp_filter=filter_program(capabilities) if process.seccomp else b"",
        terminal=process.terminal,
        terminal_size=_terminal_size(process.terminal_size),
        id_map=idmap,
    )


def _check_user(process: ProcessSpec, idmap: IdMap) -> None:
    ids = (process.uid, process.gid, *process.additional_gids)
    if max(ids) < idmap.size:
        return
    user = f"{process.uid}:{process.gid}"
    if not idmap.full:
        raise ContainerConfigError(
            f"user {user} cannot be used without root: rootless containers "
            f"map only uid 0 here ({idmap.reason})"
        )
    raise ContainerConfigError(
        f"user {user} cannot be used without root: rootless containers map "
        f"ids 0 to {idmap.size - 1} here (the subordinate range of /etc/subuid "
        "and /etc/subgid)"
    )


def _terminal_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    rows, columns = size
    if not (0 <= rows <= 0xFFFF and 0 <= columns <= 0xFFFF):
        raise ContainerConfigError(
            f"invalid terminal size {rows}x{columns}: rows and columns must be "
            "between 0 and 65535"
        )
    return rows, columns


def _capabilities(process: ProcessSpec) -> frozenset[int]:
    if process.capabilities is None:
        return DOCKER_DEFAULT
    return process.capabilities


def prepare(spec: SandboxSpec) -> Plan:
    """Check ``spec`` and precompute every value the container set-up needs.

    Creates the upper, work and mount-point directories when missing.

    Raises:
        ContainerConfigError: the spec cannot work (no command, a path that
            overlayfs cannot take, a malformed environment entry).
    """
    process = prepare_process(spec.process)
    if spec.privileged:
        process = attrs.evolve(process, seccomp_filter=b"")
    root = os.path.abspath(spec.rootfs.mount_point)
    for directory in (spec.rootfs.upper_dir, spec.rootfs.work_dir, root):
        os.makedirs(directory, exist_ok=True)
    if spec.rootfs.driver == "overlay":
        _clear_volatile_mark(spec.rootfs.work_dir)
    data, chdir = (
        _overlay_options(spec) if spec.rootfs.driver == "overlay" else (b"", None)
    )
    new_net = spec.network != "host" and not spec.network_namespace
    return Plan(
        **attrs.asdict(process, recurse=False),
        root=root,
        root_b=os.fsencode(root),
        copy_dirs=(
            tuple(os.path.abspath(d) for d in spec.rootfs.lower_dirs),
            os.path.abspath(spec.rootfs.upper_dir),
            os.path.abspath(spec.rootfs.work_dir),
        )
        if spec.rootfs.driver == "copy"
        else None,
        overlay_data=data,
        overlay_chdir=chdir,
        scratch=not spec.rootfs.lower_dirs,
        hostname=spec.hostname.encode(),
        new_net=new_net,
        join_net=os.fsencode(spec.network_namespace)
        if spec.network_namespace
        else None,
        join_user=os.fsencode(spec.user_namespace)
        if spec.user_namespace and process.rootless
        else None,
        etc_files=_etc_files(spec, new_net),
        mounts=tuple(_bind(m.source, m.target, m.read_only) for m in spec.mounts)
        + ((_bind(spec.hosts_file, "/etc/hosts", False),) if spec.hosts_file else ()),
        tmpfs=tuple(_tmpfs(t) for t in spec.tmpfs),
        init=spec.init,
        read_only=spec.read_only,
        cgroup_procs=tuple(os.fsencode(p) for p in spec.cgroup_procs),
        privileged=spec.privileged,
    )


def _environment(entries: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise ContainerConfigError(
                f"environment entry {entry!r} is not of the form KEY=VALUE"
            )
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def _overlay_options(spec: SandboxSpec) -> tuple[bytes, str | None]:
    rootfs = spec.rootfs
    lowers = [os.path.abspath(d) for d in rootfs.lower_dirs]
    upper = os.path.abspath(rootfs.upper_dir)
    work = os.path.abspath(rootfs.work_dir)
    for path in [*lowers, upper, work]:
        if "," in path or ":" in path:
            raise ContainerConfigError(
                f"overlay directory {path!r} contains ',' or ':', "
                "which overlayfs options cannot carry"
            )
    # A scratch root has no lower directory; the child mounts an empty,
    # read-only tmpfs on the mount point and uses that.
    lower_list = lowers or [os.path.abspath(rootfs.mount_point)]
    extra = ",userxattr" if os.geteuid() != 0 else ""
    if rootfs.volatile and os.geteuid() == 0:
        # Not rootless: clearing the mark later means searching the mode-0
        # directory overlayfs makes in the work directory.
        extra += _VOLATILE.decode()
    data = f"lowerdir={':'.join(lower_list)},upperdir={upper},workdir={work}{extra}"
    if len(data) < _PAGE_SIZE:
        return data.encode(), None

    # The kernel reads mount options from a single page: name the lower
    # directories relative to their common parent, which the child enters.
    parent = os.path.commonpath(lower_list)
    relative = [os.path.relpath(d, parent) for d in lower_list]
    data = f"lowerdir={':'.join(relative)},upperdir={upper},workdir={work}{extra}"
    if len(data) >= _PAGE_SIZE:
        raise ContainerConfigError(
            f"{len(lower_list)} lower directories make overlay options longer "
            f"than {_PAGE_SIZE} bytes even relative to {parent}"
        )
    return data.encode(), parent


def _clear_volatile_mark(work_dir: str) -> None:
    # overlayfs leaves this mark after a volatile mount and refuses the work
    # directory while it is there; a throwaway layer mounted again (started
    # again, or its files read after its exit) is taken as it was left.
    mark = os.path.join(work_dir, "work", "incompat", "volatile")
    if os.path.isdir(mark):
        shutil.rmtree(mark)


def mount_overlay(target: bytes, data: bytes) -> None:
    """Mount overlayfs on ``target`` with the options ``data`` of a plan.

    Where the kernel does not know the ``volatile`` option (before 5.10) it
    mounts without it, as a container whose layer is kept would be.

    Raises:
        OSError: the kernel refused the mount.
    """
    try:
        libc.mount(b"overlay", target, b"overlay", 0, data)
    except OSError as error:
        if error.errno != errno.EINVAL or not data.endswith(_VOLATILE):
            raise
        libc.mount(b"overlay", target, b"overlay", 0, data.removesuffix(_VOLATILE))


def _etc_files(spec: SandboxSpec, new_net: bool) -> tuple[tuple[str, bytes], ...]:
    hostname = spec.hostname
    hosts = (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        + "".join(f"{address}\t{name}\n" for name, address in spec.extra_hosts)
        + f"127.0.0.1\t{hostname}\n"
    )
    resolv = _read(_HOST_RESOLV_CONF)
    if new_net and not spec.dns and _loopback_only(resolv):
        # A resolver on the host's loopback (systemd-resolved's stub) cannot
        # be reached from another network namespace; its upstream list can.
        resolv = _read(_SYSTEMD_RESOLV_CONF) or resolv
    if spec.dns or spec.dns_search or spec.dns_options:
        resolv = _resolv_with(resolv, spec)
    files = (
        ("/etc/hostname", hostname.encode() + b"\n"),
        ("/etc/resolv.conf", resolv),
    )
    if spec.hosts_file:
        return files
    return (("/etc/hosts", hosts.encode()), *files)


def _resolv_with(base: bytes, spec: SandboxSpec) -> bytes:
    """``base`` with the spec's servers, search domains and options in place
    of its own lines of each kind (docker's order: servers, search, options)."""
    lines = base.decode(errors="replace").splitlines()

    def kept(*kinds: str) -> list[str]:
        return [line for line in lines if line.split()[:1] in [[k] for k in kinds]]

    servers = [f"nameserver {s}" for s in spec.dns] or kept("nameserver")
    search = kept("search", "domain")
    if spec.dns_search:
        wanted = [d for d in spec.dns_search if d != "."]
        search = [f"search {' '.join(wanted)}"] if wanted else []
    options = kept("options")
    if spec.dns_options:
        options = [f"options {' '.join(spec.dns_options)}"]
    return "".join(f"{line}\n" for line in servers + search + options).encode()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:
        return b""


def _loopback_only(resolv: bytes) -> bool:
    servers = [
        line.split()[1]
        for line in resolv.splitlines()
        if line.startswith(b"nameserver") and len(line.split()) > 1
    ]
    return bool(servers) and all(s.startswith(b"127.") or s == b"::1" for s in servers)


def _bind(source: str, target: str, read_only: bool) -> tuple[bytes, str, bool, bool]:
    source = os.path.abspath(source)
    if not os.path.exists(source):
        raise ContainerConfigError(f"bind mount source {source} does not exist")
    return os.fsencode(source), target, os.path.isdir(source), read_only


def _tmpfs(mount: TmpfsMount) -> tuple[str, int, bytes]:
    target, size, mode = mount.target, mount.size, mount.mode
    if not target.startswith("/"):
        raise ContainerConfigError(f"tmpfs target {target!r} is not an absolute path")
    if size < 0 or not 0 <= mode <= 0o7777:
        raise ContainerConfigError(
            f"tmpfs on {target} has an invalid size {size} or mode {mode:o}"
        )
    data = f"mode={mode:o}" + (f",size={size}" if size else "")
    data += "".join(
        f",{name}={value}"
        for name, value in (("uid", mount.uid), ("gid", mount.gid))
        if value is not None
    )
    flags = (
        (libc.MS_RDONLY if mount.read_only else 0)
        | (libc.MS_NOEXEC if mount.noexec else 0)
        | (libc.MS_NOSUID if mount.nosuid else 0)
        | (libc.MS_NODEV if mount.nodev else 0)
    )
    return target, flags, data.encode()
