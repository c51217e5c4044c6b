"""Write the merged file system of stacked layers as one tar stream.

The layers are overlayfs lower directories, top-most first. A path's
version is the top-most one; a whiteout (0:0 character device) hides it
and everything below, and an opaque directory hides the lower layers'
copies of its contents, as overlayfs itself resolves them.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path

from ._atomic import output_file
from ._pack import _info, _is_opaque, _Packer, _TarStream, _xattrs

__all__ = ["export_layers"]

_BLOCK = tarfile.BLOCKSIZE


def export_layers(layers: Sequence[Path], path: Path) -> None:
    """Write the merged tree of ``layers`` (top-most first) to the tar ``path``.

    The file appears only once complete. Whiteouts and opaque directories
    are applied, so the tar holds exactly the files a container would see.

    Raises:
        StoreError: the tar cannot be written, or a file changed while read.
    """
    with output_file(Path(path).absolute(), buffering=1 << 20) as out:
        packer = _MergedPacker(_TarStream(out))
        packer.merge([os.fspath(layer) for layer in layers], "")
        packer.finish()


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class _MergedPacker(_Packer):
    def merge(self, tops: list[str], prefix: str) -> None:
        names: set[str] = set()
        for top in tops:
            names.update(os.listdir(top))
        for name in sorted(names):
            self._entry(tops, name, prefix)

    def _entry(self, tops: list[str], name: str, prefix: str) -> None:
        found: tuple[str, os.stat_result] | None = None
        visible: list[str] = []
        for top in tops:
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if found is None:
                if _is_whiteout(st):
                    return
                found = (path, st)
            # A non-directory (file, whiteout) hides every lower copy.
            if not stat.S_ISDIR(st.st_mode):
                break
            visible.append(path)
            if _is_opaque(path):
                break
        if found is None:
            return

        path, st = found
        rel = prefix + name
        if stat.S_ISDIR(st.st_mode):
            self._header(_info(rel, st, tarfile.DIRTYPE), _xattrs(path))
            self.merge(visible, rel + "/")
        else:
            self._other(path, rel, st)
