"""Property tests: JSON and layer round trips over generated values."""

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from layer_samples import set_mtimes, snapshot

from layercake.store import (
    ContainerConfig,
    Digest,
    History,
    ImageConfig,
    RootFS,
    StoreDirectory,
    from_json,
    to_json,
)

text = st.text(max_size=12)
strings = st.lists(text, max_size=3).map(tuple)
digests = st.binary(max_size=8).map(Digest.of_bytes)

configs = st.builds(
    ImageConfig,
    architecture=text,
    os=text,
    config=st.builds(
        ContainerConfig,
        user=text,
        env=strings,
        entrypoint=st.none() | strings,
        cmd=st.none() | strings,
        working_dir=text,
        labels=st.dictionaries(text, text, max_size=3),
        exposed_ports=st.dictionaries(text, st.just({}), max_size=2),
        shell=st.none() | strings,
        on_build=strings,
    ),
    rootfs=st.builds(RootFS, st.lists(digests, max_size=3).map(tuple)),
    history=st.lists(
        st.builds(
            History, st.none() | text, st.none() | text, empty_layer=st.booleans()
        ),
        max_size=2,
    ).map(tuple),
    created=st.none() | text,
)


@given(configs)
def test_any_config_survives_json(config: ImageConfig) -> None:
    """Every image config parses back from its JSON to an equal value."""
    data = to_json(config)
    assert from_json(ImageConfig, data) == config
    assert to_json(from_json(ImageConfig, data)) == data


names = st.text(alphabet="abcdefgh._-", min_size=1, max_size=8).filter(
    lambda n: n not in (".", "..") and not n.startswith(".wh.")
)
trees = st.dictionaries(
    st.lists(names, min_size=1, max_size=3).map(tuple),
    st.tuples(st.binary(max_size=600), st.sampled_from([0o600, 0o644, 0o755, 0o4711])),
    max_size=8,
)


def _write_tree(root: Path, files: dict[tuple[str, ...], tuple[bytes, int]]) -> None:
    root.mkdir()
    for parts, (content, mode) in files.items():
        path = root.joinpath(*parts)
        if any(p.is_file() for p in path.parents if root in p.parents):
            continue
        if path.is_dir():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
    set_mtimes(root)


@settings(max_examples=30, deadline=None)
@given(trees)
def test_any_tree_survives_pack_and_unpack(
    files: dict[tuple[str, ...], tuple[bytes, int]],
) -> None:
    """A generated tree packs and unpacks to the same names, modes and bytes."""
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "tree"
        _write_tree(tree, files)
        store = StoreDirectory(Path(scratch) / "store")
        layer = store.write_layer(tree)
        assert snapshot(store.unpacked_layer(layer, layer.digest)) == snapshot(tree)
