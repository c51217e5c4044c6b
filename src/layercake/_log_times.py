"""The times ``docker logs --since`` accepts, as nanoseconds since the epoch.

Docker takes three forms: a relative duration in Go's syntax (``10m``,
``1h30m``, ``1.5s``), counted back from now; Unix seconds (``1733341000``
or ``1733341000.5``); and an RFC 3339 date or time (``2026-12-04``,
``2026-12-04T10:00:00Z``, ``2026-12-04T10:00:00.5+02:00``), read as local
time when it names no zone.
"""

from __future__ import annotations

import datetime
import re
import time

from layercake.errors import ContainerConfigError

__all__ = ["parse_log_time"]

_UNIX = re.compile(r"(\d+)(?:\.(\d{1,9}))?")
_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.(\d+)")


def parse_log_time(text: str, now_ns: int | None = None) -> int:
    """Nanoseconds since the epoch of a docker ``--since``/``--until`` value.

    A duration counts back from ``now_ns`` (default: the current time).

    Raises:
        ContainerConfigError: ``text`` is none of docker's forms.
    """
    value = text.strip()
    duration = _duration_ns(value)
    if duration is not None:
        return (time.time_ns() if now_ns is None else now_ns) - duration

    unix = _UNIX.fullmatch(value)
    if unix:
        fraction = (unix.group(2) or "").ljust(9, "0")
        return int(unix.group(1)) * 1_000_000_000 + int(fraction)

    stamp = _rfc3339_ns(value)
    if stamp is None:
        raise ContainerConfigError(
            f"invalid time {text!r}: expected a duration such as 10m or 1h30m, "
            "Unix seconds, or an RFC 3339 time such as 2026-12-04T10:00:00Z"
        )
    return stamp


def _duration_ns(value: str) -> int | None:
    # Loaded here: only a --since value needs the Dockerfile package.
    from layercake.dockerfile import parse_duration

    sign = -1 if value.startswith("-") else 1
    try:
        seconds = parse_duration(value.lstrip("+-"))
    except ValueError:
        return None
    return sign * round(seconds * 1_000_000_000)


def _rfc3339_ns(value: str) -> int | None:
    # fromisoformat keeps microseconds only: take a longer fraction apart.
    fraction_ns = 0
    split = _FRACTION.search(value)
    if split:
        fraction_ns = int(split.group(2)[:9].ljust(9, "0"))
        value = value[: split.end(1)] + value[split.end() :]
    if "-" not in value[:8]:
        return None
    try:
        stamp = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.astimezone()  # a time without a zone is local, as docker
    seconds = int(stamp.timestamp())
    return seconds * 1_000_000_000 + fraction_ns
