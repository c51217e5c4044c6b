"""Turn an image's config plus ``docker run``-style overrides into a process.

Docker's rules: an ``--entrypoint`` override drops the image's Cmd; a
command replaces Cmd; the argv is Entrypoint followed by Cmd, and an empty
one is an error. Env overrides replace variables by name; HOME comes from
the user's passwd entry unless set; the working directory defaults to "/".
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence

import attrs

from layercake._layer_stack import LayerStack
from layercake._users import resolve_user
from layercake.errors import ContainerConfigError
from layercake.runtime import DEFAULT_PATH, ProcessSpec
from layercake.store import ContainerConfig

__all__ = [
    "RunConfig",
    "command_override",
    "entrypoint_override",
    "env_list",
    "merge_env",
    "process_spec",
    "security_options",
    "with_term",
]


def env_list(env: Mapping[str, object] | Sequence[str] | None) -> tuple[str, ...]:
    """Normalise env given as a mapping or ``KEY=VALUE`` strings.

    Mapping values are turned into text, as docker-py does. A bare ``KEY``
    takes the caller's own value, as ``docker run -e KEY`` does, and is
    dropped when the caller has none.

    Raises:
        ContainerConfigError: a name that is empty or contains ``=``.
    """
    if env is None:
        return ()
    if isinstance(env, Mapping):
        for key in env:
            if not key or "=" in key:
                raise ContainerConfigError(f"invalid environment variable name {key!r}")
        return tuple(f"{key}={value}" for key, value in env.items())
    items = []
    for item in env:
        if item.startswith("="):
            raise ContainerConfigError(f"invalid environment variable {item!r}")
        if "=" in item:
            items.append(item)
        elif item in os.environ:
            items.append(f"{item}={os.environ[item]}")
    return tuple(items)


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> tuple[str, ...]:
    """Apply ``KEY=VALUE`` overrides to a list, keeping the first order."""
    merged = {item.partition("=")[0]: item for item in base}
    for item in overrides:
        merged[item.partition("=")[0]] = item
    return tuple(merged.values())


def _has_var(env: Sequence[str], name: str) -> bool:
    return any(item.partition("=")[0] == name for item in env)


@attrs.frozen
class RunConfig:
    """Overrides of an image's config for one container, as ``docker run`` takes.

    ``entrypoint`` of ``()`` clears the image's Entrypoint (``--entrypoint ''``).
    """

    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str = "bridge"


def argv(config: ContainerConfig, run: RunConfig) -> tuple[str, ...]:
    """Combine Entrypoint and Cmd as Docker does.

    Raises:
        ContainerConfigError: neither the image nor the overrides give a command.
    """
    if run.entrypoint is not None:
        result = run.entrypoint + (run.command or ())
    elif run.command is not None:
        result = tuple(config.entrypoint or ()) + run.command
    else:
        result = tuple(config.entrypoint or ()) + tuple(config.cmd or ())
    if not result:
        raise ContainerConfigError(
            "no command specified: the image has no Entrypoint or Cmd "
            "and none was given"
        )
    return result


def process_spec(
    config: ContainerConfig, run: RunConfig, stack: LayerStack
) -> ProcessSpec:
    """Build the runtime's process spec for a container of this image.

    Raises:
        ContainerConfigError: no command, or a user the image does not know.
    """
    args = argv(config, run)
    user = resolve_user(run.user if run.user is not None else config.user, stack)
    env = merge_env(config.env, run.env)

    if not _has_var(env, "PATH"):
        env = (f"PATH={DEFAULT_PATH}",) + env
    if not _has_var(env, "HOSTNAME") and run.hostname:
        env += (f"HOSTNAME={run.hostname}",)
    if not _has_var(env, "HOME"):
        env += (f"HOME={user.home or '/'}",)

    return ProcessSpec(
        args=args,
        env=env,
        cwd=run.workdir or config.working_dir or "/",
        uid=user.uid,
        gid=user.gid,
        additional_gids=user.additional_gids,
    )


def with_term(process: ProcessSpec) -> ProcessSpec:
    """``process`` with ``TERM=xterm`` added unless its environment sets TERM."""
    # Docker sets TERM=xterm for a process with a terminal, unless the image
    # or the caller chose one.
    if any(item.startswith("TERM=") for item in process.env):
        return process
    return attrs.evolve(process, env=(*process.env, "TERM=xterm"))


def command_override(value: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """The command a caller gave, as the tuple :class:`RunConfig` holds."""
    # A string is split as a shell would, as docker-py does; an empty
    # command means the image's own Cmd, as when none is given.
    if isinstance(value, str):
        value = shlex.split(value)
    return tuple(value) if value else None


def entrypoint_override(value: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """The entrypoint a caller gave, as the tuple :class:`RunConfig` holds."""
    # docker run --entrypoint takes one word; "" clears the image's Entrypoint.
    if value is None:
        return None
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(value)


def security_options(options: Sequence[str]) -> tuple[bool, bool]:
    """Return (no_new_privileges, seccomp) as ``--security-opt`` sets them.

    Raises:
        ContainerConfigError: an option that is not known or not supported.
    """
    no_new_privileges, seccomp = False, True
    for option in options:
        key, _, value = option.replace("=", ":", 1).partition(":")
        if key == "no-new-privileges" and value in ("", "true", "false"):
            no_new_privileges = value != "false"
        elif key == "seccomp" and value == "unconfined":
            seccomp = False
        elif key == "seccomp":
            raise ContainerConfigError(
                f"unsupported security option {option!r}: only the default "
                "seccomp filter or seccomp=unconfined can be used"
            )
        else:
            raise ContainerConfigError(
                f"unsupported security option {option!r}: "
                "only no-new-privileges and seccomp=unconfined are known"
            )
    return no_new_privileges, seccomp
