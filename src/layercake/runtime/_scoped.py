"""Resolve a container path inside a root directory on the host.

Symbolic links in an image are meant for the container's view of the file
system: an absolute link points at the container's root, never the host's,
and ``..`` stops at the root. Resolving mount targets this way keeps a
hostile image from aiming a mount (or a created file) at a host path.
"""

from __future__ import annotations

import os
import stat

__all__ = ["resolve_in_root"]

_MAX_LINKS = 40


def resolve_in_root(
    root: str, path: str, *, create: str | None, created: list[str]
) -> str:
    """Return the host path that ``path`` names inside ``root``.

    Missing components are created when ``create`` is ``"dir"`` or ``"file"``
    (parents are always directories, mode 0755); each one created is appended
    to ``created`` as a path relative to the root, starting with ``/``.

    Raises:
        OSError: a component is not a directory, there are too many links,
            or creating a component failed.
    """
    parts: list[str] = []
    pending = [c for c in path.split("/") if c]
    pending.reverse()
    links = 0
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            if parts:
                parts.pop()
            continue
        host = root + "/" + "/".join(parts + [name])
        try:
            mode = os.lstat(host).st_mode
        except FileNotFoundError:
            if create is None:
                raise
            if pending or create == "dir":
                os.mkdir(host, 0o755)
            else:
                os.close(os.open(host, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            parts.append(name)
            created.append("/" + "/".join(parts))
            continue
        if stat.S_ISLNK(mode):
            links += 1
            if links > _MAX_LINKS:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(host)
            if target.startswith("/"):
                parts = []
            pending.extend(reversed([c for c in target.split("/") if c]))
            continue
        if pending and not stat.S_ISDIR(mode):
            raise OSError(20, "not a directory", "/" + "/".join(parts + [name]))
        parts.append(name)
    return root + "/" + "/".join(parts)
