"""Pack a directory tree (an overlayfs upper dir) into an OCI layer tar.

The tar is written as a stream: a PAX header per entry, the file's bytes in
large chunks, padding, and two zero blocks at the end. Entries come in a
fixed order (depth first, names sorted, each directory before its content),
so the same tree always gives the same bytes.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
from pathlib import Path
from typing import Protocol

from layercake.errors import StoreError

__all__ = ["OPAQUE", "WHITEOUT_PREFIX", "pack_directory"]

logger = logging.getLogger(__name__)

#: Prefix of an OCI whiteout entry: ``.wh.NAME`` deletes ``NAME``.
WHITEOUT_PREFIX = ".wh."
#: The entry that makes its directory opaque (hides lower content).
OPAQUE = ".wh..wh..opq"

_BLOCK = tarfile.BLOCKSIZE
_CHUNK = 1 << 20
# Extended attributes that describe overlayfs itself; they become whiteouts
# or nothing and never travel inside a layer.
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# An upper dir written with metacopy or redirect_dir on is not self-contained.
_INCOMPLETE = (".overlay.metacopy", ".overlay.redirect")


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


def pack_directory(
    directory: Path, out: _Sink, *, clamp_mtime: int | None = None
) -> None:
    """Write the tree under ``directory`` to ``out`` as an uncompressed tar.

    Overlay whiteouts (character devices 0:0) become ``.wh.NAME`` files, an
    opaque directory gets a ``.wh..wh..opq`` entry, overlay xattrs are left
    out, other xattrs are kept as ``SCHILY.xattr.*`` PAX records. Sockets
    cannot be represented in tar and are skipped. With ``clamp_mtime``, no
    entry's mtime is later than it (``SOURCE_DATE_EPOCH`` reproducibility).

    Raises:
        StoreError: a file changed size while it was being read, or the tree
            holds overlay metacopy/redirect entries whose data lives in a
            lower layer.
    """
    packer = _Packer(out, clamp_mtime)
    packer.walk(os.fspath(directory), "")
    out.write(b"\0" * (2 * _BLOCK))


class _Packer:
    def __init__(self, out: _Sink, clamp_mtime: int | None = None) -> None:
        self._out = out
        self._clamp = clamp_mtime
        self._links: dict[tuple[int, int], str] = {}

    def walk(self, top: str, prefix: str) -> None:
        with os.scandir(top) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            name = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._directory(entry.path, name, st)
                self.walk(entry.path, name + "/")
            else:
                self._other(entry.path, name, st)

    def _directory(self, path: str, name: str, st: os.stat_result) -> None:
        xattrs = _xattrs(path)
        self._header(_info(name, st, tarfile.DIRTYPE), xattrs)
        if _is_opaque(path):
            opaque = _info(f"{name}/{OPAQUE}", st, tarfile.REGTYPE)
            opaque.mode = 0o600
            self._header(opaque, {})

    def _other(self, path: str, name: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            self._whiteout(name, st)
        elif stat.S_ISREG(mode):
            self._file(path, name, st)
        elif stat.S_ISLNK(mode):
            info = _info(name, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(path)
            self._header(info, _xattrs(path))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info = _info(name, st, kind)
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
            self._header(info, _xattrs(path))
        elif stat.S_ISFIFO(mode):
            self._header(_info(name, st, tarfile.FIFOTYPE), _xattrs(path))
        else:
            logger.warning("skipping %s: sockets cannot be stored in a layer", path)

    def _whiteout(self, name: str, st: os.stat_result) -> None:
        parent, _, base = name.rpartition("/")
        marker = (
            f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base
        )
        info = _info(marker, st, tarfile.REGTYPE)
        info.mode = 0o600
        self._header(info, {})

    def _file(self, path: str, name: str, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            first = self._links.setdefault((st.st_dev, st.st_ino), name)
            if first != name:
                info = _info(name, st, tarfile.LNKTYPE)
                info.linkname = first
                self._header(info, _xattrs(path))
                return

        info = _info(name, st, tarfile.REGTYPE)
        info.size = st.st_size
        self._header(info, _xattrs(path))
        self._copy(path, st.st_size)

    def _copy(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            left = size
            while left:
                chunk = os.read(fd, min(left, _CHUNK))
                if not chunk:
                    raise StoreError(f"file shrank while packing a layer: {path}")
                self._out.write(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
        remainder = size % _BLOCK
        if remainder:
            self._out.write(b"\0" * (_BLOCK - remainder))

    def _header(self, info: tarfile.TarInfo, xattrs: dict[str, str]) -> None:
        info.pax_headers = xattrs
        if self._clamp is not None and info.mtime > self._clamp:
            info.mtime = self._clamp
        self._out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))


def _info(name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.uname = ""
    info.gname = ""
    info.mtime = int(st.st_mtime)
    return info


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    records = {}
    for key in sorted(names):
        if key.endswith(_INCOMPLETE):
            raise StoreError(
                f"cannot pack {path}: its {key} xattr means the content is in "
                "a lower layer (mount overlayfs with metacopy=off,redirect_dir=off)"
            )
        if key.startswith(_OVERLAY_XATTRS):
            continue
        value = os.getxattr(path, key, follow_symlinks=False)
        # PAX records are text; surrogateescape carries binary values (such
        # as security.capability) through tarfile byte for byte.
        records[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
    return records


def _is_opaque(path: str) -> bool:
    for key in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, key, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False
