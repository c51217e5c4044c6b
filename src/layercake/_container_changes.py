"""What a container changed in its image: listed (``docker diff``) and
committed as a new image (``docker commit``).

Both read the changes from the container's writable layer (see
:mod:`layercake._storage`); a commit packs them into one layer over the
image's own. Loaded only for diff, commit and snapshot.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from layercake import _storage as storage
from layercake._container_freezer import pause_for_commit, set_paused
from layercake._container_state import now
from layercake._run_config import env_list, merge_env
from layercake.errors import ContainerError
from layercake.store import History

if TYPE_CHECKING:
    from layercake._container import Container
    from layercake._container_files import Change
    from layercake._image import Image

__all__ = ["changes", "commit"]

logger = logging.getLogger(__name__)


def changes(container: Container) -> list[Change]:
    """What ``container`` changed in its image (see
    :meth:`layercake.Container.diff`).

    Raises:
        ContainerError: a running container changed an entry while it was
            listed (the message names it).
    """
    try:
        return _changes(container)
    except OSError as error:
        raise _files_error(container, "cannot list the changes of", error) from None


def commit(
    container: Container,
    *,
    tag: str | None,
    message: str | None,
    author: str | None,
    command: Sequence[str] | None,
    entrypoint: Sequence[str] | None,
    env: Mapping[str, str] | Sequence[str] | None,
    workdir: str | None,
    user: str | None,
    labels: Mapping[str, str] | None,
    pause: bool,
) -> Image:
    """Make an image of ``container``'s image plus its changes (see
    :meth:`layercake.Container.commit`).

    Raises:
        ContainerError: it runs and cannot be paused while ``pause`` is
            true, or a changed file could not be copied.
        StoreError: the layer could not be written.
        InvalidReference: ``tag`` is not a valid reference.
    """
    store = container.image.store
    directory = store._directory
    base = container.image.config.config
    record = container.record
    run_env = merge_env(base.env, record.env)
    config = attrs.evolve(
        base,
        cmd=record.command if record.command is not None else base.cmd,
        entrypoint=record.entrypoint
        if record.entrypoint is not None
        else base.entrypoint,
        env=run_env,
        working_dir=record.workdir or base.working_dir,
        user=record.user if record.user is not None else base.user,
    )
    if record.entrypoint is not None and record.command is None:
        config = attrs.evolve(config, cmd=None)
    config = attrs.evolve(
        config,
        cmd=tuple(command) if command is not None else config.cmd,
        entrypoint=tuple(entrypoint)
        if entrypoint is not None
        else config.entrypoint,
        env=merge_env(config.env, env_list(env)),
        working_dir=workdir if workdir is not None else config.working_dir,
        user=user if user is not None else config.user,
        labels={**config.labels, **(labels or {})},
    )

    frozen = pause_for_commit(container, pause)
    staging = directory.tmp_dir("commit-")
    try:
        try:
            changed = _changes(container)
            storage.stage_changes(
                container.path, staging, changed, directory.mapped_root
            )
        except OSError as error:
            raise _files_error(container, "cannot commit", error) from None
        if frozen is not None:
            set_paused(container, frozen, False)
            frozen = None
        history = History(
            created=now(),
            created_by=" ".join(record.process.args),
            author=author,
            comment=message,
        )
        from layercake._build_state import StateWriter

        writer = StateWriter(directory)
        parent = writer.load(container.image.digest)
        # docker commit sets the image's Author (empty without -a).
        image_config = attrs.evolve(parent.config, author=author)
        state = writer.derive(
            parent, config, history, layer=staging, image=image_config
        )
    finally:
        if frozen is not None:
            set_paused(container, frozen, False)
        if staging.exists():
            directory.remove_tree(staging)
    image = store._load(state.manifest_digest)
    if tag is not None:
        image.tag(tag)
    logger.info("committed container %s as %s", container.short_id, image.short_id)
    return image


def _ignored(container: Container) -> frozenset[str]:
    from layercake._container_files import RUNTIME_TARGETS

    targets = {t for _, t, _ in container.record.binds}
    targets |= {t for t, _, _ in container.record.tmpfs}
    return RUNTIME_TARGETS | frozenset(os.path.normpath(t) for t in targets)


def _changes(container: Container) -> list[Change]:
    return storage.changes(
        container.path,
        container.record.storage_driver,
        container.image.layer_stack(),
        _ignored(container),
        container.image.store._directory.mapped_root,
    )

def _files_error(container: Container, doing: str, error: OSError) -> ContainerError:
    where = f"{error.filename}: " if error.filename else ""
    return ContainerError(
        f"{doing} container {container.short_id}: "
        f"{where}{(error.strerror or str(error)).lower()}",
        container_id=container.id,
    )
