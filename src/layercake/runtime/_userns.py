"""Enter a new user namespace mapped as an :class:`IdMap` says.

The single-id map is written by the process itself. The full map must be
written from outside the namespace by the setuid helpers, so a helper
process is forked first, before ``unshare``, and runs ``newuidmap`` and
``newgidmap`` on the namespace once it exists.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import NoReturn

from . import _libc as libc
from ._idmap import IdMap, id_map

__all__ = ["as_mapped_root", "unshare_mapped"]

_GO = b"g"


def unshare_mapped(flags: int, idmap: IdMap) -> None:
    """Unshare a user namespace, plus ``flags``, and map its ids.

    Call only in a single-threaded, forked child: afterwards the process is
    root in the new namespace. Namespaces that ``flags`` names are owned by
    the new user namespace.

    Raises:
        OSError: unshare failed or the map could not be written (the message
            carries the helper's own complaint).
    """
    if not idmap.full:
        libc.unshare(libc.CLONE_NEWUSER | flags)
        _write_map("setgroups", b"deny")
        _write_map("gid_map", _lines(idmap.gid_lines))
        _write_map("uid_map", _lines(idmap.uid_lines))
        return

    me = os.getpid()
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        os.close(go_w)
        os.close(out_r)
        _map_from_outside(me, idmap, go_r, out_w)
    os.close(go_r)
    os.close(out_w)
    unshared = False
    try:
        libc.unshare(libc.CLONE_NEWUSER | flags)
        unshared = True
        os.write(go_w, _GO)
    finally:
        # Without the go byte the helper gives up and ends.
        os.close(go_w)
        with open(out_r, "rb") as out:
            complaint = out.read().decode(errors="replace").strip()
        _, status = os.waitpid(helper, 0)
    if unshared and os.waitstatus_to_exitcode(status) != 0:
        raise OSError(errno.EPERM, f"map user ids: {complaint or 'newuidmap failed'}")


def _map_from_outside(target: int, idmap: IdMap, go_r: int, out_w: int) -> NoReturn:
    code = 1
    try:
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        if os.read(go_r, 1) == _GO:
            for tool, lines in (
                (idmap.newuidmap, idmap.uid_lines),
                (idmap.newgidmap, idmap.gid_lines),
            ):
                argv = [tool, str(target)]
                argv += [str(n) for line in lines for n in line]
                pid = os.fork()
                if pid == 0:
                    try:
                        os.execv(tool, argv)
                    finally:
                        os._exit(127)
                _, status = os.waitpid(pid, 0)
                if os.waitstatus_to_exitcode(status) != 0:
                    break
            else:
                code = 0
    finally:
        os._exit(code)


def _lines(lines: tuple[tuple[int, int, int], ...]) -> bytes:
    return b"".join(b"%d %d %d\n" % line for line in lines)


def _write_map(name: str, data: bytes) -> None:
    fd = os.open(f"/proc/self/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def as_mapped_root(work: Callable[[], bytes | None]) -> bytes:
    """Run ``work`` in a forked child that is root of a mapped user namespace.

    As an unprivileged user with a full id map, files can then be given the
    owners an image names (they land on disk as subordinate ids), and trees
    holding such files read or removed. As root, ``work`` runs in a forked
    child without a new namespace. Returns the bytes ``work`` returned.

    Raises:
        OSError: ``work`` failed (its errno and message) or the namespace
            could not be entered.
    """
    out_r, out_w = os.pipe()
    error_r, error_w = os.pipe()
    child = os.fork()
    if child == 0:
        _run_mapped(work, out_r, out_w, error_r, error_w)
    os.close(out_w)
    os.close(error_w)
    with open(out_r, "rb", buffering=0) as out:
        result = out.readall()
    with open(error_r, "rb", buffering=0) as errors:
        report = errors.readall().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    if report or os.waitstatus_to_exitcode(status) != 0:
        number, _, message = report.partition(" ")
        raise OSError(int(number) if number.isdigit() else errno.EIO, message)
    return result


def _run_mapped(
    work: Callable[[], bytes | None], out_r: int, out_w: int, error_r: int, error_w: int
) -> NoReturn:
    code = 0
    try:
        os.close(out_r)
        os.close(error_r)
        if os.geteuid() != 0:
            unshare_mapped(0, id_map())
        result = work() or b""
        view = memoryview(result)
        while view:
            view = view[os.write(out_w, view) :]
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        code = 1
        number = getattr(error, "errno", None) or errno.EIO
        text = str(error)
        if isinstance(error, OSError) and error.strerror:
            where = f"{error.filename}: " if error.filename else ""
            text = where + error.strerror
        try:
            os.write(error_w, b"%d " % number + text.encode(errors="replace"))
        except OSError:
            pass
    finally:
        os._exit(code)
