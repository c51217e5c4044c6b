"""Extract tar streams safely, optionally turning OCI whiteouts into overlay form.

Every entry name is checked before anything is written: absolute names and
``..`` components are refused, every parent directory is verified to be a
real directory (never a symlink) inside the target, and hard links must
point at an entry already inside the target. Files are created with
``O_EXCL | O_NOFOLLOW`` after removing whatever stood at their path.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import io
import logging
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, cast

from layercake.errors import StoreCorrupted, StoreError, UnsafeArchiveEntry

from ._digest import Digest
from ._pack import OPAQUE, WHITEOUT_PREFIX

__all__ = [
    "HashingReader",
    "Owners",
    "apply_owners",
    "decompressed",
    "extract_stream",
    "extract_tar",
]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
# tarfile's stream mode copies the rest of its buffer on every read, so a
# small buffer is faster than a large one for archives of small files.
_TAR_BUFFER = 1 << 14
_XATTR = "SCHILY.xattr."
# The longest file name component Linux file systems accept, in bytes.
_NAME_MAX = 255
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")

Owners = list[tuple[str, int, int, int]]
"""Owners an unprivileged extraction could not set: ``(path, uid, gid, mode)``,
with mode -1 for a symbolic link."""


def apply_owners(owners: Owners) -> None:
    """Give each path of ``owners`` its uid and gid, then its mode again.

    Run as root of a user namespace that maps the ids (see
    :func:`layercake.runtime.as_mapped_root`): chown clears setuid and
    setgid bits, so the mode is set afterwards. An id the namespace does not
    map leaves the path with its current owner.

    Raises:
        OSError: a path could not be changed.
    """
    for path, uid, gid, mode in owners:
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            continue
        if mode >= 0:
            os.chmod(path, mode)


class HashingReader(io.RawIOBase):
    """A read-only raw stream that hashes every byte read through it.

    With ``limit``, reading more than ``limit`` bytes raises
    ``StoreError(refusal)``: a decompression bomb stops there, before it
    fills a disk. With ``hashing=False`` it only counts (and limits).
    """

    def __init__(
        self,
        inner: IO[bytes],
        *,
        limit: int | None = None,
        refusal: str = "",
        hashing: bool = True,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._hash = hashlib.sha256()
        self._hashing = hashing
        self._limit = limit
        self._refusal = refusal
        self._count = 0

    @property
    def count(self) -> int:
        """The number of bytes read through this stream so far."""
        return self._count

    def _counted(self, data: bytes) -> None:
        self._count += len(data)
        if self._limit is not None and self._count > self._limit:
            raise StoreError(self._refusal)
        if self._hashing:
            self._hash.update(data)

    def readable(self) -> bool:
        """Return ``True``: this stream can be read."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the wrapped stream, hashing what was read."""
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        self._counted(data)
        size = len(data)
        view[:size] = data
        return size

    def drain(self) -> Digest:
        """Read to the end and return the digest of everything read."""
        while self._inner_read():
            pass
        return Digest("sha256", self._hash.hexdigest())

    def _inner_read(self) -> bool:
        data = self._inner.read(_CHUNK)
        self._counted(data)
        return bool(data)


def compression(magic: bytes) -> str | None:
    """Name the compression whose magic number ``magic`` starts with, if any.

    ``None`` means the bytes are taken as they are (an uncompressed tar).
    """
    for name, number in _MAGIC_NUMBERS:
        if magic.startswith(number):
            return name
    return None


