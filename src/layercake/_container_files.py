"""A container's files: its changes (diff), copies in and out, and export.

Copies and exports run in a forked child that enters the container's root
(:func:`layercake.runtime.enter_rootfs`): symbolic links then resolve inside
the container, so no link in it can lead a copy to a host path. The child
streams a tar archive through a pipe; links travel as links.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

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
    "extract_archive",
    "stage_tree_changes",
    "tree_changes",
    "upper_changes",
    "write_archive",
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
    lacks are mount targets, not changes, and are left out. The walk goes
    by descriptor and never follows a link (see :func:`stage_tree_changes`).

    Raises:
        OSError: an entry vanished or changed type during the walk
            (``filename``: its path in the container).
    """
    if not upper.is_dir():
        return []
    with _opened(os.open(upper, _DIRECTORY_FLAGS)) as top:
        return _walk(top, "", stack, ignored)


@contextlib.contextmanager
def _opened(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _lstat_at(directory: int, name: str, path: str) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=directory, follow_symlinks=False)
    except OSError as error:
        raise OSError(error.errno, error.strerror, path) from None


def _open_at(directory: int, name: str, path: str, flags: int) -> int:
    try:
        return os.open(name, flags, dir_fd=directory)
    except OSError as error:
        raise OSError(error.errno, error.strerror, path) from None


