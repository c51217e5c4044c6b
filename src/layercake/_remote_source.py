"""``ADD <url>``: fetch a file over HTTP(S) for a build step.

As in Docker, the file keeps the URL path's last component as its name,
gets mode 0600 and the ``Last-Modified`` time, and is never extracted. With
``--checksum=sha256:<hex>`` a body that hashes otherwise is refused. The
download streams to a temporary directory; it is hashed on the way, so the
build cache keys on what was fetched, not on the URL alone.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import posixpath
from pathlib import Path
from urllib.parse import unquote, urlsplit

import attrs

from layercake.errors import BuildError

__all__ = ["Download", "download"]

logger = logging.getLogger(__name__)

_TIMEOUT_SECONDS = 60.0
_CHUNK = 1 << 20


@attrs.frozen
class Download:
    """A fetched file: where it is, its name in the image, its sha256 hex."""

    path: Path
    name: str
    sha256: str


def file_name(url: str) -> str:
    """The name ADD gives a downloaded file: the URL path's last component.

    Raises:
        BuildError: the URL has no file name in its path.
    """
    name = posixpath.basename(unquote(urlsplit(url).path))
    if not name or name in (".", ".."):
        raise BuildError(f"cannot determine a file name for ADD from the URL {url}")
    return name


def _is_sha256(text: str) -> bool:
    algorithm, _, hex_digits = text.partition(":")
    return (
        algorithm == "sha256"
        and len(hex_digits) == 64
        and all(c in "0123456789abcdef" for c in hex_digits)
    )


def download(url: str, directory: Path, *, checksum: str | None = None) -> Download:
    """Fetch ``url`` into ``directory``.

    Raises:
        BuildError: a URL scheme other than http(s), a failed request or
            status, or a body whose digest differs from ``checksum``.
    """
    import httpx  # imported here: only ADD of a URL needs an HTTP client

    if urlsplit(url).scheme not in ("http", "https"):
        raise BuildError(f"ADD supports http and https URLs only: {url}")
    if checksum is not None and not _is_sha256(checksum):
        raise BuildError(f"ADD --checksum={checksum}: expected sha256:<64 hex digits>")
    name = file_name(url)
    target = directory / name
    hasher = hashlib.sha256()

    try:
        with httpx.stream(
            "GET", url, follow_redirects=True, timeout=_TIMEOUT_SECONDS
        ) as response:
            if response.status_code != 200:
                raise BuildError(
                    f"ADD {url}: the server answered {response.status_code} "
                    f"{response.reason_phrase}"
                )
            with open(target, "wb") as file:
                for chunk in response.iter_bytes(_CHUNK):
                    hasher.update(chunk)
                    file.write(chunk)
            modified = response.headers.get("last-modified")
    except httpx.HTTPError as error:
        raise BuildError(f"ADD {url}: {error}") from None

    actual = f"sha256:{hasher.hexdigest()}"
    if checksum is not None and checksum != actual:
        raise BuildError(
            f"ADD {url}: checksum mismatch: expected {checksum}, got {actual}"
        )
    os.chmod(target, 0o600)
    if modified:
        moment = email.utils.parsedate_to_datetime(modified).timestamp()
        os.utime(target, (moment, moment))
    logger.info("downloaded %s (%s)", url, actual)
    return Download(target, name, hasher.hexdigest())
