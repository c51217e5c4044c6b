"""The test mount that picks the storage driver, and how a success is remembered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from layercake.runtime._driver import MOUNTED_FILE

# Counts the test mounts a fresh process makes while it asks once.
_ASK = """
import sys
from layercake.runtime import _driver
mounts = []
real = _driver._try_mount
_driver._try_mount = lambda scratch: mounts.append(scratch) or real(scratch)
print(_driver.overlay_refusal(sys.argv[1], remember_in=sys.argv[2]), len(mounts))
"""


def _ask(directory: Path, remember_in: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _ASK, str(directory), str(remember_in)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _key(directory: Path) -> str:
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return f"{boot} {os.geteuid()} {directory.stat().st_dev}\n"


def test_a_mount_that_worked_is_remembered_for_this_boot_user_and_file_system(
    runtime: None, tmp_path: Path
) -> None:
    """The first process mounts and writes boot id, user and device; nothing else."""
    probed = tmp_path / "containers"
    probed.mkdir()

    assert _ask(probed, tmp_path) == "None 1\n"
    assert (tmp_path / MOUNTED_FILE).read_text() == _key(probed)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MOUNTED_FILE, "containers"]
    assert list(probed.iterdir()) == []


def test_a_remembered_mount_spares_later_processes_the_test_mount(
    runtime: None, tmp_path: Path
) -> None:
    """A second process trusts the remembered success and mounts nothing."""
    probed = tmp_path / "containers"
    probed.mkdir()
    assert _ask(probed, tmp_path) == "None 1\n"

    assert _ask(probed, tmp_path) == "None 0\n"


def test_a_success_remembered_in_another_boot_is_tested_again(
    runtime: None, tmp_path: Path
) -> None:
    """A file from another boot (or user, or file system) does not count."""
    probed = tmp_path / "containers"
    probed.mkdir()
    (tmp_path / MOUNTED_FILE).write_text(f"another-boot {os.geteuid()} 1\n")

    assert _ask(probed, tmp_path) == "None 1\n"
    assert (tmp_path / MOUNTED_FILE).read_text() == _key(probed)


def test_without_a_place_to_remember_every_process_tests(
    runtime: None, tmp_path: Path
) -> None:
    """Asked without remember_in, nothing is written and each process mounts."""
    code = (
        "import sys; from layercake.runtime import overlay_refusal; "
        "print(overlay_refusal(sys.argv[1]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "None\n"
    assert list(tmp_path.iterdir()) == []
