"""A container's files: its changes (diff), copies in and out, and export.

Copies and exports run in a forked child that enters the container's root
(:func:`layercake.runtime.enter_rootfs`): symbolic links then resolve inside
the container, so no link in it can lead a copy to a host path. The child
streams a tar archive through a pipe; links travel as links.
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

from layercake import runtime
from layercake._layer_stack import LayerStack
from layercake.errors import ContainerError
from layercake.runtime import SandboxSpec

__all__ = [
    "RUNTIME_TARGETS",
    "Change",
    "copy_from",
    "copy_to",
    "export",
    "prune_to",
    "stage_tree_changes",
    "tree_changes",
    "upper_changes",
]

Change = tuple[str, str]
"""``("A" | "C" | "D", path)``: added, changed or deleted, as ``docker diff``."""

RUNTIME_TARGETS = frozenset(
    {"/proc", "/dev", "/sys", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}
)
"""Mount targets the runtime creates when the image lacks them."""


def upper_changes(
    upper: Path, stack: LayerStack, ignored: frozenset[str]
) -> list[Change]:
    """List what the upper directory changes in the image, in path order.

    A whiteout is a deletion; an entry the image lacks is an addition; one
    it has is a change (a directory only when something in it changed or
    its owner or mode did). Empty entries at ``ignored`` paths the image
    lacks are mount targets, not changes, and are left out.
    """
    if not upper.is_dir():
        return []
    return _walk(str(upper), "", stack, ignored)


def _walk(
    host: str, relative: str, stack: LayerStack, ignored: frozenset[str]
) -> list[Change]:
    changes: list[Change] = []
    with os.scandir(host) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        path = f"{relative}/{entry.name}"
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            changes.append(("D", path))
            continue
        lower = stack.lookup(path)
        if stat.S_ISDIR(info.st_mode):
            inner = _walk(entry.path, path, stack, ignored)
            if lower is None:
                if inner or path not in ignored:
                    changes.append(("A", path))
            elif inner or _attributes_differ(info, lower):
                changes.append(("C", path))
            changes.extend(inner)
        elif lower is not None:
            changes.append(("C", path))
        elif not (path in ignored and info.st_size == 0):
            changes.append(("A", path))
    return changes


def _attributes_differ(info: os.stat_result, lower: Path) -> bool:
    before = os.lstat(lower)
    return (info.st_mode, info.st_uid, info.st_gid) != (
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )


def tree_changes(
    root: Path, stack: LayerStack, ignored: frozenset[str], copied_ns: int | None
) -> list[Change]:
    """List what a copy-driver root changes in the image, as upper_changes does.

    ``root`` holds the whole file system, copied from the image's layers
    when its change time was ``copied_ns`` (``None``: never copied, so
    nothing changed). A file whose change time is older was not touched
    since; a newer one is compared with the image's, content included.
    Paths of the image missing from ``root`` are deletions.
    """
    if copied_ns is None or not root.is_dir():
        return []
    return _compare(str(root), "", stack, ignored, copied_ns, fresh=False)


def _compare(
    host: str,
    relative: str,
    stack: LayerStack,
    ignored: frozenset[str],
    copied_ns: int,
    *,
    fresh: bool,
) -> list[Change]:
    with os.scandir(host) as scan:
        entries = {entry.name: entry for entry in scan}
    below = [] if fresh else stack.children(relative or "/")
    changes: list[Change] = []
    for name in sorted(set(entries) | set(below)):
        path = f"{relative}/{name}"
        entry = entries.get(name)
        if entry is None:
            changes.append(("D", path))
            continue
        info = entry.stat(follow_symlinks=False)
        lower = None if fresh else stack.lookup(path)
        if stat.S_ISDIR(info.st_mode):
            was_dir = lower is not None and stat.S_ISDIR(os.lstat(lower).st_mode)
            inner = _compare(
                entry.path, path, stack, ignored, copied_ns, fresh=not was_dir
            )
            if lower is None:
                if inner or path not in ignored:
                    changes.append(("A", path))
            elif inner or not was_dir or _attributes_differ(info, lower):
                changes.append(("C", path))
            changes.extend(inner)
        elif lower is not None:
            if _file_differs(info, entry.path, lower, copied_ns):
                changes.append(("C", path))
        elif not (path in ignored and info.st_size == 0):
            changes.append(("A", path))
    return changes


def _file_differs(info: os.stat_result, path: str, lower: Path, copied_ns: int) -> bool:
    if info.st_ctime_ns < copied_ns:
        return False
    before = os.lstat(lower)
    if _attributes_differ(info, lower) or info.st_size != before.st_size:
        return True
    if stat.S_ISLNK(info.st_mode):
        return os.readlink(path) != os.readlink(lower)
    if stat.S_ISREG(info.st_mode):
        return info.st_mtime_ns != before.st_mtime_ns or not filecmp.cmp(
            path, lower, shallow=False
        )
    return info.st_rdev != before.st_rdev


def stage_tree_changes(root: Path, staging: Path, changes: list[Change]) -> None:
    """Copy what ``changes`` lists from a copy-driver root into ``staging``.

    The result is in overlay form, ready to pack as a layer: added and
    changed entries with their owners and modes, a whiteout (a 0:0
    character device) for each deletion.
    """
    for kind, path in changes:
        source = f"{root}{path}"
        target = f"{staging}{path}"
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if kind == "D":
            os.mknod(target, stat.S_IFCHR, os.makedev(0, 0))
            continue
        info = os.lstat(source)
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(target)
        elif stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(info.st_mode):
            shutil.copyfile(source, target, follow_symlinks=False)
        elif stat.S_ISFIFO(info.st_mode):
            os.mkfifo(target)
        else:
            os.mknod(target, info.st_mode, info.st_rdev)
        with contextlib.suppress(PermissionError):
            os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(info.st_mode):
            os.chmod(target, stat.S_IMODE(info.st_mode))
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def prune_to(directory: Path, changes: list[Change]) -> None:
    """Delete from a copy of an upper directory what ``changes`` leaves out."""
    kept = {path for _, path in changes}
    for root, dirs, files in os.walk(directory, topdown=False):
        relative = "/" + os.path.relpath(root, directory)
        relative = "" if relative == "/." else relative
        for name in files:
            if f"{relative}/{name}" not in kept:
                os.unlink(os.path.join(root, name))
        for name in dirs:
            path = os.path.join(root, name)
            if f"{relative}/{name}" in kept:
                continue
            if os.path.islink(path):
                os.unlink(path)
            elif not os.listdir(path):
                os.rmdir(path)


def _in_container(
    spec: SandboxSpec, pid: int | None, work: Callable[[], None]
) -> tuple[int, int]:
    """Fork a child that enters the container and runs ``work``.

    Returns the child's pid and the read end of its error pipe.
    """
    error_r, error_w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 0
        try:
            os.close(error_r)
            runtime.enter_rootfs(spec, pid)
            work()
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            code = 1
            if isinstance(error, OSError) and error.strerror:
                where = f"{error.filename}: " if error.filename else ""
                text = where + error.strerror.lower()
            else:
                text = str(error)
            try:
                os.write(error_w, text.encode(errors="replace"))
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(error_w)
    return child, error_r


def _finish(child: int, error_r: int, what: str) -> None:
    with open(error_r, "rb", buffering=0) as errors:
        message = errors.readall().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    if message or os.waitstatus_to_exitcode(status) != 0:
        raise ContainerError(f"{what}: {message or 'the copying process failed'}")


def _mount_points(pid: int | None) -> set[str]:
    """Mount points in a running container, as its processes see them."""
    points: set[str] = set()
    if pid is None:
        return points
    with open(f"/proc/{pid}/mountinfo") as file:
        for line in file:
            point = line.split()[4]
            # mountinfo escapes space, tab, newline and backslash in octal.
            points.add(point.encode().decode("unicode_escape"))
    points.discard("/")
    return points


def copy_from(
    spec: SandboxSpec, pid: int | None, path: str, host_dir: Path | None
) -> bytes | None:
    """Copy ``path`` out of the container.

    Without ``host_dir`` it must be a regular file and its bytes are
    returned; with it, the file, link or tree is written into ``host_dir``
    (created when missing) under its own name.

    Raises:
        ContainerError: the path is missing, or not a regular file when
            bytes are asked for.
    """
    read_end, write_end = os.pipe()

    def send() -> None:
        os.close(read_end)
        with (
            open(write_end, "wb") as out,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            tar.add(path, arcname=os.path.basename(path.rstrip("/")) or ".")

    child, error_r = _in_container(spec, pid, send)
    os.close(write_end)
    content: bytes | None = None
    what = f"cannot copy {path} from the container"
    try:
        with (
            open(read_end, "rb") as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            if host_dir is None:
                member = tar.next()
                if member is not None and member.isfile():
                    extracted = tar.extractfile(member)
                    content = extracted.read() if extracted else b""
                elif member is not None:
                    for _ in tar:
                        pass
                    _finish(child, error_r, what)
                    raise ContainerError(f"{what}: not a regular file")
                for _ in tar:
                    pass
            else:
                host_dir.mkdir(parents=True, exist_ok=True)
                _extract_all(tar, host_dir, trusted=False)
    except tarfile.ReadError:
        pass
    _finish(child, error_r, what)
    return content


def copy_to(
    spec: SandboxSpec, pid: int | None, path: str, source: bytes | Path
) -> None:
    """Write ``source`` (bytes, or a host file, link or tree) at ``path``.

    Parents are created as needed; what is copied is owned by root, as
    ``docker cp`` does by default; links are copied as links.

    Raises:
        ContainerError: ``source`` is missing or the write failed.
    """
    name = os.path.basename(path.rstrip("/"))
    parent = os.path.dirname(path.rstrip("/")) or "/"
    if not name:
        raise ContainerError(f"cannot copy to {path!r}: name a file or directory")
    if isinstance(source, Path) and not os.path.lexists(source):
        raise ContainerError(f"cannot copy {source} into the container: no such file")
    read_end, write_end = os.pipe()

    def receive() -> None:
        os.close(write_end)
        # In the container's root, links resolve against it, never the host.
        directory = os.path.realpath(parent)
        os.makedirs(directory, exist_ok=True)
        with (
            open(read_end, "rb") as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            _extract_all(tar, Path(directory), trusted=True)

    child, error_r = _in_container(spec, pid, receive)
    os.close(read_end)
    try:
        with (
            open(write_end, "wb") as out,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            if isinstance(source, bytes):
                info = tarfile.TarInfo(name)
                info.size = len(source)
                info.mode = 0o644
                tar.addfile(info, _Bytes(source))
            else:
                tar.add(source, arcname=name, filter=_as_root)
    except BrokenPipeError:
        pass
    _finish(child, error_r, f"cannot copy to {path} in the container")


def _extract_all(tar: tarfile.TarFile, directory: Path, *, trusted: bool) -> None:
    """Extract a stream of this module's own making, owners by number.

    Untrusted (copied to the host), names leaving ``directory`` are refused
    and setuid, setgid, sticky and group/other write bits cleared, as the
    ``tar`` extraction filter does; Pythons before 3.11.4 (Debian 12's)
    lack the filters, so the same is done here.
    """
    if hasattr(tarfile, "tar_filter"):
        if trusted:
            tar.extractall(directory, numeric_owner=True, filter="fully_trusted")
        else:
            tar.extractall(directory, filter="tar")
        return
    for member in tar:
        if not trusted:
            name = os.path.normpath(member.name)
            if name.startswith(("/", "..")):
                raise ContainerError(f"refusing {member.name!r}: it leaves {directory}")
            if not member.issym():
                member.mode &= ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | 0o022)
        tar.extract(member, directory, numeric_owner=trusted)


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        chunk = self._data[self._offset : end]
        self._offset += len(chunk)
        return chunk


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def export(spec: SandboxSpec, pid: int | None, target: Path) -> None:
    """Write the container's merged file system to ``target`` as a tar archive.

    Mounts inside a running container (/proc, /dev, /sys, volumes, tmpfs)
    are left out, as ``docker export`` does.

    Raises:
        ContainerError: the archive could not be written.
    """
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    skip = _mount_points(pid)

    def write() -> None:
        def outside_mounts(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            return None if "/" + info.name in skip else info

        with (
            open(fd, "wb") as out,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name in sorted(os.listdir("/")):
                tar.add("/" + name, arcname=name, filter=outside_mounts)

    try:
        child, error_r = _in_container(spec, pid, write)
    finally:
        os.close(fd)
    _finish(child, error_r, f"cannot export the container to {target}")
