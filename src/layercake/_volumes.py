"""Volumes: host binds, named volumes in the store, and anonymous volumes.

A named volume is a directory ``store/volumes/<name>``, created on first use
and then seeded, as Docker does, with what the image holds at the mount
target. Each ``VOLUME`` of the image that no entry covers gets an anonymous
volume in the container's own directory, seeded likewise and removed with
the container.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path

from layercake._layer_stack import LayerStack
from layercake.errors import ContainerConfigError
from layercake.runtime import BindMount

__all__ = ["VolumeSpec", "prepare_volumes"]

logger = logging.getLogger(__name__)

VolumeSpec = tuple[str, str] | tuple[str, str, str]
"""``(source, target)`` or ``(source, target, "ro" | "rw")``."""

_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def prepare_volumes(
    named_root: Path,
    anonymous_root: Path,
    specs: Sequence[VolumeSpec],
    image_volumes: Sequence[str],
    stack: LayerStack,
) -> tuple[BindMount, ...]:
    """Turn volume entries and the image's VOLUMEs into bind mounts.

    Creates (and seeds) the named and anonymous volumes that do not exist.

    Raises:
        ContainerConfigError: a malformed entry, a relative target, an
            invalid volume name, or a host path that does not exist.
    """
    binds = []
    for spec in specs:
        if len(spec) not in (2, 3):
            raise ContainerConfigError(f"invalid volume {spec!r}")
        source, target = spec[0], spec[1]
        mode = spec[2] if len(spec) == 3 else "rw"
        if mode not in ("ro", "rw") or not target.startswith("/"):
            raise ContainerConfigError(
                f"invalid volume {':'.join(spec)!r}: the target must be absolute "
                "and the mode ro or rw"
            )
        if source.startswith("/"):
            if not os.path.exists(source):
                raise ContainerConfigError(f"bind source path does not exist: {source}")
            host = source
        else:
            if not _VOLUME_NAME.fullmatch(source):
                raise ContainerConfigError(f"invalid volume name {source!r}")
            host = str(_volume(named_root / source, target, stack))
        binds.append(BindMount(host, target, read_only=mode == "ro"))

    covered = {os.path.normpath(b.target) for b in binds}
    for target in image_volumes:
        if os.path.normpath(target) not in covered:
            path = anonymous_root / secrets.token_hex(16)
            binds.append(BindMount(str(_volume(path, target, stack)), target))
    return tuple(binds)


def _volume(path: Path, target: str, stack: LayerStack) -> Path:
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        return path
    _seed(path, target, stack)
    logger.info("created volume %s", path)
    return path


def _seed(volume: Path, target: str, stack: LayerStack) -> None:
    """Copy the image's content at ``target`` into a new volume, bottom layer first.

    Overlay whiteouts copied from upper layers replace what they delete and
    are removed at the end, so deletions carry over.
    """
    seeded = False
    for layer in reversed(stack.layer_dirs):
        source = layer / target.lstrip("/")
        if source.is_dir() and not source.is_symlink():
            import subprocess

            subprocess.run(
                ["cp", "-a", "--", f"{source}/.", f"{volume}/"],
                check=True,
                capture_output=True,
            )
            seeded = True
    if not seeded:
        return
    for directory, dirs, files in os.walk(volume):
        for name in files + dirs:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                os.unlink(path)
