"""Fill a staging directory with what one COPY or ADD adds to the image.

The staging directory becomes the step's layer, so it holds only the new
files and the directories leading to them. Those directories take the
metadata they already have in the image, so the layer does not change the
mode or owner of, say, ``/usr``; directories the image lacks are created
as root with mode 0755, as Docker does.

An unprivileged builder fills the staging directory as root of a user
namespace with the store's full id map (see :func:`in_mapped_root`), so
owners land on disk as the subordinate ids the store's packing reads back
as the image's ids. Without subordinate ids every file stays the user's,
which the store records as root; owners other than root are refused
before staging (:func:`check_owner`).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs

from layercake._layer_stack import LayerStack
from layercake._users import resolve_user
from layercake.errors import BuildContextError, ContainerConfigError
from layercake.store import extract_tar

if TYPE_CHECKING:
    from layercake.runtime import IdMap

logger = logging.getLogger(__name__)

__all__ = [
    "CopyRequest",
    "check_owner",
    "copy_into",
    "copy_tree",
    "in_mapped_root",
    "make_directory",
    "parse_chmod",
    "parse_chown",
]


class SourceTree(Protocol):
    """Where COPY sources come from: a build context or an image's files."""

    extractable: bool

    def path(self, relative: str) -> Path:
        """The host path holding ``relative``."""

    def entries(self, relative: str) -> Iterator[str]:
        """``relative`` and, for a directory, everything beneath it."""

    def resolve(self, source: str, *, keyword: str = "COPY") -> list[str]:
        """The relative paths a source names."""

    def digest(self, sources: list[str]) -> str:
        """What the cache key must cover of these sources."""


@attrs.frozen
class CopyRequest:
    """One COPY or ADD, with its sources already resolved.

    Each source is a relative path with the tree it lives in: the build
    context, a temporary one holding heredoc files, or an image (``--from``).
    """

    keyword: str
    sources: tuple[tuple[SourceTree, str], ...]
    dest: str
    owner: tuple[int, int] | None = None
    mode: int | None = None
    extract_archives: bool = False
    keep_owners: bool = False


def parse_chown(value: str, stack: LayerStack) -> tuple[int, int]:
    """Turn a ``--chown`` value into ids, looking names up in the image.

    A user without a group uses the same number as the group, as Docker does.

    Raises:
        BuildContextError: a name the image's passwd or group file lacks.
    """
    user, _, group = value.partition(":")
    try:
        uid = resolve_user(user, stack).uid
        gid = resolve_user(f"{user}:{group}", stack).gid if group else uid
    except ContainerConfigError as error:
        raise BuildContextError(
            f"invalid --chown={value}: {error}", source=value
        ) from None
    return uid, gid


def parse_chmod(value: str) -> int:
    """Turn a ``--chmod`` value (octal, e.g. ``755``) into a mode.

    Raises:
        BuildContextError: not an octal mode.
    """
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise BuildContextError(
            f"invalid --chmod={value}: expected an octal mode such as 755",
            source=value,
        )
    return mode


def check_owner(owner: tuple[int, int], idmap: IdMap | None, what: str) -> None:
    """Refuse an owner that an unprivileged builder cannot give files.

    ``idmap`` is the map of the builder's user namespace (None as root);
    ``what`` names the request in the message, e.g. ``COPY --chown=1000``.

    Raises:
        BuildContextError: the owner lies outside the ids the map holds.
    """
    if idmap is None or max(owner) < idmap.size:
        return
    if not idmap.full:
        raise BuildContextError(
            f"{what} cannot be used without root: rootless builds map only "
            f"uid 0 here ({idmap.reason})",
            source=what,
        )
    raise BuildContextError(
        f"{what} cannot be used without root: rootless builds map ids 0 to "
        f"{idmap.size - 1} here (the subordinate range of /etc/subuid and "
        "/etc/subgid)",
        source=what,
    )


def in_mapped_root(
    mapped_root: Callable[[Callable[[], bytes | None]], bytes],
    work: Callable[[], None],
) -> None:
    """Run ``work`` through ``mapped_root``, keeping its BuildContextError.

    ``mapped_root`` runs a function in a forked child
    (:func:`layercake.runtime.as_mapped_root`), which reports failures as
    OSError; a refused COPY comes back here as the error it was.

    Raises:
        BuildContextError: ``work`` raised it.
        OSError: ``work`` failed otherwise, or the namespace was refused.
    """

    def child() -> bytes:
        try:
            work()
        except BuildContextError as error:
            return json.dumps([error.reason, error.source]).encode()
        return b""

    refused = mapped_root(child)
    if refused:
        reason, source = json.loads(refused)
        raise BuildContextError(reason, source=source)


def _chown(target: Path, uid: int, gid: int) -> None:
    # Only root (of the host or of the builder's user namespace) may give
    # files away; without subordinate ids the files stay the user's, which
    # the store packs as root's, and check_owner refused any other owner.
    if os.geteuid() == 0:
        os.chown(target, uid, gid, follow_symlinks=False)


def _is_archive(path: Path) -> bool:
    """Tell whether ADD should extract ``path``: a tar, plain or compressed."""
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as stream:
        try:
            with tarfile.open(fileobj=stream, mode="r:*"):
                return True
        except (tarfile.TarError, EOFError, OSError):
            return False


