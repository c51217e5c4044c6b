"""slirp4netns, started the one way both of its users start it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from tests.conftest import missing

from layercake import _slirp
from layercake.errors import ContainerError


@pytest.fixture
def namespace_pid() -> Iterator[int]:
    """A process in a network namespace of its own, ended afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the user-owned namespace's tests run slirp4netns without root")
    if _slirp.cause():
        missing(_slirp.cause())
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink(
            "/proc/self/ns/net"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def _addresses(pid: int, device: str) -> str:
    command = ["nsenter", "-t", str(pid), "-n", "ip", "-4", "-o", "addr", "show"]
    listing = subprocess.run([*command, device], capture_output=True, text=True)
    return " ".join(listing.stdout.split()[1:4])


def test_launch_returns_once_the_device_is_up_and_ends_with_its_pipe(namespace_pid):
    """The device has slirp4netns's address when launch returns; closing the
    exit pipe ends slirp4netns."""
    exit_r, exit_w = os.pipe()
    try:
        process = _slirp.launch(
            shutil.which("slirp4netns") or "", namespace_pid, "tap0", exit_r
        )
    finally:
        os.close(exit_r)
    try:
        assert _addresses(namespace_pid, "tap0") == "tap0 inet 10.0.2.100/24"
    finally:
        os.close(exit_w)
    process.communicate(timeout=10)
    assert process.returncode == 0


def test_launch_on_a_process_that_is_gone_says_what_slirp4netns_said():
    """A namespace that cannot be joined is an error with slirp4netns's words."""
    if shutil.which("slirp4netns") is None:
        missing("slirp4netns is not installed")
    exit_r, exit_w = os.pipe()
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        with pytest.raises(ContainerError) as caught:
            _slirp.launch("slirp4netns", gone.pid, "tap0", exit_r)
    finally:
        os.close(exit_r)
        os.close(exit_w)
    assert str(caught.value) == "slirp4netns did not start: child failed(1)"
