"""probe() and require(): what the kernel allows, asked once."""

from __future__ import annotations

import os
import subprocess
import sys

import attrs
import pytest

from layercake.runtime import Capabilities, _probe, probe, require


def test_probe_is_asked_once_and_cached() -> None:
    """Two calls return the very same Capabilities object."""
    assert probe() is probe()


def test_probe_reports_root_as_the_effective_user() -> None:
    """Capabilities.root says whether this process runs as root."""
    assert probe().root == (os.geteuid() == 0)


def test_capabilities_fields_are_named() -> None:
    """Capabilities lists root, user namespaces, overlay and pivot_root."""
    names = [field.name for field in attrs.fields(Capabilities)]

    assert names == ["root", "user_namespaces", "overlay", "pivot_root"]


def test_require_passes_where_the_runtime_tests_run(runtime: None) -> None:
    """require() raises nothing on a machine that can run containers."""
    require()


def test_require_asks_about_user_namespaces_only_when_not_root(
    runtime: None,
) -> None:
    """Root needs no user namespace, so require() spares it the probing fork."""
    code = (
        "from layercake.runtime import _probe, require; require(); "
        "print(_probe._can_unshare_user.cache_info().misses)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == ("0\n" if os.geteuid() == 0 else "1\n")


def test_require_does_not_need_overlayfs(
    runtime: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without overlayfs, require() passes: the copy storage driver takes over."""
    monkeypatch.setattr(_probe, "_has_overlay", lambda: False)
    require()
