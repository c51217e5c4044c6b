"""Sizes as users write them: ``65536``, ``512k``, ``64m``, ``2g`` (binary units)."""

from __future__ import annotations

import re

__all__ = ["parse_size"]

_SIZE = re.compile(r"([0-9]+)([kmg]?)b?", re.IGNORECASE)
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int | None:
    """The number of bytes ``text`` stands for, or ``None`` if it is no size."""
    match = _SIZE.fullmatch(text.strip())
    return None if match is None else int(match[1]) * _SCALE[match[2].lower()]