def _walk(
    directory: int, relative: str, stack: LayerStack, ignored: frozenset[str]
) -> list[Change]:
    changes: list[Change] = []
    for name in sorted(os.listdir(directory)):
        path = f"{relative}/{name}"
        info = _lstat_at(directory, name, path)
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            changes.append(("D", path))
            continue
        lower = stack.lookup(path)
        if stat.S_ISDIR(info.st_mode):
            inner_fd = _open_at(directory, name, path, _DIRECTORY_FLAGS)
            with _opened(inner_fd) as inner_dir:
                inner = _walk(inner_dir, path, stack, ignored)
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
    Paths of the image missing from ``root`` are deletions. The walk goes
    by descriptor and never follows a link.

    Raises:
        OSError: an entry vanished or changed type during the walk
            (``filename``: its path in the container).
    """
    if copied_ns is None or not root.is_dir():
        return []
    with _opened(os.open(root, _DIRECTORY_FLAGS)) as top:
        return _compare(top, "", stack, ignored, copied_ns, fresh=False)


def _compare(
    directory: int,
    relative: str,
    stack: LayerStack,
    ignored: frozenset[str],
    copied_ns: int,
    *,
    fresh: bool,
) -> list[Change]:
    entries = set(os.listdir(directory))
    below = [] if fresh else stack.children(relative or "/")
    changes: list[Change] = []
    for name in sorted(entries | set(below)):
        path = f"{relative}/{name}"
        if name not in entries:
            changes.append(("D", path))
            continue
        info = _lstat_at(directory, name, path)
        lower = None if fresh else stack.lookup(path)
        if stat.S_ISDIR(info.st_mode):
            was_dir = lower is not None and stat.S_ISDIR(os.lstat(lower).st_mode)
            inner_fd = _open_at(directory, name, path, _DIRECTORY_FLAGS)
            with _opened(inner_fd) as inner_dir:
                inner = _compare(
                    inner_dir, path, stack, ignored, copied_ns, fresh=not was_dir
                )
            if lower is None:
                if inner or path not in ignored:
                    changes.append(("A", path))
            elif inner or not was_dir or _attributes_differ(info, lower):
                changes.append(("C", path))
            changes.extend(inner)
        elif lower is not None:
            if _file_differs(info, directory, name, path, lower, copied_ns):
                changes.append(("C", path))
        elif not (path in ignored and info.st_size == 0):
            changes.append(("A", path))
    return changes


def _file_differs(
    info: os.stat_result,
    directory: int,
    name: str,
    path: str,
    lower: Path,
    copied_ns: int,
) -> bool:
    if info.st_ctime_ns < copied_ns:
        return False
    before = os.lstat(lower)
    if _attributes_differ(info, lower) or info.st_size != before.st_size:
        return True
    if stat.S_ISLNK(info.st_mode):
        try:
            return os.readlink(name, dir_fd=directory) != os.readlink(lower)
        except OSError as error:
            raise OSError(error.errno, error.strerror, path) from None
    if stat.S_ISREG(info.st_mode):
        if info.st_mtime_ns != before.st_mtime_ns:
            return True
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        with (
            open(_open_at(directory, name, path, flags), "rb") as now,
            open(lower, "rb") as then,
        ):
            if not stat.S_ISREG(os.fstat(now.fileno()).st_mode):
                return True
            while True:
                chunk = now.read(1 << 16)
                if chunk != then.read(1 << 16):
                    return True
                if not chunk:
                    return False
    return info.st_rdev != before.st_rdev


def stage_tree_changes(root: Path, staging: Path, changes: list[Change]) -> None:
    """Copy what ``changes`` lists from a container's files into ``staging``.

    ``root`` is a copy-driver root or an overlay upper directory. The result
    is in overlay form, ready to pack as a layer: added and changed entries
    with their owners, modes and extended attributes (an opaque directory
    stays opaque), a whiteout (a 0:0 character device) for each deletion.

    The container may still be running and swapping entries for symbolic
    links, so no path is ever resolved as a string: each directory is opened
    one component at a time, relative to its parent's descriptor, without
    following links, on both sides. A link on the way is an error, never a
    way out of ``root`` or ``staging``.

    Raises:
        OSError: an entry could not be copied or changed type meanwhile;
            its ``filename`` is the path in the container.
    """
    source = _DirectoryChain(root, create=False)
    target = _DirectoryChain(staging, create=True)
    # Names of one file stay hard links of one another in the layer.
    linked: dict[tuple[int, int], str] = {}
    try:
        for kind, path in changes:
            try:
                _stage_one(kind, path, source, target, linked)
            except OSError as error:
                raise OSError(error.errno, error.strerror, path) from None
    finally:
        source.close()
        target.close()


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_KEPT_OVERLAY_XATTRS = frozenset({"trusted.overlay.opaque", "user.overlay.opaque"})


class _DirectoryChain:
    """Descriptors of the directories from a top one down to the current one.

    Changes come in path order, so only the chain to the current directory
    is kept open: as deep as the tree, never one descriptor per directory.
    """

    def __init__(self, top: Path, *, create: bool) -> None:
        self._create = create
        self._chain: list[tuple[str, int]] = [("", os.open(top, _DIRECTORY_FLAGS))]

    @property
    def top(self) -> int:
        """The descriptor of the top directory."""
        return self._chain[0][1]

    def parent_of(self, path: str) -> tuple[int, str]:
        """The descriptor of ``path``'s directory, and ``path``'s last name."""
        names = path.strip("/").split("/")
        return self._open(names[:-1]), names[-1]

    def _open(self, names: list[str]) -> int:
        kept = 1
        while kept < len(self._chain) and kept <= len(names):
            if self._chain[kept][0] != names[kept - 1]:
                break
            kept += 1
        for _, fd in self._chain[kept:]:
            os.close(fd)
        del self._chain[kept:]
        for name in names[kept - 1 :]:
            parent = self._chain[-1][1]
            if self._create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=parent)
            self._chain.append((name, os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)))
        return self._chain[-1][1]

    def close(self) -> None:
        """Close every descriptor of the chain."""
        for _, fd in self._chain:
            os.close(fd)
        self._chain.clear()


def _stage_one(
    kind: str,
    path: str,
    source: _DirectoryChain,
    target: _DirectoryChain,
    linked: dict[tuple[int, int], str],
) -> None:
    into, name = target.parent_of(path)
    if kind == "D":
        os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=into)
        return
    outof, _ = source.parent_of(path)
    info = os.stat(name, dir_fd=outof, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(name, dir_fd=outof), name, dir_fd=into)
        with contextlib.suppress(PermissionError):
            os.chown(name, info.st_uid, info.st_gid, dir_fd=into, follow_symlinks=False)
        times = (info.st_atime_ns, info.st_mtime_ns)
        os.utime(name, ns=times, dir_fd=into, follow_symlinks=False)
        return
    if stat.S_ISDIR(info.st_mode):
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=into)
        read = os.open(name, _DIRECTORY_FLAGS, dir_fd=outof)
        write = os.open(name, _DIRECTORY_FLAGS, dir_fd=into)
    elif stat.S_ISREG(info.st_mode):
        inode = (info.st_dev, info.st_ino)
        if info.st_nlink > 1 and inode in linked:
            # The first name was staged through directories opened without
            # following links, and only this function writes the staging.
            first = linked[inode]
            os.link(first, name, src_dir_fd=target.top, dst_dir_fd=into)
            return
        if info.st_nlink > 1:
            linked[inode] = path.lstrip("/")
        # O_NONBLOCK: an entry swapped for a FIFO must not hang the commit.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        read = os.open(name, flags, dir_fd=outof)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        write = os.open(name, flags, 0o600, dir_fd=into)
    else:
        if stat.S_ISFIFO(info.st_mode):
            os.mkfifo(name, 0o600, dir_fd=into)
        else:
            os.mknod(name, stat.S_IFMT(info.st_mode) | 0o600, info.st_rdev, dir_fd=into)
        _set_attributes(name, into, info)
        return
    try:
        _copy_open(read, write, info)
    finally:
        os.close(read)
        os.close(write)


def _copy_open(read: int, write: int, info: os.stat_result) -> None:
    """Copy an opened entry's content (files), attributes and xattrs."""
    now = os.fstat(read)
    if stat.S_IFMT(now.st_mode) != stat.S_IFMT(info.st_mode):
        raise OSError(errno.EAGAIN, "it changed type while being copied")
    if stat.S_ISREG(now.st_mode):
        os.set_blocking(read, True)
        while os.sendfile(write, read, None, 1 << 20):
            pass
    try:
        keys = os.listxattr(read)
    except OSError as error:
        if error.errno != errno.ENOTSUP:
            raise
        keys = []
    for key in keys:
        internal = key.startswith(("trusted.overlay.", "user.overlay."))
        if internal and key not in _KEPT_OVERLAY_XATTRS:
            continue
        os.setxattr(write, key, os.getxattr(read, key))
    with contextlib.suppress(PermissionError):
        os.fchown(write, now.st_uid, now.st_gid)
    os.fchmod(write, stat.S_IMODE(now.st_mode))
    os.utime(write, ns=(now.st_atime_ns, now.st_mtime_ns))