_MAGIC_NUMBERS = (
    ("gzip", b"\x1f\x8b"),
    ("bzip2", b"BZh"),
    ("xz", b"\xfd7zXZ\x00"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
)


@contextmanager
def decompressed(stream: IO[bytes]) -> Iterator[IO[bytes]]:
    """Yield ``stream`` decompressed, detecting gzip/bzip2/xz/zstd by magic."""
    buffered = io.BufferedReader(cast(io.RawIOBase, stream), _CHUNK)
    try:
        kind = compression(buffered.peek(6)[:6])
        if kind == "gzip":
            with gzip.GzipFile(fileobj=buffered, mode="rb") as gz:
                yield cast(IO[bytes], gz)
        elif kind == "bzip2":
            with bz2.BZ2File(buffered) as bz:
                yield cast(IO[bytes], bz)
        elif kind == "xz":
            with lzma.LZMAFile(buffered) as xz:
                yield cast(IO[bytes], xz)
        elif kind == "zstd":
            with _zstd(buffered) as zst:
                yield zst
        else:
            yield buffered
    finally:
        # The caller owns ``stream``: let go of it without closing it.
        if not buffered.closed:
            buffered.detach()


@contextmanager
def _zstd(stream: IO[bytes]) -> Iterator[IO[bytes]]:
    # The standard library has no zstd before Python 3.14; the zstd tool
    # decompresses in a child process fed by a thread.
    try:
        child = subprocess.Popen(
            ["zstd", "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
    except FileNotFoundError:
        raise StoreError(
            "cannot read zstd layer: the zstd program is missing"
        ) from None
    assert child.stdin is not None and child.stdout is not None
    feeder = threading.Thread(target=_feed, args=(stream, child.stdin), daemon=True)
    feeder.start()
    try:
        yield child.stdout
        # Read what the consumer left (tar padding): closing the pipe early
        # would make zstd fail.
        while child.stdout.read(_CHUNK):
            pass
    except BaseException:
        child.kill()
        raise
    finally:
        child.stdout.close()
        feeder.join()
        child.wait()
    if child.returncode != 0:
        raise StoreCorrupted(f"zstd failed to decompress (exit {child.returncode})")


def _feed(source: IO[bytes], sink: IO[bytes]) -> None:
    try:
        while chunk := source.read(_CHUNK):
            sink.write(chunk)
    except (BrokenPipeError, ValueError):
        pass
    finally:
        try:
            sink.close()
        except BrokenPipeError:
            pass


def extract_tar(
    stream: BinaryIO,
    target: Path,
    *,
    whiteouts: Literal["overlay", "keep"] = "keep",
    limit: int | None = None,
) -> None:
    """Extract a tar archive (plain, gzip, bzip2, xz or zstd) into ``target``.

    Ownership (when running as root), modes, mtimes, xattrs, links and device
    nodes are restored. With ``whiteouts="overlay"``, ``.wh.NAME`` entries
    become overlay whiteouts (character devices 0:0) and ``.wh..wh..opq``
    marks its directory opaque; with ``"keep"`` they stay plain files.
    ``target`` is created if missing. On error, what was already extracted
    stays in ``target``.

    A decompression bomb is stopped: the uncompressed tar, and the sum of
    its files' sizes, may not pass ``limit`` bytes, by default the free
    space of ``target``'s file system when extraction starts.

    Raises:
        UnsafeArchiveEntry: an entry would write outside ``target``.
        StoreCorrupted: the stream is not a readable tar archive.
        StoreError: the archive expands past the limit.
    """
    target.mkdir(parents=True, exist_ok=True)
    if limit is None:
        st = os.statvfs(target)
        limit = st.f_bavail * st.f_frsize
        refusal = (
            f"archive refused: it expands past {limit} bytes, the free space "
            f"of the file system of {target}"
        )
    else:
        refusal = f"archive refused: it expands past {limit} bytes"
    with decompressed(stream) as plain:
        counted = HashingReader(plain, limit=limit, refusal=refusal, hashing=False)
        extract_stream(
            counted,  # type: ignore[arg-type]
            target,
            whiteouts=whiteouts,
            limit=limit,
            refusal=refusal,
        )


def extract_stream(
    stream: IO[bytes],
    target: Path,
    *,
    whiteouts: Literal["overlay", "keep"] = "keep",
    limit: int | None = None,
    refusal: str = "",
    owners: Owners | None = None,
) -> None:
    """Extract an uncompressed tar stream into ``target`` (see extract_tar).

    With ``limit``, the entry that takes the regular files' total size past
    ``limit`` bytes (sparse entries count their full size) stops the
    extraction with ``StoreError(f"{refusal} (at entry NAME)")``. Not being
    root, the owners of entries not owned by 0:0 are appended to ``owners``
    when it is given, for :func:`apply_owners`.

    Raises:
        UnsafeArchiveEntry: an entry would escape ``target`` or has a name
            no file can have.
        StoreError: the files are larger than ``limit``.
        StoreCorrupted: the stream is not a readable tar archive.
    """
    target.mkdir(parents=True, exist_ok=True)
    extractor = _Extractor(target, overlay=whiteouts == "overlay", limit=limit)
    extractor.owners = owners
    extractor.refusal = refusal or f"archive refused: its files exceed {limit} bytes"
    try:
        with tarfile.open(
            fileobj=stream,
            mode="r|",
            bufsize=_TAR_BUFFER,
            encoding="utf-8",
            errors="surrogateescape",
        ) as tar:
            while (info := tar.next()) is not None:
                extractor.add(info, tar)
                # TarFile remembers every member; forget them so memory
                # stays flat however many entries the archive has.
                tar.members.clear()  # type: ignore[attr-defined]
    except tarfile.TarError as exc:
        raise StoreCorrupted(f"invalid tar archive: {exc}", path=str(target)) from exc
    extractor.finish()


class _Extractor:
    def __init__(self, target: Path, *, overlay: bool, limit: int | None) -> None:
        self._root = os.fspath(target)
        self._overlay = overlay
        self._limit = limit
        self._file_bytes = 0
        self.refusal = ""
        self._chown = os.geteuid() == 0
        self.owners: Owners | None = None
        # Only root may set trusted.* xattrs; an overlay mounted with the
        # userxattr option, as rootless ones are, reads user.overlay.* ones.
        self._opaque = "trusted." if self._chown else "user."
        # Relative paths known to be real directories we may write into.
        self._safe: set[str] = {""}
        self._dirs: list[tuple[str, tarfile.TarInfo]] = []

    def add(self, info: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        parts = _parts(info.name)
        if not parts:
            return
        base = parts[-1]
        if self._overlay and base.startswith(WHITEOUT_PREFIX):
            self._whiteout(info, parts)
            return

        rel = "/".join(parts)
        self._parents(info.name, parts)
        path = os.path.join(self._root, rel)
        if info.isdir():
            self._make_dir(rel, path, info)
            return

        self._clear(rel, path)
        if info.isreg():
            self._count(info)
            self._write_file(path, info, tar)
        elif info.issym():
            if "\0" in info.linkname:
                raise UnsafeArchiveEntry(
                    info.name, f"symlink target {info.linkname!r} contains a NUL byte"
                )
            os.symlink(info.linkname, path)
        elif info.islnk():
            self._link(info, path)
            return
        elif info.ischr() or info.isblk():
            if not self._chown:
                # Only root may create device nodes; a rootless unpack does
                # what Docker's rootless mode does and leaves them out.
                logger.warning("skipping device node %r: not root", info.name)
                return
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(info.devmajor, info.devminor))
        elif info.isfifo():
            os.mkfifo(path, 0o600)
        else:
            logger.warning("skipping tar entry %r of type %r", info.name, info.type)
            return
        self._metadata(path, info)
        os.utime(path, (info.mtime, info.mtime), follow_symlinks=False)

    def _count(self, info: tarfile.TarInfo) -> None:
        self._file_bytes += info.size
        if self._limit is not None and self._file_bytes > self._limit:
            raise StoreError(f"{self.refusal} (at entry {info.name!r})")

    def finish(self) -> None:
        # Directory mtimes change as entries land in them: set them last,
        # deepest first.
        for path, info in reversed(self._dirs):
            # A later entry may have replaced the directory by a symlink:
            # never follow it out of the target.
            with contextlib.suppress(FileNotFoundError):
                os.utime(path, (info.mtime, info.mtime), follow_symlinks=False)

    def _parents(self, entry: str, parts: list[str], *, create: bool = True) -> None:
        for i in range(1, len(parts)):
            rel = "/".join(parts[:i])
            if rel in self._safe:
                continue
            path = os.path.join(self._root, rel)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise UnsafeArchiveEntry(
                        entry, f"its parent {rel!r} is not in the archive", path=path
                    ) from None
                os.mkdir(path, 0o755)
                self._safe.add(rel)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeArchiveEntry(
                    entry, f"its parent {rel!r} is a symbolic link", path=path
                )
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeArchiveEntry(
                    entry, f"its parent {rel!r} is not a directory", path=path
                )
            self._safe.add(rel)

    def _clear(self, rel: str, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            prefix = rel + "/"
            self._safe = {
                d for d in self._safe if d != rel and not d.startswith(prefix)
            }
        else:
            os.unlink(path)

    def _make_dir(self, rel: str, path: str, info: tarfile.TarInfo) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            st = None
        if st is None:
            os.mkdir(path, 0o700)
        self._safe.add(rel)
        self._metadata(path, info)
        self._dirs.append((path, info))

    def _write_file(
        self, path: str, info: tarfile.TarInfo, tar: tarfile.TarFile
    ) -> None:
        source = tar.extractfile(info)
        assert source is not None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            while chunk := source.read(_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _link(self, info: tarfile.TarInfo, path: str) -> None:
        missing = f"hard link target {info.linkname!r} is not in the archive"
        parts = _parts(info.linkname, entry=info.name, what="hard link target")
        if not parts:
            raise UnsafeArchiveEntry(info.name, missing)
        self._parents(info.name, parts, create=False)
        source = os.path.join(self._root, *parts)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise UnsafeArchiveEntry(info.name, missing) from None
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeArchiveEntry(info.name, "hard link to a directory")
        os.link(source, path, follow_symlinks=False)

    def _whiteout(self, info: tarfile.TarInfo, parts: list[str]) -> None:
        entry = info.name
        self._parents(entry, parts)
        parent = "/".join(parts[:-1])
        parent_path = os.path.join(self._root, parent)
        if parts[-1] == OPAQUE:
            os.setxattr(parent_path, self._opaque + "overlay.opaque", b"y")
            return

        name = parts[-1][len(WHITEOUT_PREFIX) :]
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise UnsafeArchiveEntry(entry, "invalid whiteout name")
        rel = f"{parent}/{name}" if parent else name
        path = os.path.join(self._root, rel)
        self._clear(rel, path)
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        if self._chown:
            os.chown(path, info.uid, info.gid)
        os.utime(path, (info.mtime, info.mtime), follow_symlinks=False)

    def _metadata(self, path: str, info: tarfile.TarInfo) -> None:
        if self._chown:
            os.chown(path, info.uid, info.gid, follow_symlinks=False)
        elif self.owners is not None and (info.uid or info.gid):
            mode = -1 if info.issym() else info.mode & 0o7777
            self.owners.append((path, info.uid, info.gid, mode))
        for key, value in info.pax_headers.items():
            if key.startswith(_XATTR):
                self._xattr(path, key[len(_XATTR) :], value, info)
        if not info.issym():
            # After chown, which clears setuid and setgid bits.
            os.chmod(path, info.mode & 0o7777)

    def _xattr(self, path: str, name: str, value: str, info: tarfile.TarInfo) -> None:
        if name.startswith(_OVERLAY_XATTRS):
            logger.warning("ignoring overlay xattr %s on %r", name, info.name)
            return
        raw = value.encode("utf-8", "surrogateescape")
        try:
            os.setxattr(path, name, raw, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            logger.warning("cannot set xattr %s on %r: %s", name, info.name, exc)


def _parts(name: str, *, entry: str | None = None, what: str = "path") -> list[str]:
    """Split a tar name into safe components.

    Absolute names, ``..`` components, NUL bytes (which no file name can
    hold) and components longer than a Linux file name may be are refused.
    """
    if name.startswith("/"):
        raise UnsafeArchiveEntry(entry or name, f"{what} {name!r} is absolute")
    if "\0" in name:
        raise UnsafeArchiveEntry(entry or name, f"{what} {name!r} contains a NUL byte")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveEntry(entry or name, f"{what} {name!r} contains '..'")
    for part in parts:
        size = len(os.fsencode(part))
        if size > _NAME_MAX:
            raise UnsafeArchiveEntry(
                entry or name,
                f"{what} {name!r} has a component of {size} bytes "
                f"(at most {_NAME_MAX} are allowed)",
            )
    return parts
