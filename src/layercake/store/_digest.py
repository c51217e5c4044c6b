"""Content digests as values: ``sha256:<hex>``."""

from __future__ import annotations

import hashlib
import re

import attrs

from layercake.errors import StoreError

__all__ = ["Digest"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@attrs.frozen(order=True)
class Digest:
    """A content digest: an algorithm name and the lowercase hex of the hash.

    Only ``sha256`` is produced and accepted, which is what the OCI image spec
    requires implementations to support.
    """

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<64 lowercase hex digits>``.

        Raises:
            StoreError: the text is not such a digest; the message names it.
        """
        algorithm, sep, hexpart = text.partition(":")
        if not sep:
            raise StoreError(f"invalid digest {text!r}: missing algorithm")
        if algorithm != "sha256":
            raise StoreError(
                f"invalid digest {text!r}: unsupported algorithm {algorithm!r}"
            )
        if not _SHA256.fullmatch(hexpart):
            raise StoreError(
                f"invalid digest {text!r}: expected 64 lowercase hex digits"
            )
        return cls(algorithm, hexpart)

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        """Return the sha256 digest of ``data``."""
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"