class _Stager:
    def __init__(self, staging: Path, stack: LayerStack, request: CopyRequest) -> None:
        self.staging = staging
        self.stack = stack
        self.request = request

    def host(self, image_path: str) -> Path:
        return self.staging / image_path.lstrip("/")

    def ensure_dir(self, image_path: str, *, owned: bool) -> Path:
        """Create ``image_path`` and its parents in the staging tree."""
        target = self.host(image_path)
        if target.is_dir():
            return target
        parent = posixpath.dirname(image_path)
        if image_path != "/":
            self.ensure_dir(parent, owned=False)
        existing = self.stack.lookup(image_path)
        if existing is not None and not existing.is_dir():
            raise BuildContextError(
                f"{self.request.keyword} cannot copy to {image_path}: it is not a "
                "directory in the image",
                source=image_path,
            )
        if existing is not None and existing.is_dir() and not existing.is_symlink():
            info = existing.lstat()
            target.mkdir()
            _chown(target, info.st_uid, info.st_gid)
            os.chmod(target, stat.S_IMODE(info.st_mode))
            os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
        else:
            target.mkdir(exist_ok=True)
            uid, gid = self.request.owner if owned and self.request.owner else (0, 0)
            _chown(target, uid, gid)
            os.chmod(target, 0o755)
        return target

    def apply_metadata(self, source: os.stat_result, target: Path) -> None:
        uid, gid = self.request.owner or (0, 0)
        if self.request.keep_owners:
            uid, gid = source.st_uid, source.st_gid
        _chown(target, uid, gid)
        if not stat.S_ISLNK(source.st_mode):
            mode = self.request.mode
            os.chmod(target, mode if mode is not None else stat.S_IMODE(source.st_mode))
        os.utime(
            target, ns=(source.st_atime_ns, source.st_mtime_ns), follow_symlinks=False
        )

    def copy_entry(self, context: SourceTree, relative: str, target: Path) -> None:
        source = context.path(relative)
        info = source.lstat()
        if stat.S_ISDIR(info.st_mode):
            target.mkdir(exist_ok=True)
        elif stat.S_ISLNK(info.st_mode):
            _replace(target)
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(info.st_mode):
            _replace(target)
            shutil.copyfile(source, target, follow_symlinks=False)
        elif stat.S_ISFIFO(info.st_mode):
            _replace(target)
            os.mkfifo(target)
        elif stat.S_ISSOCK(info.st_mode):
            # Docker skips sockets too: they mean nothing outside their host.
            logger.warning("%s skips the socket %s", self.request.keyword, relative)
            return
        else:
            raise BuildContextError(
                f"{self.request.keyword} cannot copy {relative!r}: "
                "device files are not copied from a build context",
                source=relative,
            )
        self.apply_metadata(info, target)

    def copy_tree(self, context: SourceTree, relative: str, target: Path) -> None:
        """Copy a directory's contents (not the directory itself) into target."""
        entries = [entry for entry in context.entries(relative) if entry != relative]
        prefix = "" if relative == "." else relative + "/"
        for entry in entries:
            self.copy_entry(context, entry, target / entry.removeprefix(prefix))
        # Directory times change as entries land in them; set them last.
        for entry in reversed(entries):
            path = context.path(entry)
            if path.is_dir() and not path.is_symlink():
                info = path.lstat()
                inner = target / entry.removeprefix(prefix)
                os.utime(inner, ns=(info.st_atime_ns, info.st_mtime_ns))


def _replace(target: Path) -> None:
    if target.is_symlink() or target.exists():
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()


def copy_into(request: CopyRequest, staging: Path, stack: LayerStack) -> None:
    """Write the files ``request`` adds into ``staging`` at their image paths.

    Raises:
        BuildContextError: several sources but a destination that is not a
            directory, or a source that cannot be copied.
    """
    stager = _Stager(staging, stack, request)
    dest = stack.resolve(request.dest)
    dest_is_dir = (
        request.dest.endswith("/")
        or request.dest.endswith("/.")
        or stack.is_dir(dest)
        or len(request.sources) > 1
    )
    if len(request.sources) > 1 and not request.dest.endswith("/"):
        raise BuildContextError(
            f"{request.keyword} with more than one source needs a destination "
            f"that is a directory ending in '/': {request.dest!r}",
            source=request.sources[0][1],
        )

    for context, relative in request.sources:
        source = context.path(relative)
        if request.extract_archives and context.extractable and _is_archive(source):
            target = stager.ensure_dir(dest, owned=True)
            with open(source, "rb") as stream:
                extract_tar(stream, target, whiteouts="keep")
        elif source.is_dir() and not source.is_symlink():
            target = stager.ensure_dir(dest, owned=True)
            stager.copy_tree(context, relative, target)
        elif dest_is_dir:
            directory = stager.ensure_dir(dest, owned=True)
            stager.copy_entry(
                context, relative, directory / posixpath.basename(relative)
            )
        else:
            stager.ensure_dir(posixpath.dirname(dest), owned=False)
            stager.copy_entry(context, relative, stager.host(dest))


def make_directory(
    staging: Path, stack: LayerStack, path: str, owner: tuple[int, int]
) -> None:
    """Write a missing directory ``path`` (and its parents) into ``staging``.

    The new directory itself belongs to ``owner``; parents the image lacks
    belong to root; parents it has keep their metadata.
    """
    request = CopyRequest(keyword="WORKDIR", sources=(), dest=path, owner=owner)
    _Stager(staging, stack, request).ensure_dir(stack.resolve(path), owned=True)


def copy_tree(tree: SourceTree, relative: str, target: Path) -> None:
    """Copy a directory of ``tree`` into ``target`` keeping its owners.

    Used where a step needs a real directory holding what a merged image
    view or a filtered context shows (``RUN --mount=type=bind``).
    """
    request = CopyRequest(keyword="RUN", sources=(), dest="/", keep_owners=True)
    _Stager(target, LayerStack(()), request).copy_tree(tree, relative, target)
