"""An image's file system as a COPY source, for ``COPY --from``.

The files of an earlier stage or another image are read straight from its
unpacked layers through a merged view (upper layers hide lower ones,
whiteouts delete, opaque directories hide what lies beneath), so nothing
has to be mounted. Since an image's content is fixed by its layers, the
cache digest of a source is the image id and the path, not its bytes.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterator
from pathlib import Path

from layercake._layer_stack import LayerStack
from layercake.errors import BuildContextError

__all__ = ["StackContext"]

_GLOB_CHARS = frozenset("*?[")


class StackContext:
    """The merged file system of one image, read through its layer stack.

    Args:
        stack: the image's unpacked layers, top-most first.
        name: how the Dockerfile named it (a stage or image), for errors.
        image_id: the image's config digest, which fixes its content.
    """

    root = None
    extractable = False

    def __init__(self, stack: LayerStack, name: str, image_id: str) -> None:
        self.stack = stack
        self.name = name
        self.image_id = image_id

    def resolve(self, source: str, *, keyword: str = "COPY") -> list[str]:
        """Return the image-relative paths a source names, sorted.

        Links in the leading directories are followed inside the image.

        Raises:
            BuildContextError: nothing at that path, or a wildcard that
                matches nothing.
        """
        relative = self.stack.resolve(posixpath.dirname("/" + source))
        relative = posixpath.join(relative, posixpath.basename(source)).lstrip("/")
        relative = posixpath.normpath(relative) if relative else "."
        if _GLOB_CHARS & set(relative):
            depth = relative.count("/")
            matches = sorted(
                entry
                for entry in self.entries(".")
                if entry.count("/") == depth and fnmatch.fnmatchcase(entry, relative)
            )
            if matches:
                return matches
        elif relative == "." or self.stack.lookup("/" + relative) is not None:
            return [relative]
        raise BuildContextError(
            f"{keyword} --from={self.name} source {source!r} not found in {self.name}",
            source=source,
        )

    def path(self, relative: str) -> Path:
        """The host path holding the current version of ``relative``."""
        if relative == ".":
            return self.stack.layer_dirs[0] if self.stack.layer_dirs else Path("/")
        found = self.stack.lookup("/" + relative)
        assert found is not None, relative
        return found

    def _children(self, relative: str) -> list[str]:
        """The names in a merged directory, sorted."""
        return self.stack.children("/" if relative == "." else "/" + relative)

    def entries(self, relative: str) -> Iterator[str]:
        """Yield ``relative`` and, for a directory, everything beneath it."""
        if relative != ".":
            yield relative
        top = self.path(relative)
        if top.is_symlink() or not top.is_dir():
            return
        for name in self._children(relative):
            child = name if relative == "." else f"{relative}/{name}"
            yield from self.entries(child)

    def digest(self, sources: list[str]) -> str:
        """The image id and the paths: the image's layers fix their content."""
        return f"{self.image_id}:{sorted(sources)}"
