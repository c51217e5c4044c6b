"""Turn failed registry responses into layercake's registry exceptions."""

from __future__ import annotations

import json

import httpx

from layercake.errors import (
    BlobUnknown,
    ManifestUnknown,
    RegistryDenied,
    RegistryError,
    RegistryUnauthorized,
    TooManyRequests,
)

__all__ = ["error_from_response", "public_url"]

# Error codes of the distribution spec that have a class of their own;
# every other code is a plain RegistryError that still carries the code.
_CLASSES: dict[str, type[RegistryError]] = {
    "MANIFEST_UNKNOWN": ManifestUnknown,
    "NAME_UNKNOWN": ManifestUnknown,
    "BLOB_UNKNOWN": BlobUnknown,
    "UNAUTHORIZED": RegistryUnauthorized,
    "DENIED": RegistryDenied,
    "TOOMANYREQUESTS": TooManyRequests,
}

_BY_STATUS: dict[int, type[RegistryError]] = {
    401: RegistryUnauthorized,
    403: RegistryDenied,
    429: TooManyRequests,
}

_MAX_ERROR_BODY = 64 * 1024


def public_url(url: httpx.URL | str) -> str:
    """Return ``url`` without query, fragment or user info.

    Redirect targets are often pre-signed URLs whose query string is a
    credential, so errors and logs only ever show this form.
    """
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(query=None, fragment=None, userinfo=b""))


def error_from_response(
    response: httpx.Response, *, reference: str | None, action: str
) -> RegistryError:
    """Build the exception for a failed ``response`` to ``action``.

    The body is read (at most 64 KiB) for the spec's ``errors`` list; the
    first error's code picks the class and its message joins ours.
    """
    code, detail = _first_error(response)
    cls = _CLASSES.get(code or "") or _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ManifestUnknown if _is_missing_manifest(response, action) else None
    if cls is None:
        cls = BlobUnknown if response.status_code == 404 and "blob" in action else None
    cls = cls or RegistryError

    url = public_url(response.request.url)
    what = f"{action} failed"
    if reference is not None:
        what += f" for {reference}"
    status = f"{response.status_code}"
    if code is not None:
        status += f" {code}"
    message = f"{what}: {response.request.method} {url} returned {status}"
    if detail:
        message += f": {detail}"
    return cls(
        message,
        url=url,
        status=response.status_code,
        code=code,
        reference=reference,
    )


def _is_missing_manifest(response: httpx.Response, action: str) -> bool:
    return response.status_code == 404 and "manifest" in action


def _first_error(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = _bounded_body(response)
        errors = json.loads(body)["errors"]
        first = errors[0]
        code = first.get("code")
        message = first.get("message") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None, ""
    if not isinstance(code, str):
        code = None
    return code, str(message)[:200].lower()


def _bounded_body(response: httpx.Response) -> bytes:
    try:
        return _read_some(response)
    except (httpx.StreamError, httpx.TransportError):
        return b""


def _read_some(response: httpx.Response) -> bytes:
    if not response.is_stream_consumed:
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > _MAX_ERROR_BODY:
                break
        return bytes(data[:_MAX_ERROR_BODY])
    try:
        return response.content[:_MAX_ERROR_BODY]
    except httpx.ResponseNotRead:
        return b""
