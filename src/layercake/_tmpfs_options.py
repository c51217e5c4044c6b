"""``docker run --tmpfs TARGET[:OPTIONS]``: the options as a TmpfsMount and
back.

The options docker honours are read: ``ro``/``rw``, ``noexec``/``exec``,
``nosuid``/``suid``, ``nodev``/``dev``, ``size=``, ``mode=`` (octal),
``uid=`` and ``gid=``; anything else is an error rather than ignored. Unset
flags keep docker's default, ``rw,noexec,nosuid,nodev``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from layercake._sizes import parse_size
from layercake.errors import ContainerConfigError
from layercake.runtime import TmpfsMount

if TYPE_CHECKING:
    from layercake._container_state import ContainerRecord

__all__ = [
    "parse_tmpfs",
    "recorded_tmpfs",
    "tmpfs_mounts_of",
    "tmpfs_options",
    "with_options",
]

# Each flag word: the TmpfsMount field it sets, and to what.
_FLAGS = {
    "ro": ("read_only", True),
    "rw": ("read_only", False),
    "noexec": ("noexec", True),
    "exec": ("noexec", False),
    "nosuid": ("nosuid", True),
    "suid": ("nosuid", False),
    "nodev": ("nodev", True),
    "dev": ("nodev", False),
}


def parse_tmpfs(item: str) -> TmpfsMount:
    """The mount that ``--tmpfs item`` asks for.

    Raises:
        ContainerConfigError: an option is unknown or its value is not valid.
    """
    target, _, text = item.partition(":")
    fields: dict[str, object] = {}
    for option in filter(None, text.split(",")):
        name, has_value, value = option.partition("=")
        if not has_value and name in _FLAGS:
            field, setting = _FLAGS[name]
            fields[field] = setting
        elif has_value and name in ("size", "mode", "uid", "gid"):
            fields[name] = _value(item, name, value)
        else:
            raise ContainerConfigError(f"invalid tmpfs option {option!r} in {item!r}")
    return TmpfsMount(target, **fields)  # type: ignore[arg-type]


def tmpfs_options(mount: TmpfsMount) -> str:
    """The options of ``mount`` in ``--tmpfs`` form (``rw,noexec,...,mode=1777``)."""
    words = ["ro" if mount.read_only else "rw"]
    words += [
        name if on else off
        for name, off, on in (
            ("noexec", "exec", mount.noexec),
            ("nosuid", "suid", mount.nosuid),
            ("nodev", "dev", mount.nodev),
        )
    ]
    words.append(f"mode={mount.mode:o}")
    words += [f"size={mount.size}"] if mount.size else []
    words += [f"uid={mount.uid}"] if mount.uid is not None else []
    words += [f"gid={mount.gid}"] if mount.gid is not None else []
    return ",".join(words)


def _value(item: str, name: str, text: str) -> int:
    number: int | None
    if name == "size":
        number = parse_size(text)
    else:
        try:
            number = int(text, 8 if name == "mode" else 10)
        except ValueError:
            number = None
    if number is None or number < 0:
        raise ContainerConfigError(f"invalid tmpfs {name} {text!r} in {item!r}")
    return number


def with_options(mount: TmpfsMount, text: str) -> TmpfsMount:
    """``mount`` with the options of ``text`` (as :func:`tmpfs_options` wrote
    them) applied.

    Raises:
        ContainerConfigError: ``text`` holds an option that is not valid.
    """
    parsed = parse_tmpfs(f"{mount.target}:{text}")
    return attrs.evolve(parsed, size=mount.size, mode=mount.mode)


def recorded_tmpfs(record: ContainerRecord) -> tuple[TmpfsMount, ...]:
    """The tmpfs mounts ``record`` holds, each with its recorded options."""
    # A record from before tmpfs_options has docker's default options.
    options = record.tmpfs_options or ("",) * len(record.tmpfs)
    return tuple(
        with_options(TmpfsMount(*mount), text)
        for mount, text in zip(record.tmpfs, options, strict=True)
    )


def tmpfs_mounts_of(
    value: Sequence[TmpfsMount | str] | None,
) -> tuple[TmpfsMount, ...]:
    """The mounts a caller gave, each a TmpfsMount or ``TARGET[:OPTIONS]``.

    Raises:
        ContainerConfigError: a text that :func:`parse_tmpfs` refuses.
    """
    # docker run --tmpfs /run:size=65536,mode=1777,noexec
    return tuple(
        item if isinstance(item, TmpfsMount) else parse_tmpfs(item)
        for item in value or ()
    )
