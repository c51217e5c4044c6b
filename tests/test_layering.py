"""Imports point one way: the parser and the runtime know nothing else."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src/layercake"

FORBIDDEN = {
    "dockerfile": ("layercake.store", "layercake.runtime", "layercake.builder"),
    "runtime": ("layercake.store", "layercake.dockerfile", "layercake.builder"),
    "store": ("layercake.runtime", "layercake.dockerfile", "layercake.builder"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_its_neighbours(package):
    """dockerfile, runtime and store import none of each other (nor the builder)."""
    offending = sorted(
        f"{path.name}: {name}"
        for path in (SRC / package).glob("*.py")
        for name in imported_modules(path)
        if name.startswith((*FORBIDDEN[package], "layercake._", "layercake.cli"))
    )
    assert offending == []
