"""CI runs the runtime and container tests again as an unprivileged user.

As root, the suite switches to ``layercake-ci`` (created, with subordinate
ids, by ``scripts/setup-debian.sh test``) and runs tests/runtime, the
container tests, the name-resolution tests, the storage driver tests, the
rootless build tests and the network tests of the API and the CLI from a
copy of the tree, with
LAYERCAKE_REQUIRE_RUNTIME=1: what a rootless user cannot have fails there
instead of skipping, except the tests listed below, which need root or
cgroup delegation by design.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

from tests.unprivileged import Unprivileged

import layercake

SUITES = (
    "tests/runtime",
    "tests/test_container.py",
    "tests/test_name_resolution.py",
    "tests/test_storage_driver.py",
    "tests/test_build_rootless.py",
    "tests/test_user_networks.py",
    "tests/test_cli_networks.py",
)

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
    "tests/test_storage_driver.py::"
    "test_paused_commit_of_a_racing_container_copies_only_its_files": (
        "freezing takes a cgroup of one's own"
    ),
    "tests/test_storage_driver.py::"
    "test_commit_thaws_the_container_it_paused_and_keeps_a_user_pause": (
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


BUILD = """
import json, sys, layercake
try:
    image = layercake.Builder(layercake.Store(sys.argv[1])).build(sys.argv[2])
except layercake.BuildError as error:
    print(json.dumps(str(error)))
else:
    print(json.dumps([str(layer.digest) for layer in image.layers]))
"""
"""Build a context into a store; print its layer digests or the error."""


def owned_context(directory: Path, owner: str) -> Path:
    """A context whose WORKDIR, COPY and ADD steps make files owned by ``owner``."""
    directory.mkdir()
    (directory / "f.txt").write_text("hello\n")
    archive = directory / "t.tar"
    with tarfile.open(archive, "w") as tar:
        entry = tarfile.TarInfo("t/g.txt")
        entry.size, entry.mtime, entry.uid, entry.gid = 3, 1_000_000, 0, 0
        tar.addfile(entry, io.BytesIO(b"hi\n"))
    (directory / "Dockerfile").write_text(
        "FROM scratch\n"
        f"USER {owner}\n"
        "WORKDIR /home/app\n"
        f"COPY --chown={owner} --chmod=640 f.txt /app/\n"
        f"ADD --chown={owner} t.tar /x/\n"
        "COPY f.txt /app/same.txt\n"
    )
    for path in (directory / "f.txt", archive, directory / "Dockerfile", directory):
        os.utime(path, (1_000_000, 1_000_000))
    return directory


def build_as(user: Unprivileged, context: Path) -> object:
    """Build a copy of ``context`` as ``user``; its layer digests or error."""
    copy = user.workdir(f"context-{context.name}")
    shutil.copytree(context, copy, dirs_exist_ok=True)
    os.chown(copy, user.uid, user.gid)
    completed = user.run(
        ["python", "-c", BUILD, str(user.workdir(f"store-{context.name}")), str(copy)],
        timeout=60,
        env={"SOURCE_DATE_EPOCH": "1000000"},
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_rootless_build_writes_the_layers_root_writes(
    unprivileged: Unprivileged, nobody: Unprivileged, tmp_path: Path, monkeypatch
) -> None:
    """WORKDIR, COPY and ADD layers are the same bytes built as root or rootless."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000")
    root_owned = owned_context(tmp_path / "root", "0:0")
    as_root = layercake.Builder(layercake.Store(tmp_path / "store")).build(root_owned)
    digests = [str(layer.digest) for layer in as_root.layers]

    assert len(digests) == 4
    assert build_as(unprivileged, root_owned) == digests
    assert build_as(nobody, root_owned) == digests


def test_rootless_build_gives_files_other_owners_only_with_subordinate_ids(
    unprivileged: Unprivileged, nobody: Unprivileged, tmp_path: Path, monkeypatch
) -> None:
    """COPY --chown=1000:1000 matches root's layers with subordinate ids, else fails."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000")
    owned = owned_context(tmp_path / "owned", "1000:1000")
    as_root = layercake.Builder(layercake.Store(tmp_path / "store")).build(owned)

    assert build_as(unprivileged, owned) == [
        str(layer.digest) for layer in as_root.layers
    ]
    assert build_as(nobody, owned) == (
        "step 3 (WORKDIR /home/app): WORKDIR /home/app owned by 1000:1000 cannot "
        "be used without root: rootless builds map only uid 0 here (user nobody "
        "has no subordinate id range in /etc/subuid and /etc/subgid)"
    )
