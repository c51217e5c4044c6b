"""Read paths of an image's file system without mounting it.

An image's unpacked layers are overlayfs lower directories: a path's
current version is in the top-most layer that has it, unless a layer above
deletes it with a whiteout (a 0:0 character device) or hides its parent
directory with the opaque mark. The builder and the run configuration need a
few files (``/etc/passwd``, a destination directory's metadata) before any
container exists; this module finds them the way overlayfs would.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

__all__ = ["LayerStack", "is_opaque", "is_whiteout"]

# Root's layers carry the trusted.* mark; an unprivileged user's the user.*
# one, which overlayfs mounted with the userxattr option reads.
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_MAX_LINK_HOPS = 40


def is_whiteout(info: os.stat_result) -> bool:
    """Tell whether a file is an overlayfs whiteout (a 0:0 character device)."""
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def is_opaque(directory: Path) -> bool:
    """Tell whether a directory hides the lower layers' copies of its contents."""
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(directory, name) == b"y":
                return True
        except OSError:
            continue
    return False


class LayerStack:
    """The unpacked layers of one image, top-most first."""

    def __init__(self, layer_dirs: tuple[Path, ...]) -> None:
        self.layer_dirs = layer_dirs

    def lookup(self, path: str) -> Path | None:
        """Return the host path holding ``path``'s current version, or ``None``.

        ``path`` is absolute inside the image. Symbolic links are not
        followed, the last component included: the caller sees the link.
        """
        parts = PurePosixPath("/", path).parts[1:]
        for layer in self.layer_dirs:
            found, hidden = self.lookup_in(layer, parts)
            if found is not None:
                return found
            if hidden:
                return None
        return None

    def lookup_in(
        self, layer: Path, parts: tuple[str, ...]
    ) -> tuple[Path | None, bool]:
        """Look in one layer: (the path if there, whether lower layers are hidden)."""
        current = layer
        hidden = False
        for depth, name in enumerate(parts):
            # An opaque directory on the way hides every lower layer's copy of
            # everything beneath it, whether or not this layer has the rest.
            hidden = hidden or (depth > 0 and is_opaque(current))
            current = current / name
            try:
                info = current.lstat()
            except FileNotFoundError:
                return None, hidden
            if is_whiteout(info):
                return None, True
            if depth < len(parts) - 1 and not stat.S_ISDIR(info.st_mode):
                return None, True
        return current, True

    def children(self, path: str) -> list[str]:
        """The names in the merged directory ``path``, sorted; none if absent."""
        names: dict[str, bool] = {}
        parts = PurePosixPath("/", path).parts[1:]
        for layer in self.layer_dirs:
            directory, hidden = self.lookup_in(layer, parts)
            if directory is None:
                if hidden:
                    break
                continue
            if directory.is_symlink() or not directory.is_dir():
                break
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name not in names:
                        info = entry.stat(follow_symlinks=False)
                        names[entry.name] = not is_whiteout(info)
            if is_opaque(directory):
                break
        return sorted(name for name, present in names.items() if present)

    def resolve(self, path: str) -> str:
        """Resolve symbolic links in ``path`` the way the container would see it.

        Links are resolved inside the image: an absolute target starts at the
        image's root and ``..`` never climbs above it. The last component is
        resolved too. A loop of links ends after 40 hops, as in Linux.
        """
        pending = list(PurePosixPath("/", path).parts[1:])
        resolved = PurePosixPath("/")
        hops = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                resolved = resolved.parent
                continue
            candidate = resolved / name
            found = self.lookup(str(candidate))
            if found is None or not found.is_symlink() or hops >= _MAX_LINK_HOPS:
                resolved = candidate
                continue
            hops += 1
            target = PurePosixPath(os.readlink(found))
            if target.is_absolute():
                resolved = PurePosixPath("/")
            pending[:0] = [part for part in target.parts if part != "/"]
        return str(resolved)

    def read_text(self, path: str) -> str | None:
        """Return the text of a regular file in the image, or ``None`` if absent."""
        found = self.lookup(path)
        if found is None or not found.is_file() or found.is_symlink():
            return None
        return found.read_text(encoding="utf-8", errors="replace")

    def is_dir(self, path: str) -> bool:
        """Tell whether ``path`` is a directory in the image."""
        found = self.lookup(path)
        return found is not None and not found.is_symlink() and found.is_dir()
