"""Tar listing and building for the store's layer tests."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

MTIME = 1_700_000_000

Entry = tuple[str, str, str, int, int, int, str, dict[str, bytes]]

_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
}


def list_tar(data: bytes) -> list[Entry]:
    """List entries as (name, type, mode, uid, gid, size, link or dev, xattrs)."""
    found = []
    with tarfile.open(
        fileobj=io.BytesIO(data), mode="r:", errors="surrogateescape"
    ) as tar:
        for info in tar:
            link = info.linkname
            if info.ischr() or info.isblk():
                link = f"{info.devmajor}:{info.devminor}"
            xattrs = {
                k.removeprefix("SCHILY.xattr."): v.encode("utf-8", "surrogateescape")
                for k, v in info.pax_headers.items()
                if k.startswith("SCHILY.xattr.")
            }
            entry = (info.name, _KINDS[info.type], oct(info.mode), info.uid)
            found.append((*entry, info.gid, info.size, link, xattrs))
    return found


def build_tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """Write (header, data) pairs to an in-memory PAX tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(
    name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "", mode: int = 0o644
) -> tarfile.TarInfo:
    """A tar header with the given name, type, link target and mode."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    info.mtime = MTIME
    return info


def set_mtimes(root: Path) -> None:
    """Give root and every path under it the same mtime."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    os.utime(root, (MTIME, MTIME))


def snapshot(root: Path) -> list[tuple[str, str, int, int, int, str, dict[str, bytes]]]:
    """Describe a tree: (path, mode, uid, gid, mtime, content or target, xattrs)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames + dirnames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.islink(path):
                content = "-> " + os.readlink(path)
            elif os.path.isfile(path) and not os.path.islink(path):
                content = Path(path).read_bytes().decode("utf-8", "replace")
            elif st.st_rdev:
                content = f"dev {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                content = "dev 0:0" if (st.st_mode & 0o170000) == 0o020000 else ""
            xattrs = {
                key: os.getxattr(path, key, follow_symlinks=False)
                for key in sorted(os.listxattr(path, follow_symlinks=False))
            }
            rel = os.path.relpath(path, root)
            found.append(
                (
                    rel,
                    oct(st.st_mode),
                    st.st_uid,
                    st.st_gid,
                    int(st.st_mtime),
                    content,
                    xattrs,
                )
            )
    return found
