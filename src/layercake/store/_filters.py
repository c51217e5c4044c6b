"""Docker's ``images --filter`` keys: dangling, label and reference."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs

from ._reference import Reference

__all__ = ["ImageFilter"]

_KEYS = ("dangling", "label", "reference")


def _values(value: str | bool | Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _glob(pattern: str) -> re.Pattern[str]:
    # As Go's path.Match, which Docker uses: * and ? never match a slash.
    parts = []
    for char in pattern:
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts))


@attrs.frozen
class ImageFilter:
    """A parsed set of image filters; call :meth:`matches` on an image's data."""

    dangling: bool | None = None
    labels: tuple[tuple[str, str | None], ...] = ()
    references: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def parse(cls, filters: Mapping[str, str | bool | Sequence[str]]) -> ImageFilter:
        """Parse ``{"dangling": "true", "label": ["a=b"], "reference": "x*"}``.

        Raises:
            ValueError: an unknown key or a ``dangling`` value that is not
                ``true`` or ``false``.
        """
        unknown = sorted(set(filters) - set(_KEYS))
        if unknown:
            raise ValueError(
                f"invalid filter {unknown[0]!r}: use one of {', '.join(_KEYS)}"
            )
        dangling = None
        for value in _values(filters.get("dangling", ())):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"invalid filter 'dangling={value}'")
            dangling = value.lower() in ("true", "1")
        labels = []
        for text in _values(filters.get("label", ())):
            key, sep, wanted = text.partition("=")
            labels.append((key, wanted if sep else None))
        references = tuple(_glob(p) for p in _values(filters.get("reference", ())))
        return cls(dangling, tuple(labels), references)

    def matches(self, tags: Sequence[str], labels: Mapping[str, str]) -> bool:
        """Tell whether an image with these tags and labels passes every filter."""
        if self.dangling is not None and self.dangling != (not tags):
            return False
        for key, wanted in self.labels:
            if key not in labels or (wanted is not None and labels[key] != wanted):
                return False
        if self.references:
            return any(self._named(tag) for tag in tags)
        return True

    def _named(self, tag: str) -> bool:
        reference = Reference.parse(tag)
        name = (
            tag.rpartition(":")[0]
            if reference.tag and tag.endswith(f":{reference.tag}")
            else tag
        )
        return any(p.fullmatch(name) or p.fullmatch(tag) for p in self.references)
