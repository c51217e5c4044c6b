"""Golden files: each cases/<name>/Dockerfile dumps to cases/<name>/expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from layercake.dockerfile import dump, parse

CASES = Path(__file__).with_name("cases")


@pytest.mark.parametrize("case", sorted(path.name for path in CASES.iterdir()), ids=str)
def test_dockerfile_dumps_to_its_golden_file(case: str) -> None:
    """The dump of the case's Dockerfile is exactly its expected file."""
    directory = CASES / case
    text = (directory / "Dockerfile").read_text(encoding="utf-8")
    expected = (directory / "expected").read_text(encoding="utf-8")
    assert dump(parse(text)) == expected


def test_parse_of_a_path_matches_parse_of_its_text() -> None:
    """Reading the file gives the same tree as passing its text, path aside."""
    path = CASES / "multistage" / "Dockerfile"
    from_file = parse(path)
    from_text = parse(path.read_text(encoding="utf-8"), path=str(path))
    assert from_file == from_text
