#!/usr/bin/env python3
"""Write a busybox root file system tarball the way the official image has one.

The official busybox image is ``FROM scratch`` plus ``ADD rootfs.tar /``,
where the tarball holds one static busybox binary, a hard link to it in
/bin for every applet, and a small /etc. This script makes that tarball
from the static busybox that Debian's busybox-static package installs, so
tests and examples get a real base image without reaching any registry.

Usage: python3 scripts/make_busybox_rootfs.py OUTPUT.tar [--busybox PATH]

The tarball is reproducible: entries are sorted and every timestamp is
SOURCE_DATE_EPOCH (default 0).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

DEFAULT_BUSYBOX = "/bin/busybox"

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """\
root:x:0:
daemon:x:1:
app:x:1000:
nogroup:x:65534:
"""

# (path, mode, uid, gid) of every directory, parents before children.
DIRECTORIES = [
    ("bin", 0o755, 0, 0),
    ("dev", 0o755, 0, 0),
    ("etc", 0o755, 0, 0),
    ("home", 0o755, 0, 0),
    ("home/app", 0o755, 1000, 1000),
    ("proc", 0o555, 0, 0),
    ("root", 0o700, 0, 0),
    ("sys", 0o555, 0, 0),
    ("tmp", 0o1777, 0, 0),
    ("usr", 0o755, 0, 0),
    ("usr/sbin", 0o755, 0, 0),
    ("var", 0o755, 0, 0),
    ("var/spool", 0o755, 0, 0),
    ("var/spool/mail", 0o755, 8, 8),
    ("var/www", 0o755, 0, 0),
]


def applet_names(busybox: str) -> list[str]:
    """The applets the binary provides, as busybox itself lists them."""
    listing = subprocess.run(
        [busybox, "--list"], check=True, capture_output=True, text=True
    ).stdout
    return sorted({name for name in listing.split() if "/" not in name})


def directory_entry(
    name: str, mode: int, uid: int, gid: int, mtime: int
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    return info


def add_file(
    tar: tarfile.TarFile, name: str, data: bytes, mode: int, mtime: int
) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def write_rootfs(output: Path, busybox: str, mtime: int) -> int:
    """Write the tarball; return how many applet links it holds."""
    binary = Path(busybox).read_bytes()
    applets = [name for name in applet_names(busybox) if name != "busybox"]

    with tarfile.open(output, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode, uid, gid in DIRECTORIES:
            if name == "etc":
                tar.addfile(directory_entry(name, mode, uid, gid, mtime))
                add_file(tar, "etc/group", GROUP.encode(), 0o644, mtime)
                add_file(tar, "etc/passwd", PASSWD.encode(), 0o644, mtime)
                continue
            tar.addfile(directory_entry(name, mode, uid, gid, mtime))
            if name == "bin":
                add_file(tar, "bin/busybox", binary, 0o755, mtime)
                for applet in applets:
                    link = tarfile.TarInfo(f"bin/{applet}")
                    link.type = tarfile.LNKTYPE
                    link.linkname = "bin/busybox"
                    link.mode = 0o755
                    link.mtime = mtime
                    tar.addfile(link)
    return len(applets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--busybox", default=DEFAULT_BUSYBOX)
    args = parser.parse_args(argv)

    if not os.access(args.busybox, os.X_OK):
        print(
            f"error: {args.busybox} is not an executable busybox "
            "(install Debian's busybox-static)",
            file=sys.stderr,
        )
        return 1

    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    count = write_rootfs(args.output, args.busybox, mtime)
    print(f"wrote {args.output} with {count} applets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
