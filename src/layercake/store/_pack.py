"""Pack a directory tree (an overlayfs upper dir) into an OCI layer tar.

The tar is written as a stream: a header per entry (PAX records only where
ustar cannot hold the entry, exactly as ``tarfile``'s PAX format does), the
file's bytes, padding, and two zero blocks at the end. Entries come in a
fixed order (depth first, names sorted, each directory before its content),
so the same tree always gives the same bytes.

A :class:`_Packer` walks the tree and puts headers and file contents into a
:class:`_TarStream`, which reads the files straight into a large buffer and
hands it to the sink whenever it is full. A blob writer lends its own
buffers, so the tar is built in place: the writer hashes each full buffer
in this thread and copies it into the blob file in a thread of its own.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
import zlib
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Protocol, cast

from layercake.errors import StoreError

__all__ = ["OPAQUE", "WHITEOUT_PREFIX", "pack_directory"]

logger = logging.getLogger(__name__)

#: Prefix of an OCI whiteout entry: ``.wh.NAME`` deletes ``NAME``.
WHITEOUT_PREFIX = ".wh."
#: The entry that makes its directory opaque (hides lower content).
OPAQUE = ".wh..wh..opq"

_BLOCK = tarfile.BLOCKSIZE
# A sink without buffers of its own (a plain file) gets the tar in pieces of
# this size: few enough calls, small enough to stay in the CPU's caches.
_CHUNK = 2 << 20
_ZEROS = bytes(_BLOCK)
_END = bytes(2 * _BLOCK)
_DEVICES = (tarfile.CHRTYPE, tarfile.BLKTYPE)
_MAX7 = 8**7
_MAX11 = 8**11
# ustar magic and version, then empty uname and gname fields.
_MAGIC = b"ustar\x0000" + bytes(64)
# The device fields (empty unless a device) and the prefix and padding.
_NO_DEVICE_TAIL = bytes(16 + 167)
# Extended attributes that describe overlayfs itself; they become whiteouts
# or nothing and never travel inside a layer.
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# An upper dir written with metacopy or redirect_dir on is not self-contained.
_INCOMPLETE = (".overlay.metacopy", ".overlay.redirect")
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_by_name = attrgetter("name")


class _Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...


class _LendingSink(_Sink, Protocol):
    def take_buffer(self) -> memoryview: ...

    def put_buffer(self, buffer: memoryview, length: int, /) -> None: ...


def pack_directory(
    directory: Path,
    out: _Sink,
    *,
    clamp_mtime: int | None = None,
    owners: Callable[[int, int], tuple[int, int]] | None = None,
) -> None:
    """Write the tree under ``directory`` to ``out`` as an uncompressed tar.

    Overlay whiteouts (character devices 0:0) become ``.wh.NAME`` files, an
    opaque directory gets a ``.wh..wh..opq`` entry, overlay xattrs are left
    out, other xattrs are kept as ``SCHILY.xattr.*`` PAX records. Sockets
    cannot be represented in tar and are skipped. With ``clamp_mtime``, no
    entry's mtime is later than it (``SOURCE_DATE_EPOCH`` reproducibility).
    ``out.write`` receives views of one reused buffer of at most 2 MiB,
    valid until it returns; a sink with ``take_buffer`` and ``put_buffer``
    (a :class:`BlobWriter`) has its own buffers filled instead. ``owners``
    turns each entry's uid and gid on disk into the ones the tar records (a
    rootless container's ids as seen inside).

    Raises:
        StoreError: a file changed size while it was being read, or the tree
            holds overlay metacopy/redirect entries whose data lives in a
            lower layer.
        OSError: ``out.write`` failed, or the tree could not be read.
    """
    packer = _Packer(_TarStream(out), clamp_mtime, owners)
    packer.walk(os.fspath(directory), "")
    packer.finish()


class _TarStream:
    """The tar being written: gathers headers and file bytes in large buffers.

    Files are read with ``readv`` straight into the buffer at their place in
    the tar, so each byte is copied once on its way from the file to the
    sink, and one hash update and one write cover megabytes of small
    entries. A plain sink must be done with a view when its ``write``
    returns; a lending sink's buffers are handed back to it when full.
    """

    def __init__(self, out: _Sink) -> None:
        self._out = out
        self._lender: _LendingSink | None = None
        if hasattr(out, "take_buffer") and hasattr(out, "put_buffer"):
            self._lender = cast("_LendingSink", out)
            self._view = self._lender.take_buffer()
        else:
            self._view = memoryview(bytearray(_CHUNK))
        self._size = len(self._view)
        self._pos = 0

    def add(self, data: bytes) -> None:
        """Append ``data`` (headers, padding) to the tar."""
        pos = self._pos
        end = pos + len(data)
        if end <= self._size:
            self._view[pos:end] = data
            self._pos = end
            return
        self.flush()
        if len(data) < self._size:
            self._view[: len(data)] = data
            self._pos = len(data)
        else:
            self._out.write(data)

    def add_file(self, fd: int, size: int, path: str) -> None:
        """Append ``size`` bytes read from ``fd`` and the padding after them.

        Raises:
            StoreError: the file ends before ``size`` bytes.
        """
        left = size
        while left:
            pos = self._pos
            if pos == self._size:
                self.flush()
                pos = 0
            end = pos + min(left, self._size - pos)
            got = os.readv(fd, (self._view[pos:end],))
            if not got:
                raise StoreError(f"file shrank while packing a layer: {path}")
            self._pos = pos + got
            left -= got
        remainder = size % _BLOCK
        if remainder:
            self.add(_ZEROS[remainder:])

    def flush(self, *, last: bool = False) -> None:
        """Hand everything gathered so far to the sink.

        With ``last``, the stream is done: a lent buffer is not replaced.
        """
        if not self._pos:
            return
        if self._lender is None:
            self._out.write(self._view[: self._pos])
        else:
            self._lender.put_buffer(self._view, self._pos)
            if not last:
                self._view = self._lender.take_buffer()
        self._pos = 0


class _Packer:
    def __init__(
        self,
        stream: _TarStream,
        clamp_mtime: int | None = None,
        owners: Callable[[int, int], tuple[int, int]] | None = None,
    ) -> None:
        self._stream = stream
        self._clamp = clamp_mtime
        self._owners = owners
        self._links: dict[tuple[int, int], str] = {}

    def _info(self, name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        info = _info(name, st, kind)
        if self._owners is not None:
            info.uid, info.gid = self._owners(info.uid, info.gid)
        return info

    def finish(self) -> None:
        """Add the two zero blocks that end a tar and hand over everything."""
        self._stream.add(_END)
        self._stream.flush(last=True)

    def walk(self, top: str, prefix: str) -> None:
        with os.scandir(top) as scan:
            entries = sorted(scan, key=_by_name)
        for entry in entries:
            name = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISREG(mode):
                self._file(entry.path, name, st)
            elif stat.S_ISDIR(mode):
                self._directory(entry.path, name, st)
                self.walk(entry.path, name + "/")
            else:
                self._other(entry.path, name, st)

    def _directory(self, path: str, name: str, st: os.stat_result) -> None:
        xattrs = _xattrs(path)
        self._header(self._info(name, st, tarfile.DIRTYPE), xattrs)
        if _is_opaque(path):
            opaque = self._info(f"{name}/{OPAQUE}", st, tarfile.REGTYPE)
            opaque.mode = 0o600
            self._header(opaque, {})

    def _other(self, path: str, name: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            self._whiteout(name, st)
        elif stat.S_ISREG(mode):
            self._file(path, name, st)
        elif stat.S_ISLNK(mode):
            info = self._info(name, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(path)
            self._header(info, _xattrs(path))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info = self._info(name, st, kind)
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
            self._header(info, _xattrs(path))
        elif stat.S_ISFIFO(mode):
            self._header(self._info(name, st, tarfile.FIFOTYPE), _xattrs(path))
        else:
            logger.warning("skipping %s: sockets cannot be stored in a layer", path)

    def _whiteout(self, name: str, st: os.stat_result) -> None:
        parent, _, base = name.rpartition("/")
        marker = (
            f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base
        )
        info = self._info(marker, st, tarfile.REGTYPE)
        info.mode = 0o600
        self._header(info, {})

    def _file(self, path: str, name: str, st: os.stat_result) -> None:
        # Most entries of a layer are plain files: their header is built
        # straight from the stat result, without a TarInfo.
        if st.st_nlink > 1:
            first = self._links.setdefault((st.st_dev, st.st_ino), name)
            if first != name:
                info = self._info(name, st, tarfile.LNKTYPE)
                info.linkname = first
                self._header(info, _xattrs(path))
                return

        size = st.st_size
        xattrs = _xattrs(path)
        header = None
        if not xattrs:
            mtime = int(st.st_mtime)
            if self._clamp is not None and mtime > self._clamp:
                mtime = self._clamp
            uid, gid = st.st_uid, st.st_gid
            if self._owners is not None:
                uid, gid = self._owners(uid, gid)
            header = _plain_header(
                name, tarfile.REGTYPE, st.st_mode, uid, gid, size, mtime
            )
        if header is None:
            info = self._info(name, st, tarfile.REGTYPE)
            info.size = size
            self._header(info, xattrs)
        else:
            self._stream.add(header)
        if size:
            fd = os.open(path, _OPEN_FLAGS)
            try:
                self._stream.add_file(fd, size, path)
            finally:
                os.close(fd)

    def _header(self, info: tarfile.TarInfo, xattrs: dict[str, str]) -> None:
        if self._clamp is not None and info.mtime > self._clamp:
            info.mtime = self._clamp
        header = None if xattrs else ustar_header(info)
        if header is None:
            info.pax_headers = xattrs
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._stream.add(header)


def ustar_header(info: tarfile.TarInfo) -> bytes | None:
    """Return the header ``info.tobuf(PAX_FORMAT)`` writes, or ``None``.

    For an entry that needs no PAX record (ASCII names of at most 100 bytes,
    numbers that fit their octal fields, an integer mtime) tarfile writes a
    plain ustar block; building it here is several times faster and gives
    the same 512 bytes. ``None`` means a PAX record is needed: let tarfile
    write the entry.
    """
    if info.uname or info.gname or type(info.mtime) is not int:
        return None
    return _plain_header(
        info.name,
        info.type,
        info.mode,
        info.uid,
        info.gid,
        info.size,
        info.mtime,
        info.linkname,
        info.devmajor,
        info.devminor,
    )


def _plain_header(
    name: str,
    kind: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    link: str = "",
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes | None:
    """The ustar block of an entry with empty owner names, or ``None``.

    ``None`` when a field does not fit ustar (see :func:`ustar_header`).
    """
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    if not (
        len(name) <= 100
        and len(link) <= 100
        and name.isascii()
        and link.isascii()
        and 0 <= uid < _MAX7
        and 0 <= gid < _MAX7
        and 0 <= size < _MAX11
        and 0 <= mtime < _MAX11
        and 0 <= devmajor < _MAX7
        and 0 <= devminor < _MAX7
    ):
        return None
    # Everything up to the device fields; the checksum field is 8 spaces.
    head = b"%s%07o\0%07o\0%07o\0%011o\0%011o\0        %s%s%s" % (
        name.encode("ascii").ljust(100, b"\0"),
        mode & 0o7777,
        uid,
        gid,
        size,
        mtime,
        kind,
        link.encode("ascii").ljust(100, b"\0"),
        _MAGIC,
    )
    tail = (
        b"%07o\0%07o\0%s" % (devmajor, devminor, _NO_DEVICE_TAIL[16:])
        if kind in _DEVICES
        else _NO_DEVICE_TAIL
    )
    # The checksum is the byte sum of the block with its own field blank.
    # Adler-32's low half is 1 + the byte sum modulo 65521, exact for runs of
    # at most 256 bytes, and runs in C instead of a Python-level sum.
    check = (
        (zlib.adler32(head[:256]) & 0xFFFF)
        + (zlib.adler32(head[256:]) & 0xFFFF)
        + (zlib.adler32(tail[:16]) & 0xFFFF)
        - 3
    )
    return b"%s%06o\0 %s%s" % (head[:148], check, head[156:], tail)


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
    if not names:
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
