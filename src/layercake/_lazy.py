"""Package attributes imported on first use, so start-up imports little."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["load_lazily"]


def load_lazily(namespace: dict[str, Any], table: Mapping[str, str], name: str) -> Any:
    """Import ``name`` from the module ``table`` names, and keep it in ``namespace``.

    ``namespace`` is the package's ``globals()``; module names in ``table``
    may be relative to the package (``"._spec"``). Meant as the body of a
    package's ``__getattr__``.

    Raises:
        AttributeError: ``table`` does not name ``name``.
    """
    module = table.get(name)
    if module is None:
        package = namespace["__name__"]
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, namespace["__name__"]), name)
    namespace[name] = value
    return value
