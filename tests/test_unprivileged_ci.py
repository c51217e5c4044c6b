"""CI runs the runtime and container tests again as an unprivileged user.

As root, the suite switches to ``layercake-ci`` (created, with subordinate
ids, by ``scripts/setup-debian.sh test``) and runs tests/runtime, the
container tests and the storage driver tests from a copy of the tree, with
LAYERCAKE_REQUIRE_RUNTIME=1: what a rootless user cannot have fails there
instead of skipping, except the tests listed below, which need root or
cgroup delegation by design.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.unprivileged import Unprivileged

SUITES = ("tests/runtime", "tests/test_container.py", "tests/test_storage_driver.py")

NOT_ROOTLESS = {
    "tests/runtime/test_oci.py::test_bundle_is_accepted_by_runc": "runc runs as root",
    "tests/runtime/test_oci.py::test_runc_gives_the_builtin_results": "runc runs as root",
    "tests/runtime/test_oci.py::test_runc_leaves_no_mount_target_in_the_upper_dir": (
        "runc runs as root"
    ),
    "tests/runtime/test_oci.py::test_runc_passes_stdin": "runc runs as root",
    "tests/runtime/test_oci.py::test_runc_container_past_its_timeout_is_killed": (
        "runc runs as root"
    ),
    "tests/test_container.py::test_pause_freezes_the_container_until_unpause": (
        "freezing takes a cgroup of one's own"
    ),
    "tests/test_container.py::test_stopping_a_paused_container_thaws_it": (
        "freezing takes a cgroup of one's own"
    ),
    "tests/test_container.py::test_memory_limit_oom_kills_with_137_and_reports_it": (
        "limits take cgroup delegation; rootless runs warn instead"
    ),
    "tests/test_container.py::test_pids_limit_stops_forks_and_stats_report_usage": (
        "limits take cgroup delegation; rootless runs warn instead"
    ),
}
"""Tests left out of the unprivileged run, and why they cannot pass there."""

TIMEOUT = 240.0


def pid_namespace_members(namespace: str) -> list[int]:
    """The pids of every process in the PID namespace ``namespace`` names."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns" / "pid") == namespace:
                    members.append(int(entry.name))
            except OSError:
                continue
    return members


def mounts_under(path: Path) -> list[str]:
    """Mount points of this process's namespace at or below ``path``."""
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(str(path))]


def test_runtime_and_container_tests_pass_as_an_unprivileged_user(
    unprivileged: Unprivileged,
) -> None:
    """The rootless run passes, in bounded time, and leaves no process or mount."""
    marker = unprivileged.home / "pid-namespace"
    deselected = [arg for test in NOT_ROOTLESS for arg in ("--deselect", test)]
    script = (
        "import os, sys, pytest\n"
        f"open({str(marker)!r}, 'w').write(os.readlink('/proc/self/ns/pid'))\n"
        "sys.exit(pytest.main(sys.argv[1:]))\n"
    )
    args = [
        "python",
        "-c",
        script,
        "-q",
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        f"--basetemp={unprivileged.home / 'pytest'}",
        *deselected,
        *SUITES,
    ]
    completed = unprivileged.run(
        args, timeout=TIMEOUT, env={"LAYERCAKE_REQUIRE_RUNTIME": "1"}
    )

    summary = completed.stdout.strip().splitlines()[-1:]
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr
    assert summary and " passed" in summary[0] and "failed" not in summary[0]
    namespace = marker.read_text()
    assert namespace.startswith("pid:[")
    assert pid_namespace_members(namespace) == []
    assert mounts_under(unprivileged.base) == []
