"""``docker exec``: a process run in a running container's namespaces.

The process is the container's own, with the caller's changes (command,
environment, user, working directory, terminal), and joins its cgroups.
Loaded only when something is executed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from layercake import runtime
from layercake._container_log import relay_output
from layercake._run_config import env_list, merge_env, with_term
from layercake._users import resolve_user
from layercake.errors import ContainerConfigError
from layercake.runtime import ProcessSpec, open_cgroup

if TYPE_CHECKING:
    from layercake._container import Container

__all__ = ["exec_attached", "exec_process"]


def exec_attached(
    container: Container,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | Sequence[str] | None,
    user: str | None,
    workdir: str | None,
    tty: bool,
    tty_size: tuple[int, int] | None,
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
) -> int:
    """Run ``args`` in ``container`` with the given descriptors; return its
    exit code (see :meth:`layercake.Container.exec_attach`).

    Raises:
        ContainerConfigError: no command, an unknown user or a bad size.
        CommandNotStarted: the command could not be executed.
        ContainerError: the container is not running.
    """
    pid, process, cgroup_procs = exec_process(
        container, args, env, user, workdir, tty, tty_size
    )
    if tty:
        entered = runtime.enter(pid, process, cgroup_procs=cgroup_procs)
        master = entered.terminal
        assert master is not None
        container._terminals.add(master)
        from layercake._container_tty import relay_terminal

        try:
            relay_terminal(master, stdin, 1 if stdout is None else stdout, None)
        except BaseException:
            entered.kill()
            raise
        finally:
            container._terminals.discard(master)
            code = entered.wait()
        return code
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        entered = runtime.enter(
            pid,
            process,
            stdin=stdin,
            stdout=out_w,
            stderr=err_w,
            cgroup_procs=cgroup_procs,
        )
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    targets = (1 if stdout is None else stdout, 2 if stderr is None else stderr)
    try:
        relay_output(out_r, err_r, targets, None)
    except BaseException:
        entered.kill()
        raise
    finally:
        code = entered.wait()
    return code


def exec_process(
    container: Container,
    args: Sequence[str],
    env: Mapping[str, str] | Sequence[str] | None,
    user: str | None,
    workdir: str | None,
    tty: bool,
    tty_size: tuple[int, int] | None,
) -> tuple[int, ProcessSpec, tuple[str, ...]]:
    """The pid to join to run ``args`` in ``container``, the process to run
    there, and the cgroup files to put it in.

    Raises:
        ContainerConfigError: no command or an unknown user.
        ContainerError: the container is not running.
    """
    if not args:
        raise ContainerConfigError("no command given to exec")
    pid = container._running_pid()
    process = container._process
    overrides = env_list(env)
    if user is not None:
        resolved = resolve_user(user, container.image.layer_stack())
        process = attrs.evolve(
            process,
            uid=resolved.uid,
            gid=resolved.gid,
            additional_gids=resolved.additional_gids,
        )
        if not any(item.startswith("HOME=") for item in overrides):
            overrides += (f"HOME={resolved.home or '/'}",)
    process = attrs.evolve(
        process,
        args=tuple(args),
        env=merge_env(process.env, overrides),
        cwd=workdir or process.cwd,
        terminal=tty,
        terminal_size=tty_size,
    )
    if tty:
        process = with_term(process)
    state = container.state()
    cgroup = open_cgroup(state.cgroup_version, state.cgroup_paths)
    return pid, process, cgroup.procs_files
