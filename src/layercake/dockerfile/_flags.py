"""The ``--flags`` each instruction accepts, and checks of their values."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from layercake.dockerfile._durations import parse_duration

__all__ = ["check_healthcheck_flags", "parse_flags"]

_STRING, _STRINGS, _BOOL = "string", "strings", "bool"
_FLAG_KINDS: dict[str, dict[str, str]] = {
    "FROM": {"platform": _STRING},
    "RUN": {"mount": _STRINGS, "network": _STRING, "security": _STRING},
    "COPY": {
        "from": _STRING,
        "chown": _STRING,
        "chmod": _STRING,
        "link": _BOOL,
        "parents": _BOOL,
        "exclude": _STRINGS,
    },
    "ADD": {
        "chown": _STRING,
        "chmod": _STRING,
        "checksum": _STRING,
        "keep-git-dir": _BOOL,
        "link": _BOOL,
        "exclude": _STRINGS,
        "unpack": _BOOL,
    },
    "HEALTHCHECK": {
        "interval": _STRING,
        "timeout": _STRING,
        "start-period": _STRING,
        "start-interval": _STRING,
        "retries": _STRING,
    },
}

_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_flags(keyword: str, words: list[str]) -> dict[str, list[str]]:
    """Check the ``--name[=value]`` words of an instruction against what it
    accepts and return every value by flag name (booleans as "true"/"false").

    Raises:
        ValueError: an unknown, repeated or value-less flag, or a boolean flag
            with a value other than true or false; the message names both the
            flag and the instruction.
    """
    kinds = _FLAG_KINDS.get(keyword, {})
    values: dict[str, list[str]] = {}
    for word in words:
        name, has_value, value = word[2:].partition("=")
        kind = kinds.get(name)
        if kind is None:
            reason = f"unknown flag --{name} for {keyword}"
            close = difflib.get_close_matches(name, list(kinds), n=1, cutoff=0.6)
            if close:
                reason += f" (did you mean --{close[0]}?)"
            raise ValueError(reason)
        if name in values and kind != _STRINGS:
            raise ValueError(f"duplicate flag --{name} for {keyword}")
        if kind == _BOOL:
            value = _bool_flag(keyword, name, bool(has_value), value)
        elif not has_value:
            raise ValueError(f"missing a value on flag --{name} for {keyword}")
        values.setdefault(name, []).append(value)
    return values


def _bool_flag(keyword: str, name: str, has_value: bool, value: str) -> str:
    if has_value and value == "":
        raise ValueError(f"missing a value on flag --{name} for {keyword}")
    if value.lower() in ("", "true"):
        return "true"
    if value.lower() == "false":
        return "false"
    raise ValueError(f"expecting a boolean value for flag --{name}, not {value!r}")


def check_healthcheck_flags(flags: Mapping[str, str]) -> None:
    """Check HEALTHCHECK durations (0, or at least 1ms) and retries (>= 0).

    Raises:
        ValueError: a value that is not a Go duration, a duration under 1ms,
            or retries that are not a non-negative integer.
    """
    for name in ("interval", "timeout", "start-period", "start-interval"):
        value = flags.get(name, "")
        if value == "":
            continue
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise ValueError(f"invalid duration {value!r} for --{name}") from None
        if seconds != 0 and seconds < 0.001:
            raise ValueError(f"--{name} cannot be less than 1ms")

    retries = flags.get("retries", "")
    if retries == "":
        return
    if not _INTEGER.fullmatch(retries):
        raise ValueError(f"--retries must be an integer, not {retries!r}")
    if int(retries) < 0:
        raise ValueError(f"--retries cannot be negative ({int(retries)})")
