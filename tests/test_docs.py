"""The API reference builds from the docstrings, with warnings as errors."""

from __future__ import annotations

import subprocess
import sys

PUBLIC_MODULES = [
    "layercake",
    "layercake.errors",
    "layercake.events",
    "layercake.dockerfile",
    "layercake.pytest_plugin",
]


def test_api_reference_builds_without_warnings(tmp_path):
    """pdoc renders every public module; any warning fails the build."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "pdoc", *PUBLIC_MODULES, "-o", tmp_path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    page = (tmp_path / "layercake.html").read_text()
    for name in ("Store", "Builder", "Image", "Container", "Layer"):
        assert f'id="{name}"' in page


def test_cli_reference_matches_the_command():
    """docs/cli.md is what scripts/write_cli_reference.py writes today."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location(
        "write_cli_reference", root / "scripts/write_cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "docs/cli.md").read_text() == module.reference()


def test_docs_site_builds_strictly(tmp_path):
    """mkdocs builds docs/ with warnings as errors: no broken links or pages."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", tmp_path],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert (tmp_path / "tutorial" / "index.html").exists()
