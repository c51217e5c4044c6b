"""Tests that umoci unpacks an image layercake built into the same tree we do."""

import os
import stat
import subprocess
from pathlib import Path

import layercake
from layercake.store import extract_tar

_DOCKERFILE = """\
FROM busybox
RUN mkdir -p /data/old/deep && echo a > /data/old/deep/a && echo k > /data/keep \\
 && ln -s keep /data/link && ln /data/keep /data/hard && chmod 4755 /data/keep
RUN rm /data/link /bin/ls && rm -rf /data/old && mkdir /data/old \\
 && echo b > /data/old/b && chown 7:8 /data/old/b && chmod 0600 /data/old/b
"""


def _tree(root: Path) -> list[tuple[str, str, int, int, str]]:
    """Describe every path: (name, mode, uid, gid, content or link target)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                content = "-> " + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = Path(path).read_bytes().hex()
            else:
                content = ""
            rel = os.path.relpath(path, root)
            found.append((rel, oct(st.st_mode), st.st_uid, st.st_gid, content))
    return found


def test_umoci_unpack_of_a_built_image_matches_our_export(
    busybox: layercake.Image,
    container_runtime: None,
    store: layercake.Store,
    tool,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """umoci's tree of a built image (whiteouts, opaque dir) equals Image.export's."""
    umoci = tool("umoci")
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(_DOCKERFILE)
    image = layercake.Builder(store).build(context, tag="built:1")

    bundle = tmp_path / "bundle"
    result = subprocess.run(
        [umoci, "unpack", "--image", f"{store.path}:built:1", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    image.export(tmp_path / "export.tar")
    with open(tmp_path / "export.tar", "rb") as stream:
        extract_tar(stream, tmp_path / "ours")

    theirs = _tree(bundle / "rootfs")
    ours = _tree(tmp_path / "ours")
    assert theirs == ours
    names = {entry[0]: entry for entry in ours}
    assert "bin/ls" not in names
    assert "data/link" not in names
    assert "data/old/deep" not in names
    assert names["data/old/b"] == ("data/old/b", "0o100600", 7, 8, b"b\n".hex())
    assert names["data/keep"] == ("data/keep", "0o104755", 0, 0, b"k\n".hex())
    assert (
        os.lstat(tmp_path / "ours" / "data" / "hard").st_ino
        == os.lstat(tmp_path / "ours" / "data" / "keep").st_ino
    )
