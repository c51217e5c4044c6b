"""System verbs: version, info, system df, system prune, system verify."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys

import attrs

from layercake._sizes import parse_size
from layercake.cli._format import size, table
from layercake.errors import LayercakeError

__all__ = ["register"]


def version(args: argparse.Namespace) -> int:
    """Print layercake's and Python's versions and the platform."""
    import layercake

    versions = {
        "Version": layercake.__version__,
        "Python": platform.python_version(),
        "Os": sys.platform,
        "Arch": platform.machine(),
    }
    if args.format == "json":
        sys.stdout.write(json.dumps(versions) + "\n")
        return 0
    sys.stdout.write(
        f"layercake {versions['Version']}\n"
        f"Python {versions['Python']}\n"
        f"OS/Arch {versions['Os']}/{versions['Arch']}\n"
    )
    return 0


def info(args: argparse.Namespace) -> int:
    """Say what this machine allows and what to install or enable otherwise."""
    import layercake
    from layercake import runtime
    from layercake.errors import RuntimeUnavailable

    capabilities = runtime.probe()
    store = layercake.Store(args.store)
    if args.format == "json":
        report = {"Store": str(store.path), **attrs.asdict(capabilities)}
        report["StorageDriver"] = store._container_driver()
        report["IdMap"] = _id_map() if not capabilities.root else None
        try:
            runtime.require()
            report["Missing"] = None
        except RuntimeUnavailable as error:
            report["Missing"] = {"What": error.missing, "Fix": error.fix}
        report["Cgroups"] = _cgroups()
        sys.stdout.write(json.dumps(report) + "\n")
        return 0
    lines = [
        f"Store: {store.path}",
        f"Running as root: {'yes' if capabilities.root else 'no'}",
        f"User namespaces: {'yes' if capabilities.user_namespaces else 'no'}",
        f"Overlay file system: {'yes' if capabilities.overlay else 'no'}",
        f"Storage driver: {store._container_driver()}",
        *([] if capabilities.root else [f"Rootless ids: {_id_map()}"]),
        f"cgroups: {_cgroups()}",
        f"Networking: {_networking(capabilities.root)}",
    ]
    try:
        runtime.require()
        lines.append("Containers: can run here")
    except RuntimeUnavailable as error:
        lines.append(f"Containers: cannot run here: {error.missing} ({error.fix})")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _networking(root: bool) -> str:
    """The network modes of this user, and how ports are published."""
    if root:
        default = "bridge (default, on the host's layercake0)"
        networks = "user-defined bridge networks"
    else:
        from layercake import _slirp

        cause = _slirp.cause()
        default = (
            f"bridge (default, loopback only here: {cause})"
            if cause
            else "bridge (default, through slirp4netns)"
        )
        networks = "user-defined networks in a namespace the user owns"
    return (
        f"{default}, {networks}, none, host, container:<id>; "
        "published TCP and UDP ports"
    )


def _id_map() -> str:
    from layercake import runtime

    idmap = runtime.id_map()
    if not idmap.full:
        return f"uid 0 only ({idmap.reason})"
    _, start, count = idmap.uid_lines[1]
    return f"0 to {idmap.size - 1} (subordinate ids {start} to {start + count - 1})"


def _cgroups() -> str:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2"
    if os.path.isdir("/sys/fs/cgroup/memory"):
        return "v1"
    return "not available (limits cannot be applied)"


def df(args: argparse.Namespace) -> int:
    """Show the space the store uses, by what uses it."""
    import layercake

    usage = layercake.Store(args.store).df()
    if args.format == "json":
        sys.stdout.write(json.dumps(attrs.asdict(usage)) + "\n")
        return 0
    table(
        ("TYPE", "TOTAL", "SIZE"),
        [
            ("Images", str(usage.images), size(usage.images_size)),
            ("  shared between images", "", size(usage.shared_size)),
            ("Unpacked layers", str(usage.layers), size(usage.layers_size)),
            ("Containers", str(usage.containers), size(usage.containers_size)),
            ("Build cache", str(usage.cache_entries), size(usage.cache_size)),
            ("Unreferenced", "", size(usage.unreferenced_size)),
            ("Temporary files", "", size(usage.tmp_size)),
        ],
    )
    return 0


def prune(args: argparse.Namespace) -> int:
    """Remove stopped containers, unused networks, dangling images and what
    nothing uses."""
    import layercake
    from layercake._container_listing import prune_containers

    store = layercake.Store(args.store)
    for container_id in prune_containers(store):
        sys.stdout.write(f"Deleted Container: {container_id}\n")
    networks = store.prune_networks()
    if networks:
        sys.stdout.write("Deleted Networks:\n" + "".join(n + "\n" for n in networks))
    older = 0.0 if args.all else _seconds(args.cache_older_than)
    report = store.prune(
        cache_older_than=older,
        cache_max_size=_bytes(args.cache_max_size) if args.cache_max_size else None,
    )
    for image_id in report.image_ids_deleted:
        sys.stdout.write(f"Deleted Image: {image_id}\n")
    if report.cache_entries_deleted:
        sys.stdout.write(
            f"Deleted build cache entries: {report.cache_entries_deleted}\n"
        )
    reclaimed = report.space_reclaimed + report.cache_space_deleted
    sys.stdout.write(f"Total reclaimed space: {size(reclaimed)}\n")
    return 0


_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _bytes(text: str) -> int:
    size = parse_size(text)
    if size is None:
        raise LayercakeError(f"invalid size {text!r}: e.g. 500m or 2g")
    return size


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    match = re.fullmatch(r"([0-9]+)([smhd])", text.strip())
    if match is None:
        raise LayercakeError(f"invalid duration {text!r}: e.g. 30m, 24h or 7d")
    return float(int(match[1]) * _DURATIONS[match[2]])


def verify(args: argparse.Namespace) -> int:
    """Re-hash every blob and unpacked layer; exit 1 if anything is damaged."""
    import layercake

    report = layercake.Store(args.store).verify()
    for problem in report.problems:
        sys.stdout.write(problem + "\n")
    count = len(report.problems)
    sys.stdout.write(
        f"checked {report.blobs_checked} blobs and {report.layers_checked} "
        f"unpacked layers: {count} problem{'' if count == 1 else 's'}\n"
    )
    return 0 if report.ok else 1


def _prune_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f", "--force", action="store_true", help="do not ask (it never asks)"
    )
    parser.add_argument(
        "-a", "--all", action="store_true", help="also the whole build cache"
    )
    parser.add_argument(
        "--cache-older-than",
        metavar="DURATION",
        help="build cache unused this long (24h)",
    )
    parser.add_argument(
        "--cache-max-size",
        metavar="SIZE",
        help="keep the newest build cache up to SIZE",
    )
    parser.set_defaults(handler=prune)


def register(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], only: str | None = None
) -> None:
    """Add version, info and the system verbs, or only the verb ``only``."""
    for name, handler, text in (
        ("version", version, "show versions"),
        ("info", info, "what this machine allows"),
    ):
        if only not in (None, name):
            continue
        parser = verbs.add_parser(name, help=text)
        parser.add_argument("--format", choices=("table", "json"), default="table")
        parser.set_defaults(handler=handler)

    if only in (None, "prune"):
        parser = verbs.add_parser("prune", help="the same as system prune")
        _prune_options(parser)

    if only in (None, "system"):
        system = verbs.add_parser("system", help="manage the store")
        actions = system.add_subparsers(
            dest="action", required=True, metavar="ACTION"
        )
        parser = actions.add_parser("df", help="space used")
        parser.add_argument("--format", choices=("table", "json"), default="table")
        parser.set_defaults(handler=df)
        parser = actions.add_parser("prune", help="remove what nothing uses")
        _prune_options(parser)
        actions.add_parser("verify", help="check every blob and layer").set_defaults(
            handler=verify
        )
