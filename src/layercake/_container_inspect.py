"""``docker inspect``'s document of a container, built from its record and state.

Only :meth:`layercake.Container.inspect` needs it, so the start path never
loads it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from layercake import _container_network as net
from layercake._container_state import LOG_FILE, status_text
from layercake._tmpfs_options import recorded_tmpfs, tmpfs_options

if TYPE_CHECKING:
    from layercake._container import Container

__all__ = ["inspect_document"]


def _mounts(container: Container) -> list[dict[str, Any]]:
    volume_dirs = (
        str(container.image.store.path / "volumes"),
        str(container.path / "volumes"),
    )
    mounts: list[dict[str, Any]] = []
    for source, target, read_only in container.record.binds:
        entry: dict[str, Any] = {"Type": "bind"}
        if os.path.dirname(source) in volume_dirs:
            entry = {"Type": "volume", "Name": os.path.basename(source)}
        entry.update({"Source": source, "Destination": target, "RW": not read_only})
        mounts.append(entry)
    for tmpfs in recorded_tmpfs(container.record):
        mounts.append(
            {
                "Type": "tmpfs",
                "Source": "",
                "Destination": tmpfs.target,
                "RW": not tmpfs.read_only,
            }
        )
    return mounts


def _graph_driver(container: Container) -> dict[str, Any]:
    driver = container.record.storage_driver
    upper = str(container.path / "upper")
    if driver == "copy":
        return {"Name": driver, "Data": {"RootDir": upper}}
    return {
        "Name": driver,
        "Data": {
            "LowerDir": ":".join(container.record.lower_dirs),
            "UpperDir": upper,
            "WorkDir": str(container.path / "work"),
            "MergedDir": str(container.path / "rootfs"),
        },
    }


def inspect_document(container: Container) -> dict[str, Any]:
    """Describe ``container`` with ``docker inspect``'s field names."""
    state = container.state()
    record = container.record
    running = state.status == "running"
    image_config = container.image.config.config
    return {
        "Id": container.id,
        "Created": record.created,
        "Path": record.process.args[0],
        "Args": list(record.process.args[1:]),
        "State": {
            "Status": status_text(state),
            "Running": running,
            "Paused": running and state.paused,
            "Restarting": running and state.restarting,
            "OOMKilled": state.oom_killed,
            "Dead": state.status == "dead",
            "Pid": state.pid if running else 0,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": state.started_at,
            "FinishedAt": state.finished_at,
        },
        "Image": container.image.id,
        "RestartCount": state.restart_count,
        "GraphDriver": _graph_driver(container),
        "Mounts": _mounts(container),
        "NetworkSettings": net.settings(container.image.store.path, record, state),
        "Warnings": list(state.warnings),
        "Name": "/" + container.name,
        "LogPath": str(container.path / LOG_FILE),
        "HostConfig": {
            "AutoRemove": record.auto_remove,
            "NetworkMode": record.network,
            "ExtraHosts": list(record.extra_hosts) or None,
            "Dns": list(record.dns),
            "DnsSearch": list(record.dns_search),
            "DnsOptions": list(record.dns_options),
            "RestartPolicy": record.restart.inspect(),
            "ReadonlyRootfs": record.read_only,
            "Init": record.init,
            "Runtime": record.executor,
            "Binds": [
                f"{source}:{target}" + (":ro" if ro else "")
                for source, target, ro in record.binds
            ],
            "Privileged": record.privileged,
            "Memory": record.memory,
            "NanoCpus": int(record.cpus * 1_000_000_000),
            "CpuShares": record.cpu_shares,
            "PidsLimit": record.pids_limit or None,
            "Tmpfs": {
                tmpfs.target: tmpfs_options(tmpfs)
                for tmpfs in recorded_tmpfs(record)
            },
        },
        "Config": {
            "Hostname": record.hostname,
            "User": record.user if record.user is not None else image_config.user,
            "Env": list(record.process.env),
            "Cmd": list(record.command)
            if record.command is not None
            else _list_or_none(image_config.cmd),
            "Entrypoint": list(record.entrypoint)
            if record.entrypoint is not None
            else _list_or_none(image_config.entrypoint),
            "Image": record.image_reference,
            "WorkingDir": record.process.cwd,
            "Labels": dict(image_config.labels),
            "Tty": record.process.terminal,
            "OpenStdin": record.stdin_open,
        },
    }


def _list_or_none(value: tuple[str, ...] | None) -> list[str] | None:
    return list(value) if value is not None else None
