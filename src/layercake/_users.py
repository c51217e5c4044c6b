"""Resolve a Docker ``User`` value against an image's passwd and group files.

Docker accepts ``name``, ``uid``, ``name:group``, ``uid:gid`` and the mixed
forms; names are looked up in the image's own ``/etc/passwd`` and
``/etc/group`` (never the host's), numbers need not exist there.
"""

from __future__ import annotations

import attrs

from layercake._layer_stack import LayerStack
from layercake.errors import ContainerConfigError

__all__ = ["ResolvedUser", "resolve_user"]


@attrs.frozen
class ResolvedUser:
    """The ids a container process runs with, and the home directory."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


@attrs.frozen
class _PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@attrs.frozen
class _GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _fields(text: str | None, count: int) -> list[list[str]]:
    rows = []
    for line in (text or "").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) >= count and fields[2].isdigit():
            rows.append(fields)
    return rows


def _passwd(stack: LayerStack) -> list[_PasswdEntry]:
    return [
        _PasswdEntry(f[0], int(f[2]), int(f[3]) if f[3].isdigit() else 0, f[5])
        for f in _fields(stack.read_text("/etc/passwd"), 7)
    ]


def _groups(stack: LayerStack) -> list[_GroupEntry]:
    return [
        _GroupEntry(f[0], int(f[2]), tuple(m for m in f[3].split(",") if m))
        for f in _fields(stack.read_text("/etc/group"), 4)
    ]


def _find_user(spec: str, entries: list[_PasswdEntry]) -> _PasswdEntry | None:
    for entry in entries:
        if entry.name == spec or (spec.isdigit() and entry.uid == int(spec)):
            return entry
    return None


def _find_group(spec: str, groups: list[_GroupEntry]) -> int:
    for group in groups:
        if group.name == spec or (spec.isdigit() and group.gid == int(spec)):
            return group.gid
    if spec.isdigit():
        return int(spec)
    raise ContainerConfigError(
        f"unable to find group {spec}: no matching entries in group file"
    )


def resolve_user(user: str, stack: LayerStack) -> ResolvedUser:
    """Turn a ``User`` value into ids, as Docker does.

    Raises:
        ContainerConfigError: a user or group name the image does not know.
    """
    user_part, _, group_part = (user or "0").partition(":")
    user_part = user_part or "0"
    entry = _find_user(user_part, _passwd(stack))

    if entry is None and not user_part.isdigit():
        raise ContainerConfigError(
            f"unable to find user {user_part}: no matching entries in passwd file"
        )
    uid = entry.uid if entry else int(user_part)
    home = entry.home if entry else "/"
    groups = _groups(stack)

    if group_part:
        return ResolvedUser(uid, _find_group(group_part, groups), (), home)

    gid = entry.gid if entry else 0
    extra = tuple(
        group.gid
        for group in groups
        if entry is not None and entry.name in group.members and group.gid != gid
    )
    return ResolvedUser(uid, gid, extra, home)
