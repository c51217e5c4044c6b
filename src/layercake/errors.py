"""The one exception tree of layercake.

Every error a caller can see derives from :class:`LayercakeError` and carries
the context that explains it as attributes, so code can react to it and the
message can name the file, line, digest, path or reference involved::

    LayercakeError
    ├── DockerfileError (ValueError)
    │   └── DockerfileSyntaxError
    ├── StoreError
    │   ├── DigestMismatch
    │   ├── BlobNotFound (LookupError)
    │   ├── UnsafeArchiveEntry
    │   ├── StoreCorrupted
    │   └── ImageInUse
    ├── InvalidReference (ValueError)
    ├── ImageNotFound (LookupError)
    ├── BuildError
    │   ├── BuildContextError
    │   └── BuildStepFailed
    ├── RuntimeUnavailable
    ├── ContainerError
    │   ├── ContainerConfigError (ValueError)
    │   ├── ContainerTimeout (TimeoutError)
    │   └── CommandNotStarted
    └── RegistryError
        ├── RegistryUnauthorized (PermissionError)
        ├── RegistryDenied (PermissionError)
        ├── ManifestUnknown (LookupError)
        ├── BlobUnknown (LookupError)
        ├── TooManyRequests
        └── InvalidRegistryResponse

Messages are lower case with no trailing period.
"""

from __future__ import annotations

__all__ = [
    "BlobNotFound",
    "BlobUnknown",
    "BuildContextError",
    "BuildError",
    "BuildStepFailed",
    "CommandNotStarted",
    "ContainerConfigError",
    "ContainerError",
    "ContainerTimeout",
    "DigestMismatch",
    "DockerfileError",
    "DockerfileSyntaxError",
    "ImageInUse",
    "ImageNotFound",
    "InvalidReference",
    "InvalidRegistryResponse",
    "LayercakeError",
    "ManifestUnknown",
    "RegistryDenied",
    "RegistryError",
    "RegistryUnauthorized",
    "RuntimeUnavailable",
    "StoreCorrupted",
    "StoreError",
    "TooManyRequests",
    "UnsafeArchiveEntry",
]


class LayercakeError(Exception):
    """Base class of every error layercake raises on purpose."""


class DockerfileError(LayercakeError, ValueError):
    """A Dockerfile that cannot be used, with where the problem is.

    Attributes:
        path: the Dockerfile's path, or ``None`` when it was given as text.
        line: 1-based line number, or ``None`` when not tied to a line.
        column: 1-based column, or ``None`` when not known.
        reason: the bare explanation, without the location.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.column = column
        super().__init__(reason)

    def __str__(self) -> str:
        where = self.path or "<dockerfile>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.reason}"


class DockerfileSyntaxError(DockerfileError):
    """The Dockerfile text does not follow the Dockerfile grammar."""


class StoreError(LayercakeError):
    """Something is wrong with the store or a blob in it.

    Attributes:
        digest: the digest involved, as ``sha256:<hex>`` text, or ``None``.
        path: the file system path involved, or ``None``.
    """

    def __init__(
        self, message: str, *, digest: str | None = None, path: str | None = None
    ) -> None:
        self.digest = digest
        self.path = path
        super().__init__(message)


class DigestMismatch(StoreError):
    """Content does not hash to the digest it was promised to have.

    Attributes:
        expected: the digest that was promised.
        actual: the digest the content really has.
    """

    def __init__(self, expected: str, actual: str, *, path: str | None = None) -> None:
        self.expected = expected
        self.actual = actual
        message = f"digest mismatch: expected {expected}, got {actual}"
        if path is not None:
            message += f" ({path})"
        super().__init__(message, digest=expected, path=path)


class BlobNotFound(StoreError, LookupError):
    """A blob the store should hold is missing."""


class UnsafeArchiveEntry(StoreError):
    """A tar entry would write outside its target or is not allowed there.

    Attributes:
        entry: the entry's name as it appears in the archive.
    """

    def __init__(self, entry: str, reason: str, *, path: str | None = None) -> None:
        self.entry = entry
        self.reason = reason
        super().__init__(f"unsafe archive entry {entry!r}: {reason}", path=path)


class StoreCorrupted(StoreError):
    """A store file exists but cannot be read as what it should be."""


class InvalidReference(LayercakeError, ValueError):
    """An image reference that does not follow Docker's reference grammar.

    Attributes:
        reference: the text that was given.
    """

    def __init__(self, reference: str, reason: str) -> None:
        self.reference = reference
        self.reason = reason
        super().__init__(f"invalid reference {reference!r}: {reason}")


class ImageNotFound(LayercakeError, LookupError):
    """No image with this reference or id is in the store.

    Attributes:
        reference: the reference or id that was looked up.
    """

    def __init__(self, reference: str) -> None:
        self.reference = reference
        super().__init__(f"image not found: {reference}")


class BuildError(LayercakeError):
    """A build could not finish.

    The message starts with the step and its instruction once they are
    known: ``step 3 (COPY a.txt /): ...``.

    Attributes:
        step: the 1-based step number, or ``None`` before any step ran.
        instruction: the instruction's text, or ``None``.
        reason: the bare explanation, without the step.
    """

    def __init__(
        self,
        message: str,
        *,
        step: int | None = None,
        instruction: str | None = None,
    ) -> None:
        self.reason = message
        self.step = step
        self.instruction = instruction
        super().__init__(message)

    def __str__(self) -> str:
        if self.step is None:
            return self.reason
        if self.instruction is None:
            return f"step {self.step}: {self.reason}"
        return f"step {self.step} ({self.instruction}): {self.reason}"


class BuildContextError(BuildError):
    """A COPY or ADD source is missing or lies outside the build context.

    Attributes:
        source: the source path as written in the Dockerfile.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str,
        step: int | None = None,
        instruction: str | None = None,
    ) -> None:
        self.source = source
        super().__init__(message, step=step, instruction=instruction)


