"""Pack a directory tree (an overlayfs upper dir) into an OCI layer tar.

The tar is written as a stream: a header per entry (PAX records only where
ustar cannot hold the entry, exactly as ``tarfile``'s PAX format does), the
file's bytes in large chunks, padding, and two zero blocks at the end.
Entries come in a fixed order (depth first, names sorted, each directory
before its content), so the same tree always gives the same bytes.

A :class:`_Packer` walks the tree and emits pieces (header bytes and
``(path, size)`` references); a :class:`_Feeder` reads the files and turns
the pieces into bytes, inline or in a worker thread.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from layercake.errors import StoreError

from ._background import background_calls

__all__ = ["OPAQUE", "WHITEOUT_PREFIX", "pack_directory"]

logger = logging.getLogger(__name__)

#: Prefix of an OCI whiteout entry: ``.wh.NAME`` deletes ``NAME``.
WHITEOUT_PREFIX = ".wh."
#: The entry that makes its directory opaque (hides lower content).
OPAQUE = ".wh..wh..opq"

_BLOCK = tarfile.BLOCKSIZE
_CHUNK = 1 << 20
_ZEROS = bytes(_BLOCK)
_END = bytes(2 * _BLOCK)
_DEVICES = (tarfile.CHRTYPE, tarfile.BLKTYPE)
_MAX7 = 8**7
_MAX11 = 8**11
# ustar magic and version, then empty uname and gname fields.
_MAGIC = b"ustar\x0000" + bytes(64)
# Extended attributes that describe overlayfs itself; they become whiteouts
# or nothing and never travel inside a layer.
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# An upper dir written with metacopy or redirect_dir on is not self-contained.
_INCOMPLETE = (".overlay.metacopy", ".overlay.redirect")


class _Sink(Protocol):
    def write(self, data: bytes | bytearray, /) -> int: ...


def pack_directory(
    directory: Path,
    out: _Sink,
    *,
    clamp_mtime: int | None = None,
    reader_thread: bool = False,
) -> None:
    """Write the tree under ``directory`` to ``out`` as an uncompressed tar.

    Overlay whiteouts (character devices 0:0) become ``.wh.NAME`` files, an
    opaque directory gets a ``.wh..wh..opq`` entry, overlay xattrs are left
    out, other xattrs are kept as ``SCHILY.xattr.*`` PAX records. Sockets
    cannot be represented in tar and are skipped. With ``clamp_mtime``, no
    entry's mtime is later than it (``SOURCE_DATE_EPOCH`` reproducibility).
    With ``reader_thread``, files are read (and ``out`` written) by a worker
    thread while this one walks the tree; ``out`` is then called from that
    thread only.

    Raises:
        StoreError: a file changed size while it was being read, or the tree
            holds overlay metacopy/redirect entries whose data lives in a
            lower layer.
    """
    feeder = _Feeder(out)
    if not reader_thread:
        packer = _Packer(feeder.feed, clamp_mtime)
        packer.walk(os.fspath(directory), "")
        packer.finish()
        return
    with background_calls(feeder.feed) as worker:
        packer = _Packer(worker.put, clamp_mtime)
        packer.walk(os.fspath(directory), "")
        packer.finish()


#: What the walk hands to the reading side, in tar order: header bytes, a
#: file to copy as (path, size), or ``None`` for "flush now".
_Piece = bytes | tuple[str, int] | None


class _Feeder:
    """Turns pieces into the tar's bytes: reads the files, pads, batches writes.

    Headers and small files gather in a buffer that reaches ``out`` in
    writes of about 1 MiB: one hash update and one buffered write per
    megabyte instead of two per entry.
    """

    def __init__(self, out: _Sink) -> None:
        self._out = out
        self._pending = bytearray()

    def feed(self, batch: list[_Piece]) -> None:
        for piece in batch:
            if piece is None:
                self._flush()
            elif isinstance(piece, tuple):
                self._copy(*piece)
            else:
                self._pending += piece
            if len(self._pending) >= _CHUNK:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._out.write(self._pending)
            self._pending = bytearray()

    def _copy(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if size < _CHUNK:
                self._pending += _read_exactly(fd, size, path)
            else:
                self._flush()
                left = size
                while left:
                    chunk = _read_exactly(fd, min(left, _CHUNK), path)
                    self._out.write(chunk)
                    left -= len(chunk)
        finally:
            os.close(fd)
        remainder = size % _BLOCK
        if remainder:
            self._pending += _ZEROS[: _BLOCK - remainder]


class _Packer:
    def __init__(
        self, feed: Callable[[list[_Piece]], None], clamp_mtime: int | None = None
    ) -> None:
        self._feed = feed
        self._clamp = clamp_mtime
        self._links: dict[tuple[int, int], str] = {}
        # Pieces go to the feeder in batches of about 1 MiB of tar or 256
        # pieces, so a reader thread is woken once per batch, not per entry.
        self._batch: list[_Piece] = []
        self._batch_bytes = 0

    def finish(self) -> None:
        """Add the two zero blocks that end a tar and hand over everything."""
        self._batch += (_END, None)
        self._send()

    def _emit(self, piece: bytes | tuple[str, int], size: int) -> None:
        self._batch.append(piece)
        self._batch_bytes += size
        if self._batch_bytes >= _CHUNK or len(self._batch) >= 256:
            self._send()

    def _send(self) -> None:
        if self._batch:
            self._feed(self._batch)
            self._batch = []
            self._batch_bytes = 0

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
        if st.st_size:
            self._emit((path, st.st_size), st.st_size)

    def _header(self, info: tarfile.TarInfo, xattrs: dict[str, str]) -> None:
        if self._clamp is not None and info.mtime > self._clamp:
            info.mtime = self._clamp
        header = None if xattrs else ustar_header(info)
        if header is None:
            info.pax_headers = xattrs
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        self._emit(header, len(header))


def ustar_header(info: tarfile.TarInfo) -> bytes | None:
    """Return the header ``info.tobuf(PAX_FORMAT)`` writes, or ``None``.

    For an entry that needs no PAX record (ASCII names of at most 100 bytes,
    numbers that fit their octal fields, an integer mtime) tarfile writes a
    plain ustar block; building it here is several times faster and gives
    the same 512 bytes. ``None`` means a PAX record is needed: let tarfile
    write the entry.
    """
    name = info.name
    if info.type == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    link = info.linkname
    mtime = info.mtime
    if not (
        len(name) <= 100
        and len(link) <= 100
        and name.isascii()
        and link.isascii()
        and not info.uname
        and not info.gname
        and 0 <= info.uid < _MAX7
        and 0 <= info.gid < _MAX7
        and 0 <= info.size < _MAX11
        and type(mtime) is int
        and 0 <= mtime < _MAX11
        and 0 <= info.devmajor < _MAX7
        and 0 <= info.devminor < _MAX7
    ):
        return None
    block = b"".join(
        (
            name.encode("ascii").ljust(100, b"\0"),
            b"%07o\0%07o\0%07o\0%011o\0%011o\0"
            % (info.mode & 0o7777, info.uid, info.gid, info.size, mtime),
            b"        ",
            info.type,
            link.encode("ascii").ljust(100, b"\0"),
            _MAGIC,
            b"%07o\0%07o\0" % (info.devmajor, info.devminor)
            if info.type in _DEVICES
            else _ZEROS[:16],
            _ZEROS[:167],
        )
    )
    # The checksum is the byte sum of the block with its own field blank.
    return b"%s%06o\0 %s" % (block[:148], sum(block), block[156:])


def _read_exactly(fd: int, size: int, path: str) -> bytes:
    data = os.read(fd, size)
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            raise StoreError(f"file shrank while packing a layer: {path}")
        data += more
    return data


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
