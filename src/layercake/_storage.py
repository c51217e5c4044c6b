"""Which storage driver a store's containers get, and what a container changed.

``overlay`` mounts overlayfs over the image's unpacked layers; ``copy``
copies the layers into the container's directory where overlayfs cannot be
mounted; ``auto`` (the default) tries an overlay mount once and falls back
to ``copy``, saying why in the log. ``LAYERCAKE_STORAGE_DRIVER`` sets the
default for stores opened without a ``storage_driver``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from layercake import runtime
from layercake._layer_stack import LayerStack
from layercake.errors import ContainerConfigError

if TYPE_CHECKING:
    from layercake._container_files import Change

__all__ = [
    "STORAGE_DRIVERS",
    "changes",
    "choose_driver",
    "requested_driver",
    "stage_changes",
]

logger = logging.getLogger(__name__)

STORAGE_DRIVERS = ("auto", "overlay", "copy")
"""The values ``Store(storage_driver=...)`` and the environment variable take."""

_ENV = "LAYERCAKE_STORAGE_DRIVER"

MappedRoot = Callable[[Callable[[], bytes | None]], bytes]


def requested_driver(value: str | None) -> str:
    """``value``, or the environment's default, checked.

    Raises:
        ContainerConfigError: it names no storage driver.
    """
    where = "storage_driver"
    if value is None:
        value = os.environ.get(_ENV) or "auto"
        where = _ENV
    if value not in STORAGE_DRIVERS:
        raise ContainerConfigError(
            f"unknown {where} {value!r}: use one of {', '.join(STORAGE_DRIVERS)}"
        )
    return value


def choose_driver(requested: str, containers_dir: Path) -> str:
    """The driver containers under ``containers_dir`` get: overlay or copy."""
    if requested == "overlay":
        return "overlay"
    if requested == "copy":
        logger.info("containers use the copy storage driver: it was asked for")
        return "copy"
    refusal = runtime.overlay_refusal(
        str(containers_dir), remember_in=str(containers_dir.parent)
    )
    if refusal is None:
        return "overlay"
    logger.info("containers use the copy storage driver: %s", refusal)
    return "copy"


def changes(
    path: Path,
    driver: str,
    stack: LayerStack,
    ignored: frozenset[str],
    mapped_root: MappedRoot | None,
) -> list[Change]:
    """What the container in ``path`` changed in its image (``docker diff``).

    With ``mapped_root`` the walk runs as root of the rootless user
    namespace, which may read directories the image gives to other ids.
    """
    # Imported here, before any fork: only diff and commit walk the layer.
    from layercake._container_files import tree_changes, upper_changes

    def walk() -> list[Change]:
        if driver == "copy":
            copied = runtime.copied_at(str(path / "work"))
            return tree_changes(path / "upper", stack, ignored, copied)
        return upper_changes(path / "upper", stack, ignored)

    if mapped_root is None:
        return walk()
    found = json.loads(mapped_root(lambda: json.dumps(walk()).encode()))
    return [(kind, name) for kind, name in found]


def stage_changes(
    path: Path,
    staging: Path,
    found: list[Change],
    mapped_root: MappedRoot | None,
) -> None:
    """Put the changes ``found`` in ``staging``, in overlay form, for a layer.

    Both drivers copy entry by entry, by descriptor, never following a link
    (see :func:`stage_tree_changes`): a running container cannot aim the
    copy at a host file.

    Raises:
        OSError: an entry could not be copied (``filename``: its path in
            the container, or the message names it).
    """
    from layercake._container_files import stage_tree_changes

    def stage() -> None:
        stage_tree_changes(path / "upper", staging, found)

    if not found or not (path / "upper").is_dir():
        return
    if mapped_root is None:
        stage()
    else:
        mapped_root(stage)
