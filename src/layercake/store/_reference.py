"""Image references in Docker's grammar, normalised as Docker does."""

from __future__ import annotations

import re

import attrs

from layercake.errors import InvalidReference, StoreError

from ._digest import Digest

__all__ = ["Reference"]

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_MAX_NAME = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")


@attrs.frozen
class Reference:
    """A parsed image reference: registry domain, repository path, tag, digest.

    ``Reference.parse("busybox")`` is ``docker.io`` / ``library/busybox`` /
    ``latest``; a reference with only a digest has no tag.
    """

    domain: str
    path: str
    tag: str | None
    digest: Digest | None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalise ``text`` (``[domain/]path[:tag][@digest]``).

        Raises:
            InvalidReference: ``text`` does not follow the grammar; the
                error names the text and the reason.
        """
        if not text:
            raise InvalidReference(text, "empty reference")
        remainder, at, digest_text = text.partition("@")
        digest = _parse_digest(text, digest_text) if at else None

        name, tag = _split_tag(remainder)
        if tag is not None and not _TAG.fullmatch(tag):
            raise InvalidReference(text, f"invalid tag {tag!r}")
        if _IMAGE_ID.fullmatch(name):
            raise InvalidReference(
                text, "cannot specify 64-byte hexadecimal strings as a name"
            )
        domain, path = _split_domain(text, name)

        if len(domain) + 1 + len(path) > _MAX_NAME:
            raise InvalidReference(
                text, f"repository name must not be more than {_MAX_NAME} characters"
            )
        if tag is None and digest is None:
            tag = "latest"
        return cls(domain=domain, path=path, tag=tag, digest=digest)

    @property
    def repository(self) -> str:
        """The full repository name, ``domain/path``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar(self) -> str:
        """The short form Docker shows: ``busybox:latest``, ``ghcr.io/a/b:1``."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path
            rest = name.removeprefix(_OFFICIAL_PREFIX)
            if "/" not in rest:
                name = rest
        return name + self._suffix()

    @property
    def canonical(self) -> str:
        """The fully qualified form: ``docker.io/library/busybox:latest``."""
        return self.repository + self._suffix()

    def _suffix(self) -> str:
        suffix = f":{self.tag}" if self.tag is not None else ""
        if self.digest is not None:
            suffix += f"@{self.digest}"
        return suffix

    def __str__(self) -> str:
        return self.canonical


def _parse_digest(text: str, digest_text: str) -> Digest:
    try:
        return Digest.parse(digest_text)
    except StoreError:
        raise InvalidReference(text, f"invalid digest {digest_text!r}") from None


def _split_tag(name: str) -> tuple[str, str | None]:
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, None


def _split_domain(text: str, name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    is_domain = slash and (
        any(c in first for c in ".:") or first == "localhost" or first != first.lower()
    )
    if is_domain:
        domain, path = first, rest
        if not _DOMAIN.fullmatch(domain):
            raise InvalidReference(text, f"invalid domain {domain!r}")
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == _LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL_PREFIX + path

    for component in path.split("/"):
        if _COMPONENT.fullmatch(component):
            continue
        if _COMPONENT.fullmatch(component.lower()):
            raise InvalidReference(text, "repository name must be lowercase")
        raise InvalidReference(text, "invalid reference format")
    return domain, path
