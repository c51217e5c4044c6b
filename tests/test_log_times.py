"""The times ``logs --since`` accepts, in each of docker's forms."""

from __future__ import annotations

import datetime

import pytest

from layercake._log_times import parse_log_time
from layercake.errors import ContainerConfigError

NOW = 1_800_000_000 * 1_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", NOW - 600 * 1_000_000_000),
        ("1h30m", NOW - 5400 * 1_000_000_000),
        ("1.5s", NOW - 1_500_000_000),
        ("300ms", NOW - 300_000_000),
        ("0", NOW),
    ],
)
def test_durations_count_back_from_now(text, expected):
    """A Go duration is that long before now."""
    assert parse_log_time(text, NOW) == expected


def test_unix_seconds_with_and_without_fraction():
    """Unix seconds may carry a fraction of up to nine digits."""
    assert parse_log_time("1733341000", NOW) == 1_733_341_000_000_000_000
    assert parse_log_time("1733341000.25", NOW) == 1_733_341_000_250_000_000


def test_rfc3339_times_keep_nanoseconds_and_zones():
    """RFC 3339 times with a zone are exact to the nanosecond."""
    base = 1_733_306_400 * 1_000_000_000  # 2024-12-04T10:00:00Z
    assert parse_log_time("2024-12-04T10:00:00Z") == base
    assert parse_log_time("2024-12-04T10:00:00.123456789Z") == base + 123456789
    assert parse_log_time("2024-12-04T12:00:00+02:00") == base


def test_a_date_without_zone_is_local_midnight():
    """A bare date is midnight local time, as docker reads it."""
    local = datetime.datetime(2024, 12, 4).astimezone()
    assert parse_log_time("2024-12-04") == int(local.timestamp()) * 1_000_000_000


@pytest.mark.parametrize("text", ["garbage", "10x", "1h30", "", "2024-13-45"])
def test_other_values_are_config_errors(text):
    """Anything else is refused with one line naming the forms."""
    with pytest.raises(ContainerConfigError) as caught:
        parse_log_time(text, NOW)
    assert str(caught.value) == (
        f"invalid time {text!r}: expected a duration such as 10m or 1h30m, "
        "Unix seconds, or an RFC 3339 time such as 2026-12-04T10:00:00Z"
    )
