"""Which ids a rootless container's user namespace maps, and how it gets them.

An unprivileged user may map only its own uid and gid into a user
namespace: uid 0 inside is the user, and no other id exists there (the
single-id map). With a range of subordinate ids in ``/etc/subuid`` and
``/etc/subgid`` and the setuid helpers ``newuidmap`` and ``newgidmap``
(Debian package uidmap), uid 0 inside is the user and uids 1 to N are the
range, as podman maps them (the full map): image users, ``chown`` and files
owned by other ids then work inside.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil

import attrs

__all__ = ["IdMap", "id_map", "read_ranges"]

_SUBUID = "/etc/subuid"
_SUBGID = "/etc/subgid"
_OVERFLOW = 65534


@attrs.frozen
class IdMap:
    """The id map of a rootless container's user namespace.

    Attributes:
        uid_lines: ``(inside, outside, count)`` ranges of uids.
        gid_lines: the same for gids.
        newuidmap: path of the helper that writes a full uid map, or "" for
            the single-id map (written by the process itself).
        newgidmap: the same for gids.
        reason: for a single-id map, why the full map is not available.
    """

    uid_lines: tuple[tuple[int, int, int], ...]
    gid_lines: tuple[tuple[int, int, int], ...]
    newuidmap: str = ""
    newgidmap: str = ""
    reason: str = ""

    @property
    def full(self) -> bool:
        """Whether subordinate ids are mapped beside the user's own."""
        return bool(self.newuidmap)

    @property
    def size(self) -> int:
        """How many uids (0 to size - 1) exist inside."""
        return min(
            sum(count for _, _, count in self.uid_lines),
            sum(count for _, _, count in self.gid_lines),
        )

    def to_host_uid(self, uid: int) -> int | None:
        """The host uid that ``uid`` inside stands for, or None if unmapped."""
        return _translate(self.uid_lines, uid)

    def to_host_gid(self, gid: int) -> int | None:
        """The host gid that ``gid`` inside stands for, or None if unmapped."""
        return _translate(self.gid_lines, gid)

    def to_inside(self, uid: int, gid: int) -> tuple[int, int]:
        """The ids inside that host ``uid`` and ``gid`` stand for.

        An unmapped id is the overflow id 65534, as the kernel shows it.
        """
        inside_uid = _translate(tuple((o, i, c) for i, o, c in self.uid_lines), uid)
        inside_gid = _translate(tuple((o, i, c) for i, o, c in self.gid_lines), gid)
        return (
            _OVERFLOW if inside_uid is None else inside_uid,
            _OVERFLOW if inside_gid is None else inside_gid,
        )


def _translate(lines: tuple[tuple[int, int, int], ...], value: int) -> int | None:
    for inside, outside, count in lines:
        if inside <= value < inside + count:
            return outside + value - inside
    return None


def read_ranges(path: str, name: str, number: int) -> tuple[int, int] | None:
    """The first ``start:count`` range that ``path`` gives the user, if any.

    Entries name the user by login name or by number, as shadow's tools do.
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (name, str(number)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if count > 0:
            return start, count
    return None


@functools.cache
def id_map() -> IdMap:
    """The map this (unprivileged) process's containers get; asked once."""
    uid, gid = os.geteuid(), os.getegid()
    single = IdMap(uid_lines=((0, uid, 1),), gid_lines=((0, gid, 1),))
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    subuid = read_ranges(_SUBUID, name, uid)
    subgid = read_ranges(_SUBGID, name, uid)
    if subuid is None or subgid is None:
        return attrs.evolve(
            single,
            reason=f"user {name} has no subordinate id range in "
            f"{_SUBUID} and {_SUBGID}",
        )
    helpers = [shutil.which(tool) for tool in ("newuidmap", "newgidmap")]
    if helpers[0] is None or helpers[1] is None:
        return attrs.evolve(
            single,
            reason="newuidmap and newgidmap are not installed (Debian package uidmap)",
        )
    return IdMap(
        uid_lines=((0, uid, 1), (1, subuid[0], subuid[1])),
        gid_lines=((0, gid, 1), (1, subgid[0], subgid[1])),
        newuidmap=helpers[0],
        newgidmap=helpers[1],
    )
