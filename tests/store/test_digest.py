"""Tests for Digest values."""

import pytest

from layercake.errors import StoreError
from layercake.store import Digest

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_of_bytes_is_the_sha256_of_the_data() -> None:
    """Hashing bytes gives the sha256 digest text Docker would show."""
    assert str(Digest.of_bytes(b"")) == f"sha256:{EMPTY}"


def test_parse_round_trips_through_str() -> None:
    """A parsed digest prints back as the same text."""
    assert str(Digest.parse(f"sha256:{EMPTY}")) == f"sha256:{EMPTY}"
    assert Digest.parse(f"sha256:{EMPTY}") == Digest("sha256", EMPTY)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (EMPTY, "missing algorithm"),
        (f"md5:{EMPTY}", "unsupported algorithm 'md5'"),
        (f"sha256:{EMPTY.upper()}", "expected 64 lowercase hex digits"),
        (f"sha256:{EMPTY[:-1]}", "expected 64 lowercase hex digits"),
        ("sha256:", "expected 64 lowercase hex digits"),
    ],
)
def test_parse_rejects_malformed_text_naming_it(text: str, reason: str) -> None:
    """A malformed digest raises StoreError quoting the text and the reason."""
    with pytest.raises(StoreError) as info:
        Digest.parse(text)
    assert str(info.value) == f"invalid digest {text!r}: {reason}"


def test_digests_order_by_algorithm_then_hex() -> None:
    """Digests sort like their text, so lists of them sort deterministically."""
    a, b = Digest("sha256", "0" * 64), Digest("sha256", "f" * 64)
    assert sorted([b, a]) == [a, b]
