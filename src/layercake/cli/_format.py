"""How the CLI shows ages, sizes, tags and tables."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

__all__ = ["age", "size", "split_tag", "table"]


def age(created: str | None) -> str:
    if not created:
        return "N/A"
    try:
        moment = time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "N/A"
    seconds = max(0.0, time.mktime(time.gmtime()) - moment)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "N/A"


def size(total: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if total < 1000 or unit == "GB":
            return f"{total:.3g}{unit}" if unit != "B" else f"{total}B"
        total /= 1000  # type: ignore[assignment]
    return f"{total}B"


def split_tag(name: str) -> tuple[str, str]:
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, "<none>"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows under a header in columns, as docker's tables look."""
    lines = [list(header), *[list(row) for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        sys.stdout.write("   ".join(cells).rstrip() + "\n")