class BuildStepFailed(BuildError):
    """A RUN step's command exited with a non-zero code.

    Attributes:
        exit_code: the command's exit code.
        output_tail: the last lines of its combined output.
    """

    def __init__(
        self,
        *,
        step: int,
        instruction: str,
        exit_code: int,
        output_tail: str,
    ) -> None:
        self.exit_code = exit_code
        self.output_tail = output_tail
        message = f"the command returned a non-zero code: {exit_code}"
        if output_tail:
            message += "\n" + output_tail
        super().__init__(message, step=step, instruction=instruction)


class RuntimeUnavailable(LayercakeError):
    """The kernel or the user's rights do not allow running containers here.

    Attributes:
        missing: what is missing, e.g. ``"overlay filesystem"``.
        fix: what would make it available.
    """

    def __init__(self, missing: str, fix: str) -> None:
        self.missing = missing
        self.fix = fix
        super().__init__(f"cannot run containers: {missing} ({fix})")


class ContainerError(LayercakeError):
    """A container could not be created, started or managed.

    Attributes:
        container_id: the container's id, or ``None`` before it had one.
    """

    def __init__(self, message: str, *, container_id: str | None = None) -> None:
        self.container_id = container_id
        super().__init__(message)


class ContainerConfigError(ContainerError, ValueError):
    """The run configuration cannot work, e.g. an image with no command."""


class ContainerTimeout(ContainerError, TimeoutError):
    """A container did not end within the time it was given.

    Attributes:
        timeout: the time allowed, in seconds.
    """

    def __init__(
        self, message: str, *, timeout: float, container_id: str | None = None
    ) -> None:
        self.timeout = timeout
        super().__init__(message, container_id=container_id)


class CommandNotStarted(ContainerError):
    """The container's command could not be executed, so it never ran.

    The start (or exec) fails, as Docker's does: a command not found exits
    127, one found but not executable (no x bit, a directory, a bad binary
    or interpreter) 126.

    Attributes:
        command: the command as given (its first argument).
        reason: why it could not be executed, as the system said it.
        exit_code: 127 or 126, the code the container records.
    """

    def __init__(
        self,
        message: str,
        *,
        command: str,
        reason: str,
        exit_code: int,
        container_id: str | None = None,
    ) -> None:
        self.command = command
        self.reason = reason
        self.exit_code = exit_code
        super().__init__(message, container_id=container_id)


class RegistryError(LayercakeError):
    """A registry refused a request, failed, or sent something unusable.

    Attributes:
        url: the URL of the request, without its query string (which may
            hold signed credentials), or ``None``.
        status: the HTTP status, or ``None`` when there was no response.
        code: the registry's error code (``MANIFEST_UNKNOWN``...), or ``None``.
        reference: the image reference being pulled or pushed, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        code: str | None = None,
        reference: str | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.code = code
        self.reference = reference
        super().__init__(message)


class RegistryUnauthorized(RegistryError, PermissionError):
    """The registry wants credentials, or rejected the ones given."""


class RegistryDenied(RegistryError, PermissionError):
    """The credentials were accepted but do not allow this access."""


class ManifestUnknown(RegistryError, LookupError):
    """The registry has no manifest with this tag or digest."""


class BlobUnknown(RegistryError, LookupError):
    """The registry has no blob with this digest."""


class TooManyRequests(RegistryError):
    """The registry kept rate-limiting the request after every retry."""


class InvalidRegistryResponse(RegistryError):
    """The registry sent content that is malformed, too big or not as promised.

    Nothing from such a response is stored.
    """


class ImageInUse(StoreError):
    """An image cannot be removed: containers use it or it has several tags.

    Attributes:
        reference: the reference or id that was to be removed.
        container_ids: the containers that use the image (may be empty).
    """

    def __init__(
        self, message: str, *, reference: str, container_ids: tuple[str, ...] = ()
    ) -> None:
        self.reference = reference
        self.container_ids = container_ids
        super().__init__(message)
