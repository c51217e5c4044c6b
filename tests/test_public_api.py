"""The public surface: what `import layercake` offers, and nothing more."""

import layercake


def test_exported_names_are_exactly_the_public_api():
    """The package exports the public objects and the errors, sorted."""
    assert layercake.__all__ == [
        "BlobNotFound",
        "BlobUnknown",
        "BuildContextError",
        "BuildError",
        "BuildStepFailed",
        "Builder",
        "CommandNotStarted",
        "Container",
        "ContainerConfigError",
        "ContainerError",
        "ContainerState",
        "ContainerTimeout",
        "DigestMismatch",
        "DockerfileError",
        "DockerfileSyntaxError",
        "Image",
        "ImageInUse",
        "ImageNotFound",
        "InvalidReference",
        "InvalidRegistryResponse",
        "Layer",
        "LayercakeError",
        "ManifestUnknown",
        "Network",
        "RegistryDenied",
        "RegistryError",
        "RegistryUnauthorized",
        "RunResult",
        "RuntimeUnavailable",
        "Store",
        "StoreCorrupted",
        "StoreError",
        "TooManyRequests",
        "UnsafeArchiveEntry",
    ]
    assert all(hasattr(layercake, name) for name in layercake.__all__)


def test_every_error_derives_from_layercake_error():
    """One exception tree: every exported error is a LayercakeError."""
    errors = [
        getattr(layercake, name)
        for name in layercake.__all__
        if isinstance(getattr(layercake, name), type)
        and issubclass(getattr(layercake, name), BaseException)
    ]
    assert len(errors) == 26
    assert all(issubclass(error, layercake.LayercakeError) for error in errors)
