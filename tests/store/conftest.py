"""Fixtures for the store tests."""

from pathlib import Path

import pytest

from layercake.store import StoreDirectory


@pytest.fixture
def layout(tmp_path: Path) -> StoreDirectory:
    """A fresh StoreDirectory in its own folder under tmp_path."""
    return StoreDirectory(tmp_path / "store")