def _set_attributes(name: str, directory: int, info: os.stat_result) -> None:
    with contextlib.suppress(PermissionError):
        os.chown(name, info.st_uid, info.st_gid, dir_fd=directory)
    os.chmod(name, stat.S_IMODE(info.st_mode), dir_fd=directory)
    os.utime(name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=directory)


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
    spec: SandboxSpec,
    pid: int | None,
    path: str,
    source: bytes | Path,
    *,
    contents: bool = False,
) -> None:
    """Write ``source`` (bytes, or a host file, link or tree) at ``path``.

    Host paths follow ``docker cp``'s rules: into ``path`` under their own
    name when it is a directory (a tree's entries alone when ``contents``,
    as ``SRC/.``), else as ``path`` itself. Bytes are always written as
    ``path``. Parents are created as needed; what is copied is owned by
    root, as ``docker cp`` does by default; links are copied as links.

    Raises:
        ContainerError: ``source`` is missing, ``path`` ends with ``/`` and
            is no directory, a tree would replace a file, or the write
            failed.
    """
    name = os.path.basename(path.rstrip("/"))
    if not name and not (isinstance(source, Path) and path.startswith("/")):
        raise ContainerError(f"cannot copy to {path!r}: name a file or directory")
    if isinstance(source, Path) and not os.path.lexists(source):
        raise ContainerError(f"cannot copy {source} into the container: no such file")
    is_tree = isinstance(source, Path) and stat.S_ISDIR(os.lstat(source).st_mode)
    if contents and not is_tree:
        where = source if isinstance(source, Path) else "bytes"
        raise ContainerError(
            f"cannot copy {where}/. into the container: not a directory"
        )
    packed = name or "root"
    own_name = packed
    if isinstance(source, Path):
        own_name = os.path.basename(os.path.abspath(source)) or packed
    read_end, write_end = os.pipe()

    def receive() -> None:
        os.close(write_end)
        # In the container's root, links resolve against it, never the host.
        directory, top = _copy_target(path, is_tree, isinstance(source, Path))
        if top is None:
            top = "" if contents else own_name
        os.makedirs(directory, exist_ok=True)
        with (
            open(read_end, "rb") as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            members = _renamed(tar, packed, top)
            _extract_all(tar, Path(directory), trusted=True, members=members)

    child, error_r = _in_container(spec, pid, receive)
    os.close(read_end)
    try:
        with (
            open(write_end, "wb") as out,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            if isinstance(source, bytes):
                info = tarfile.TarInfo(packed)
                info.size = len(source)
                info.mode = 0o644
                tar.addfile(info, _Bytes(source))
            else:
                tar.add(source, arcname=packed, filter=_as_root)
    except BrokenPipeError:
        pass
    _finish(child, error_r, f"cannot copy to {path} in the container")


def _copy_target(path: str, is_tree: bool, by_name: bool) -> tuple[str, str | None]:
    """Where a copy to ``path`` lands: the directory to extract into, and
    the name of the copy there (``None``: the source's own name).

    Runs in the container, so links on the way resolve inside it.
    """
    bare = path.rstrip("/") or "/"
    name = os.path.basename(bare)
    parent = os.path.dirname(bare) or "/"
    slash = path.endswith("/")
    target = os.path.realpath(bare)
    if by_name and os.path.isdir(target):
        return target, None
    if os.path.lexists(target):
        if slash:
            raise ContainerError(f"{path}: not a directory")
        if is_tree:
            raise ContainerError(
                f"cannot overwrite non-directory {bare} with a directory"
            )
    elif slash and not is_tree:
        raise ContainerError(f"destination directory {path} does not exist")
    return os.path.realpath(parent), name


def _renamed(tar: tarfile.TarFile, packed: str, top: str) -> Iterator[tarfile.TarInfo]:
    """The members of ``tar``, packed under ``packed``, moved under ``top``
    (``""``: the packed tree's entries, without the tree itself)."""
    for member in tar:
        rest = member.name[len(packed) :]
        if not top and not rest:
            continue
        member.name = (top + rest) if top else rest.lstrip("/")
        if member.islnk():
            link_rest = member.linkname[len(packed) :]
            member.linkname = (top + link_rest) if top else link_rest.lstrip("/")
        yield member


def write_archive(spec: SandboxSpec, pid: int | None, path: str, out: BinaryIO) -> None:
    """Write a tar archive of ``path`` in the container to ``out``.

    The archive holds ``path`` under its own name (its entries alone when
    it ends with ``/.``), links as links, owners by number.

    Raises:
        ContainerError: the path is missing or could not be read.
    """
    read_end, write_end = os.pipe()
    arcname = "." if path.endswith("/.") else os.path.basename(path.rstrip("/"))

    def send() -> None:
        os.close(read_end)
        with (
            open(write_end, "wb") as stream,
            tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            tar.add(path, arcname=arcname or ".")

    child, error_r = _in_container(spec, pid, send)
    os.close(write_end)
    with open(read_end, "rb") as stream:
        shutil.copyfileobj(stream, out)
    _finish(child, error_r, f"cannot copy {path} from the container")


def extract_archive(
    spec: SandboxSpec, pid: int | None, path: str, archive: BinaryIO
) -> None:
    """Extract the tar archive read from ``archive`` into directory ``path``.

    Entries keep the owners and modes the archive gives them; the
    extraction runs in the container's root, so no name or link in the
    archive reaches a host path.

    Raises:
        ContainerError: ``path`` is not a directory in the container, or
            the archive could not be extracted.
    """
    read_end, write_end = os.pipe()

    def receive() -> None:
        os.close(write_end)
        directory = os.path.realpath(path)
        if not os.path.isdir(directory):
            raise ContainerError(f"destination {path} must be a directory")
        with (
            open(read_end, "rb") as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            _extract_all(tar, Path(directory), trusted=True)

    child, error_r = _in_container(spec, pid, receive)
    os.close(read_end)
    try:
        with open(write_end, "wb") as stream:
            shutil.copyfileobj(archive, stream)
    except BrokenPipeError:
        pass
    _finish(child, error_r, f"cannot copy to {path} in the container")


def _extract_all(
    tar: tarfile.TarFile,
    directory: Path,
    *,
    trusted: bool,
    members: Iterator[tarfile.TarInfo] | None = None,
) -> None:
    """Extract a stream of this module's own making, owners by number.

    Untrusted (copied to the host), names leaving ``directory`` are refused
    and setuid, setgid, sticky and group/other write bits cleared, as the
    ``tar`` extraction filter does; Pythons before 3.11.4 (Debian 12's)
    lack the filters, so the same is done here.
    """
    if hasattr(tarfile, "tar_filter"):
        if trusted:
            tar.extractall(
                directory, members, numeric_owner=True, filter="fully_trusted"
            )
        else:
            tar.extractall(directory, members, filter="tar")
        return
    for member in members if members is not None else tar:
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
