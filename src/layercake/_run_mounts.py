"""``RUN --mount``: what a build step sees beside the image's files.

Each mount becomes a bind mount of a host path that never lands in the
step's layer (the runtime removes the mount points it had to create):

- ``type=bind`` (the default): a path of the build context or, with
  ``from=``, of a stage or image; read-only unless ``rw``, and then writes
  go to a throwaway copy, as in BuildKit.
- ``type=cache``: a directory kept in the store between builds, by ``id``
  (default: the target); ``sharing=locked`` or ``private`` holds a lock for
  the step.
- ``type=tmpfs``: a fresh tmpfs (``size`` in bytes, k, m or g), gone after
  the step.
- ``type=secret``: a file given to the build by id, mounted read-only at
  ``/run/secrets/<id>`` unless ``target`` says otherwise, or put in the
  environment variable ``env`` names; never cached.

A key a type does not take is an error, as in BuildKit.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import attrs

from layercake._sizes import parse_size
from layercake.errors import BuildError
from layercake.runtime import BindMount, TmpfsMount

__all__ = [
    "MountRequest",
    "parse_mount",
    "prepared_mounts",
    "secret_env",
    "tmpfs_mounts",
]

_TYPES = ("bind", "cache", "tmpfs", "secret")
_BOOLEAN_KEYS = ("rw", "readwrite", "ro", "readonly", "required")
# The keys each type takes besides type and target, as BuildKit has them.
_KEYS = {
    "bind": {"source", "from", "rw", "readwrite", "ro", "readonly"},
    "cache": {
        "id",
        "sharing",
        "from",
        "source",
        "mode",
        "uid",
        "gid",
        "ro",
        "readonly",
    },
    "tmpfs": {"size"},
    "secret": {"id", "source", "required", "mode", "uid", "gid", "env"},
}


@attrs.frozen
class MountRequest:
    """One ``--mount`` flag, parsed."""

    type: str
    target: str
    options: Mapping[str, str]

    def describe(self) -> str:
        """A stable text of the mount for the cache key."""
        options = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.type}:{self.target}:{options}"


def _error(flag: str, reason: str) -> BuildError:
    return BuildError(f"invalid RUN --mount={flag}: {reason}")


def parse_mount(flag: str) -> MountRequest:
    """Parse one ``--mount`` value (``type=cache,target=/root/.cache``).

    Raises:
        BuildError: an unknown type or key, or a missing target.
    """
    options: dict[str, str] = {}
    for field in flag.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep and key in _BOOLEAN_KEYS:
            value = "true"
        elif not sep:
            raise _error(flag, f"{field!r} is not KEY=VALUE")
        options[
            {"dst": "target", "destination": "target", "src": "source"}.get(key, key)
        ] = value
    kind = options.pop("type", "bind")
    if kind not in _TYPES:
        raise _error(
            flag, f"mount type {kind!r} is not supported ({', '.join(_TYPES)})"
        )
    for key in options:
        if key not in _KEYS[kind] and key != "target":
            raise _error(flag, f"unexpected key {key!r} for a {kind} mount")
    if options.get("sharing", "shared") not in ("shared", "private", "locked"):
        raise _error(flag, "sharing must be shared, private or locked")
    target = options.pop("target", "")
    if kind == "secret" and not target and "env" in options:
        # A secret given as an environment variable needs no file.
        return MountRequest(kind, "", options)
    if kind == "secret" and not target:
        target = f"/run/secrets/{options.get('id') or options.get('source', '')}"
    if not target.startswith("/"):
        raise _error(flag, "a target with an absolute path is required")
    return MountRequest(kind, target, options)


def tmpfs_mounts(requests: list[MountRequest]) -> tuple[TmpfsMount, ...]:
    """The tmpfs file systems ``--mount=type=tmpfs`` asks for.

    Raises:
        BuildError: a ``size`` that is not a number of bytes (k, m, g allowed).
    """
    mounts = []
    for request in requests:
        if request.type != "tmpfs":
            continue
        text = request.options.get("size", "0")
        size = parse_size(text)
        if size is None:
            raise BuildError(f"invalid RUN --mount tmpfs size {text!r}")
        # BuildKit's RUN tmpfs may hold programs to run: not noexec.
        mounts.append(TmpfsMount(request.target, size=size, noexec=False))
    return tuple(mounts)


def secret_env(
    requests: list[MountRequest], secrets: Mapping[str, Path]
) -> dict[str, str]:
    """The environment variables ``--mount=type=secret,env=NAME`` asks for."""
    env = {}
    for request in requests:
        name = request.options.get("env")
        secret = secrets.get(
            request.options.get("id") or request.options.get("source") or ""
        )
        if request.type == "secret" and name and secret is not None:
            env[name] = secret.read_text(encoding="utf-8")
    return env


def _true(options: Mapping[str, str], *keys: str) -> bool:
    return any(options.get(key, "false").lower() in ("true", "1") for key in keys)


def _owned_dir(path: Path, options: Mapping[str, str]) -> Path:
    if not path.exists():
        path.mkdir(parents=True)
        os.chmod(path, int(options.get("mode", "755"), 8))
        os.chown(path, int(options.get("uid", "0")), int(options.get("gid", "0")))
    return path


@contextmanager
def prepared_mounts(
    requests: list[MountRequest],
    *,
    scratch: Path,
    cache_root: Path,
    source_path: Callable[[MountRequest], Path],
    secrets: Mapping[str, Path],
) -> Iterator[tuple[BindMount, ...]]:
    """Make host paths for the mounts; clean throwaway ones up afterwards.

    ``source_path`` resolves a bind mount's source (context or ``from=``).

    Raises:
        BuildError: a required secret that was not given.
    """
    mounts: list[BindMount] = []
    with ExitStack() as cleanup:
        for index, request in enumerate(requests):
            options = request.options
            if request.type == "bind":
                source = source_path(request)
                if _true(options, "rw", "readwrite"):
                    copy = scratch / f"bind-{index}"
                    if source.is_dir():
                        shutil.copytree(source, copy, symlinks=True)
                    else:
                        shutil.copy2(source, copy)
                    source = copy
                read_only = not _true(options, "rw", "readwrite")
                mounts.append(BindMount(str(source), request.target, read_only))
            elif request.type == "cache":
                key = options.get("id") or request.target
                directory = cache_root / hashlib.sha256(key.encode()).hexdigest()
                _owned_dir(directory, options)
                if options.get("sharing", "shared") in ("locked", "private"):
                    lock = cleanup.enter_context(open(f"{directory}.lock", "w"))
                    fcntl.flock(lock, fcntl.LOCK_EX)
                read_only = _true(options, "ro", "readonly")
                mounts.append(BindMount(str(directory), request.target, read_only))
            elif request.type == "tmpfs":
                continue  # a real tmpfs: see tmpfs_mounts()
            else:
                name = options.get("id") or options.get("source") or ""
                secret = secrets.get(name)
                if secret is None:
                    if _true(options, "required"):
                        raise BuildError(
                            f"secret {name!r} is required but was not given"
                        )
                    continue
                if not request.target:
                    continue
                # A private copy, so the mode and owner asked for do not touch
                # the caller's file (0400 root by default, as in BuildKit).
                copy = scratch / f"secret-{index}"
                shutil.copyfile(secret, copy)
                os.chmod(copy, int(options.get("mode", "0400"), 8))
                os.chown(
                    copy, int(options.get("uid", "0")), int(options.get("gid", "0"))
                )
                mounts.append(BindMount(str(copy), request.target, True))
        yield tuple(mounts)
