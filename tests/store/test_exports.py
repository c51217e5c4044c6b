"""Tests that pin the store's public names and its place in the layering."""

import ast
from pathlib import Path

import layercake.store

STORE_SOURCES = Path(layercake.store.__file__).parent


def test_public_names_are_exactly_the_documented_ones() -> None:
    """The package exports this sorted list of names and nothing else."""
    assert layercake.store.__all__ == [
        "REF_NAME",
        "BlobWriter",
        "ContainerConfig",
        "Descriptor",
        "Digest",
        "DiskUsage",
        "Healthcheck",
        "History",
        "ImageConfig",
        "Index",
        "Manifest",
        "MediaType",
        "Platform",
        "PruneReport",
        "Reference",
        "RootFS",
        "StoreDirectory",
        "VerifyReport",
        "extract_tar",
        "from_json",
        "host_platform",
        "to_json",
    ]


def test_store_imports_nothing_of_runtime_dockerfile_or_builder() -> None:
    """Only layercake.errors and the store's own modules are imported."""
    imported = set()
    for source in STORE_SOURCES.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.startswith("layercake")}
    assert ours == {"layercake.errors"}
