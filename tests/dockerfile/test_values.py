"""The value classes: keywords, the Instruction union, frozen mappings."""

from __future__ import annotations

import typing

import attrs
import pytest

from layercake.dockerfile import KEYWORDS, FrozenMap, Instruction, parse


def test_instruction_union_has_one_class_per_keyword() -> None:
    """Every keyword has exactly one instruction class whose keyword it is."""
    classes = typing.get_args(Instruction)
    keywords = sorted(cls.keyword for cls in classes)
    assert keywords == sorted(KEYWORDS)


def test_frozen_map_is_read_only_and_compares_as_a_mapping() -> None:
    """Flags cannot be changed after parsing and equal a plain dict."""
    copy = parse("FROM a\nCOPY --from=b x /y\n").stages[0].instructions[0]
    flags = copy.flags  # type: ignore[union-attr]
    assert isinstance(flags, FrozenMap)
    assert flags == {"from": "b"}
    with pytest.raises(TypeError):
        flags["from"] = "c"  # type: ignore[index]
    assert repr(flags) == "FrozenMap({'from': 'b'})"


def test_instructions_are_frozen() -> None:
    """Parsed values cannot be modified."""
    base = parse("FROM a\n").stages[0].base
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        base.image = "b"  # type: ignore[misc]
