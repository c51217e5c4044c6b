"""Run a process in an isolated Linux container built from plain directories.

The runtime knows nothing of images or stores: it takes overlay lower
directories, an upper directory and a process (:class:`SandboxSpec`), and
runs the process as PID 1 of new mount, PID, UTS, IPC and (unless the host
network is asked for) network namespaces, in a user namespace when not root.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._capabilities import capability_set
    from ._cgroups import Cgroup, Resources, create_cgroup, find_cgroup, open_cgroup
    from ._console import set_terminal_size
    from ._copy import copied_at, materialize
    from ._driver import overlay_refusal
    from ._enter import enter, join_network_of, setns_network
    from ._holder import Holder, hold_namespaces
    from ._idmap import IdMap, id_map
    from ._oci import (
        OciProcess,
        mount_rootfs,
        oci_config,
        run_oci,
        start_oci,
        write_bundle,
    )
    from ._probe import Capabilities, probe, require
    from ._run import (
        OutputCallback,
        Supervised,
        collect,
        read_chunk,
        run,
        run_in,
        write_all,
    )
    from ._sandbox import (
        Sandbox,
        lifeline,
        lifeline_owned,
        release_lifeline,
        start,
    )
    from ._spec import (
        DEFAULT_PATH,
        EXECUTORS,
        BindMount,
        ProcessSpec,
        RootfsSpec,
        RunResult,
        SandboxSpec,
        TmpfsMount,
    )
    from ._userns import as_mapped_root
    from ._view import enter_rootfs

# Each name loads its module on first use: a container start needs the
# sandbox, not the OCI bundle writer or the exec machinery.
_LAZY = {
    "BindMount": "._spec",
    "Capabilities": "._probe",
    "Cgroup": "._cgroups",
    "DEFAULT_PATH": "._spec",
    "EXECUTORS": "._spec",
    "Holder": "._holder",
    "IdMap": "._idmap",
    "OciProcess": "._oci",
    "OutputCallback": "._run",
    "ProcessSpec": "._spec",
    "Resources": "._cgroups",
    "RootfsSpec": "._spec",
    "RunResult": "._spec",
    "Sandbox": "._sandbox",
    "SandboxSpec": "._spec",
    "Supervised": "._run",
    "TmpfsMount": "._spec",
    "as_mapped_root": "._userns",
    "capability_set": "._capabilities",
    "collect": "._run",
    "copied_at": "._copy",
    "create_cgroup": "._cgroups",
    "enter": "._enter",
    "find_cgroup": "._cgroups",
    "hold_namespaces": "._holder",
    "enter_rootfs": "._view",
    "id_map": "._idmap",
    "join_network_of": "._enter",
    "lifeline": "._sandbox",
    "lifeline_owned": "._sandbox",
    "materialize": "._copy",
    "mount_rootfs": "._oci",
    "oci_config": "._oci",
    "open_cgroup": "._cgroups",
    "overlay_refusal": "._driver",
    "probe": "._probe",
    "read_chunk": "._run",
    "release_lifeline": "._sandbox",
    "require": "._probe",
    "run": "._run",
    "run_in": "._run",
    "run_oci": "._oci",
    "set_terminal_size": "._console",
    "setns_network": "._enter",
    "start": "._sandbox",
    "start_oci": "._oci",
    "write_all": "._run",
    "write_bundle": "._oci",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_PATH",
    "EXECUTORS",
    "BindMount",
    "Capabilities",
    "Cgroup",
    "Holder",
    "IdMap",
    "OciProcess",
    "OutputCallback",
    "ProcessSpec",
    "Resources",
    "RootfsSpec",
    "RunResult",
    "Sandbox",
    "SandboxSpec",
    "Supervised",
    "TmpfsMount",
    "as_mapped_root",
    "capability_set",
    "collect",
    "copied_at",
    "create_cgroup",
    "enter",
    "enter_rootfs",
    "find_cgroup",
    "hold_namespaces",
    "id_map",
    "join_network_of",
    "lifeline",
    "lifeline_owned",
    "materialize",
    "mount_rootfs",
    "oci_config",
    "open_cgroup",
    "overlay_refusal",
    "probe",
    "read_chunk",
    "release_lifeline",
    "require",
    "run",
    "run_in",
    "run_oci",
    "set_terminal_size",
    "setns_network",
    "start",
    "start_oci",
    "write_all",
    "write_bundle",
]
