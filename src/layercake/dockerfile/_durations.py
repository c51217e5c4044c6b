"""Go duration text (``1m30s``, ``1.5h``, ``250ms``), as HEALTHCHECK flags use."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Return the seconds a Go duration such as ``"1m30s"`` stands for.

    Raises:
        ValueError: the text is not a Go duration.
    """
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in ("-", "+") else text
    if body == "0":
        return 0.0
    if body == "":
        raise ValueError(f"invalid duration {text!r}")

    total = 0.0
    pos = 0
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None or match[1] in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        total += float(match[1]) * _SECONDS[match[2]]
        pos = match.end()
    return sign * total
