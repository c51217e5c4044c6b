"""The copy storage driver: a container's root as a plain copy of its layers.

Where overlayfs cannot be mounted, the layers (overlayfs lower directories,
top-most first) are merged into the container's own directory once, bottom
layer first: a whiteout deletes what lies beneath, an opaque directory
empties its lower copy, hard links within a layer stay links. File data is
cloned (reflink) where the file system can, else copied in the kernel with
copy_file_range; a file of the store is never hard linked, so nothing
written in the container reaches a layer.

The copy happens in the container's set-up (inside its user namespace when
rootless, so owners are kept), under a lock, and is marked complete by a
file whose change time later tells files the container touched from the
untouched copies (see :func:`copied_at`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat

from . import _libc as libc

__all__ = ["COPIED_MARK", "copied_at", "materialize", "mount_copy"]

COPIED_MARK = "copied"
"""The file in the work directory whose presence says the copy is complete."""

_LOCK = "copy.lock"
_FICLONE = 0x40049409
_CHUNK = 1 << 30
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def copied_at(work_dir: str) -> int | None:
    """The change time (ns) of the mark of a complete copy, or None if absent."""
    try:
        return os.stat(os.path.join(work_dir, COPIED_MARK)).st_ctime_ns
    except FileNotFoundError:
        return None


def materialize(lower_dirs: tuple[str, ...], root: str, work_dir: str) -> None:
    """Merge ``lower_dirs`` (top-most first) into ``root`` unless done before.

    Concurrent callers wait on a lock in ``work_dir``; a copy cut short
    (the process was killed) is started again from an empty ``root``.

    Raises:
        OSError: a file could not be read or written (a full disk).
    """
    lock = os.open(
        os.path.join(work_dir, _LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if copied_at(work_dir) is not None:
            return
        _empty(root)
        for layer in reversed(lower_dirs):
            _Layer(layer, root).merge()
        mark = os.path.join(work_dir, COPIED_MARK)
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    finally:
        os.close(lock)


def mount_copy(copy_dirs: tuple[tuple[str, ...], str, str], target: bytes) -> None:
    """Materialize ``(lower_dirs, root, work_dir)`` and bind ``root`` on ``target``.

    Raises:
        OSError: the copy or the bind mount failed.
    """
    lowers, root, work = copy_dirs
    materialize(lowers, root, work)
    libc.mount(os.fsencode(root), target, None, libc.MS_BIND | libc.MS_REC)


def _empty(directory: str) -> None:
    with os.scandir(directory) as scan:
        for entry in scan:
            _remove(entry.path)


def _remove(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _is_opaque(path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        with contextlib.suppress(OSError):
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
    return False


class _Layer:
    """One layer merged onto the tree: its hard links are kept per inode."""

    def __init__(self, layer: str, root: str) -> None:
        self._layer = layer
        self._root = root
        self._links: dict[tuple[int, int], str] = {}

    def merge(self) -> None:
        self._directory(self._layer, self._root)

    def _directory(self, source: str, target: str) -> None:
        with os.scandir(source) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            path = os.path.join(target, entry.name)
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                _remove(path)
            elif stat.S_ISDIR(info.st_mode):
                self._subdirectory(entry.path, path, info)
            else:
                _remove(path)
                self._entry(entry.path, path, info)

    def _subdirectory(self, source: str, target: str, info: os.stat_result) -> None:
        try:
            existing = os.lstat(target)
        except FileNotFoundError:
            existing = None
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            os.unlink(target)
            existing = None
        if existing is None:
            os.mkdir(target, 0o700)
        elif _is_opaque(source):
            _empty(target)
        self._directory(source, target)
        _metadata(source, target, info)

    def _entry(self, source: str, target: str, info: os.stat_result) -> None:
        mode = info.st_mode
        key = (info.st_dev, info.st_ino)
        if stat.S_ISREG(mode) and info.st_nlink > 1 and key in self._links:
            os.link(self._links[key], target)
            return
        if stat.S_ISREG(mode):
            _copy_data(source, target)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(target, 0o600)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            try:
                os.mknod(target, stat.S_IFMT(mode) | 0o600, info.st_rdev)
            except PermissionError:
                # A user namespace may not make devices (nor unpack them).
                return
        else:
            return
        _metadata(source, target, info)
        if stat.S_ISREG(mode) and info.st_nlink > 1:
            self._links[key] = target


def _copy_data(source: str, target: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(target, flags, 0o600)
        try:
            try:
                fcntl.ioctl(dst, _FICLONE, src)
                return
            except OSError:
                pass
            _copy_range(src, dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_range(src: int, dst: int) -> None:
    try:
        while os.copy_file_range(src, dst, _CHUNK):
            pass
        return
    except OSError as error:
        if error.errno not in (
            errno.EXDEV,
            errno.ENOSYS,
            errno.EINVAL,
            errno.EOPNOTSUPP,
        ):
            raise
    os.lseek(src, 0, os.SEEK_SET)
    os.lseek(dst, 0, os.SEEK_SET)
    os.ftruncate(dst, 0)
    while chunk := os.read(src, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]


def _metadata(source: str, target: str, info: os.stat_result) -> None:
    with contextlib.suppress(OSError):
        for name in os.listxattr(source, follow_symlinks=False):
            if name.startswith(_OVERLAY_XATTRS):
                continue
            value = os.getxattr(source, name, follow_symlinks=False)
            os.setxattr(target, name, value, follow_symlinks=False)
    try:
        os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
    except OSError as error:
        # The single-id map of a rootless user cannot give other owners.
        if error.errno not in (errno.EPERM, errno.EINVAL):
            raise
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(target, stat.S_IMODE(info.st_mode))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
