"""Progress of moving one blob: pulls, pushes and archive saves report it."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ._digest import Digest

__all__ = ["ProgressCallback", "TransferProgress"]


@attrs.frozen
class TransferProgress:
    """How far one blob's transfer has come: ``done`` of ``total`` bytes.

    ``reference`` names where it goes or comes from (an image reference, or
    an archive's path).
    """

    digest: Digest
    total: int
    done: int
    reference: str


ProgressCallback = Callable[[TransferProgress], None]
