"""Go duration text for HEALTHCHECK flags."""

from __future__ import annotations

import pytest

from layercake.dockerfile._durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("-2s", -2.0),
        ("1h0m0.5s", 3600.5),
        (".5s", 0.5),
    ],
)
def test_go_durations_convert_to_seconds(text: str, seconds: float) -> None:
    """Each Go duration gives its length in seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "1 s", "1d", ".s", "1s2"])
def test_text_that_is_not_a_go_duration_is_refused(text: str) -> None:
    """A missing unit, an unknown unit or stray text is a ValueError."""
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
