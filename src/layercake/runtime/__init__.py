"""Run a process in an isolated Linux container built from plain directories.

The runtime knows nothing of images or stores: it takes overlay lower
directories, an upper directory and a process (:class:`SandboxSpec`), and
runs the process as PID 1 of new mount, PID, UTS, IPC and (unless the host
network is asked for) network namespaces, in a user namespace when not root.
"""

from __future__ import annotations

from ._capabilities import capability_set
from ._cgroups import Cgroup, Resources, create_cgroup, open_cgroup
from ._enter import enter, setns_network
from ._oci import (
    EXECUTORS,
    OciProcess,
    mount_rootfs,
    oci_config,
    run_oci,
    start_oci,
    write_bundle,
)
from ._probe import Capabilities, probe, require
from ._run import OutputCallback, Supervised, collect, run, run_in
from ._sandbox import (
    Sandbox,
    lifeline,
    lifeline_owned,
    release_lifeline,
    start,
)
from ._spec import (
    DEFAULT_PATH,
    BindMount,
    ProcessSpec,
    RootfsSpec,
    RunResult,
    SandboxSpec,
    TmpfsMount,
)
from ._view import enter_rootfs

__all__ = [
    "DEFAULT_PATH",
    "EXECUTORS",
    "BindMount",
    "Capabilities",
    "Cgroup",
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
    "capability_set",
    "collect",
    "create_cgroup",
    "enter",
    "enter_rootfs",
    "lifeline",
    "lifeline_owned",
    "mount_rootfs",
    "oci_config",
    "open_cgroup",
    "probe",
    "release_lifeline",
    "require",
    "run",
    "run_in",
    "run_oci",
    "setns_network",
    "start",
    "start_oci",
    "write_bundle",
]
