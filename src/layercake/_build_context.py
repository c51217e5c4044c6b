"""The build context: the files COPY and ADD may read, and their digests.

Sources are resolved inside the context directory only: a source that
normalises to a path outside it is refused, symbolic links are taken as
links (never followed), and paths ``.dockerignore`` excludes do not exist
for the build. The digest of a set of sources covers their relative paths,
types, modes, ownership, link targets and contents, not modification times,
so touching a file does not invalidate the build cache.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
from collections.abc import Iterator
from pathlib import Path

from layercake._dockerignore import IgnoreRules
from layercake._file_digests import FileDigests
from layercake.errors import BuildContextError

__all__ = ["BuildContext"]

_GLOB_CHARS = frozenset("*?[")
_CHUNK = 1 << 20
_MAX_LINK_HOPS = 40


class BuildContext:
    """A context directory as one build sees it.

    Args:
        root: the context directory, or ``None`` for a build with no context
            (a Dockerfile given as text); every COPY source is then missing.
        extractable: whether ADD extracts the archives found here.
        digests: remembered file digests, so unchanged files are not read.
    """

    def __init__(
        self,
        root: Path | None,
        *,
        extractable: bool = True,
        digests: FileDigests | None = None,
    ) -> None:
        self.root = root.resolve() if root is not None else None
        # ADD extracts local archives, never downloaded ones.
        self.extractable = extractable
        self.ignore = IgnoreRules.load(self.root) if self.root else IgnoreRules()
        self._digests = digests or FileDigests(None)

    def resolve(self, source: str, *, keyword: str = "COPY") -> list[str]:
        """Return the context-relative paths a COPY source names, sorted.

        Raises:
            BuildContextError: the source is outside the context, missing,
                ignored, or a wildcard that matches nothing.
        """
        relative = posixpath.normpath(source.lstrip("/")) if source else "."
        if relative == ".." or relative.startswith("../"):
            raise BuildContextError(
                f"{keyword} source {source!r} is outside the build context",
                source=source,
            )
        if self.root is None:
            raise BuildContextError(
                f"{keyword} source {source!r} not found: the build has no context",
                source=source,
            )
        if _GLOB_CHARS & set(relative):
            pattern = self._resolve(relative, follow_last=False)
            matches = self._glob(pattern)
            if not matches:
                raise BuildContextError(
                    f"{keyword} source {source!r} matches no file in the build "
                    f"context {self.root}",
                    source=source,
                )
        else:
            matches = [relative]
        found = []
        for match in matches:
            resolved = self._resolve(match, follow_last=True)
            if resolved != "." and (
                self.ignore.excludes(resolved) or not _exists(self.root / resolved)
            ):
                raise BuildContextError(
                    f"{keyword} source {source!r} not found in the build context "
                    f"{self.root}",
                    source=source,
                )
            found.append(resolved)
        return sorted(set(found))

    def _resolve(self, relative: str, *, follow_last: bool) -> str:
        """Follow links in ``relative``, never out of the context.

        A link's target is taken inside the context: an absolute target
        starts at the context root and ``..`` stops there, as BuildKit scopes
        source paths. The last component is followed only when asked: a
        source named on the COPY line is, a link met inside a copied
        directory is copied as a link.
        """
        assert self.root is not None
        pending = relative.split("/")
        resolved: list[str] = []
        hops = 0
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = self.root.joinpath(*resolved, name)
            follow = follow_last or bool(pending)
            if follow and candidate.is_symlink() and hops < _MAX_LINK_HOPS:
                hops += 1
                target = os.readlink(candidate)
                if target.startswith("/"):
                    resolved = []
                pending[:0] = target.split("/")
                continue
            resolved.append(name)
        return "/".join(resolved) or "."

    def _glob(self, pattern: str) -> list[str]:
        depth = pattern.count("/")
        return sorted(
            relative
            for relative in self._walk(".")
            if relative.count("/") == depth and fnmatch.fnmatchcase(relative, pattern)
        )

    def path(self, relative: str) -> Path:
        """The host path of a context-relative path."""
        assert self.root is not None
        return self.root / relative

    def _walk(self, relative: str) -> Iterator[str]:
        """Yield the non-ignored paths beneath ``relative``, sorted, depth first."""
        directory = self.path(relative)
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            child = entry.name if relative == "." else f"{relative}/{entry.name}"
            if self.ignore.excludes(child):
                continue
            yield child
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(child)

    def entries(self, relative: str) -> Iterator[str]:
        """Yield ``relative`` and, for a directory, everything beneath it."""
        if relative != ".":
            yield relative
        if self.path(relative).is_dir() and not self.path(relative).is_symlink():
            yield from self._walk(relative)

    def digest(self, sources: list[str]) -> str:
        """A sha256 over the sources' names, metadata and contents."""
        hasher = hashlib.sha256()
        for source in sources:
            for relative in self.entries(source):
                hasher.update(self._entry_record(relative))
        return hasher.hexdigest()

    def _entry_record(self, relative: str) -> bytes:
        path = self.path(relative)
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        kind = stat.S_IFMT(info.st_mode)
        if stat.S_ISREG(info.st_mode):
            content = self._file_digest(path, info)
        elif stat.S_ISLNK(info.st_mode):
            content = os.readlink(path)
        else:
            content = ""
        record = (
            f"{relative}\0{kind:o}\0{mode:o}\0{info.st_uid}:{info.st_gid}\0{content}\n"
        )
        return record.encode("utf-8", "surrogateescape")

    def _file_digest(self, path: Path, info: os.stat_result) -> str:
        known = self._digests.get(info)
        if known is not None:
            return known
        hasher = hashlib.sha256()
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK):
                hasher.update(chunk)
        digest = hasher.hexdigest()
        self._digests.put(info, digest)
        return digest


def _exists(path: Path) -> bool:
    try:
        path.lstat()
    except FileNotFoundError:
        return False
    return True
