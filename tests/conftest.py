"""Fixtures shared by the whole suite: stores, the busybox base image, tools.

Tests that need namespaces, overlayfs or an outside tool skip with the reason
when it is missing, unless LAYERCAKE_REQUIRE_RUNTIME=1 (as in CI), where a
missing capability fails the test instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.unprivileged import Unavailable, Unprivileged
from tests.unprivileged import prepare as prepare_unprivileged

import layercake
from layercake.errors import RuntimeUnavailable

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def missing(reason: str) -> None:
    """Skip for a missing capability, or fail when the run requires it."""
    if os.environ.get("LAYERCAKE_REQUIRE_RUNTIME") == "1":
        pytest.fail(f"required but missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def container_runtime() -> None:
    """Ensure this machine can run containers (namespaces and overlayfs)."""
    from layercake import runtime

    try:
        runtime.require()
    except RuntimeUnavailable as error:
        missing(str(error))


@pytest.fixture
def tool():
    """Return the path of an outside tool (skopeo, umoci...), or skip/fail."""

    def find(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            missing(f"{name} is not installed")
        return path

    return find


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> Path:
    """A busybox rootfs tarball made the way the official image's is."""
    if not os.access("/bin/busybox", os.X_OK):
        missing("/bin/busybox is missing (install Debian's busybox-static)")
    output = tmp_path_factory.mktemp("busybox") / "rootfs.tar"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/make_busybox_rootfs.py"), str(output)],
        check=True,
        capture_output=True,
    )
    return output


@pytest.fixture
def store(tmp_path: Path) -> layercake.Store:
    """An empty store in a temporary directory."""
    return layercake.Store(tmp_path / "store")


@pytest.fixture
def cli(store: layercake.Store) -> Iterator[Callable[..., int]]:
    """Run the CLI on the test's store in this process; return its exit code.

    Every container is removed at the end, so a test that fails half-way
    leaves no detached container running. A module may define its own.
    """
    from layercake.cli import main

    def run(*args: str) -> int:
        return main(["--store", str(store.path), *args])

    yield run
    for container in store.containers(all=True):
        container.remove(force=True)


def remove_containers_and_networks(store: layercake.Store) -> None:
    """Remove every container and network of ``store``, unreadable ones too."""
    for container in store.containers(all=True):
        container.remove(force=True)
    for network in store.networks():
        store.remove_network(network.name)
    for name in store.unreadable_networks():
        store.remove_network(name)


@pytest.fixture
def networks(store: layercake.Store) -> Iterator[layercake.Store]:
    """The store; its containers and networks are removed after the test."""
    yield store
    remove_containers_and_networks(store)


def busybox_context(directory: Path, rootfs: Path) -> Path:
    """Lay out examples/busybox with the tarball in ``directory``."""
    shutil.copytree(EXAMPLES / "busybox", directory, dirs_exist_ok=True)
    shutil.copyfile(rootfs, directory / "rootfs.tar")
    return directory


@pytest.fixture
def busybox(
    store: layercake.Store, busybox_rootfs: Path, tmp_path: Path
) -> layercake.Image:
    """The busybox base image, built into ``store`` and tagged busybox:latest."""
    context = busybox_context(tmp_path / "busybox-context", busybox_rootfs)
    return layercake.Builder(store).build(context, tag="busybox:latest")


def _write_context(directory: Path, dockerfile: str, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    for name, content in files.items():
        path = directory / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return directory


@pytest.fixture
def write_context():
    """Return a function that writes a build context: a Dockerfile and files.

    Files are keyword arguments; ``__`` in a name stands for ``/``.
    """
    return _write_context


@pytest.fixture
def http_server(tmp_path: Path):
    """Serve a temporary directory over HTTP on 127.0.0.1; yield (dir, base URL).

    The server thread handles requests until the test ends, then stops.
    """
    import functools
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def unprivileged() -> Iterator[Unprivileged]:
    """The CI user (``layercake-ci``) with a copy of the tree it can run.

    Skipped when the suite itself runs unprivileged (switching users takes
    root); a missing user, tool or interpreter fails under
    LAYERCAKE_REQUIRE_RUNTIME=1.
    """
    if os.geteuid() != 0:
        pytest.skip("switching to the CI user takes root")
    try:
        prepared = prepare_unprivileged()
    except Unavailable as error:
        missing(str(error))
    try:
        yield prepared
    finally:
        shutil.rmtree(prepared.base, ignore_errors=True)


@pytest.fixture(scope="session")
def nobody() -> Iterator[Unprivileged]:
    """User ``nobody`` (no subordinate ids) with a copy of the tree it can run."""
    if os.geteuid() != 0:
        pytest.skip("switching to another user takes root")
    try:
        prepared = prepare_unprivileged("nobody", subordinate_ids=False)
    except Unavailable as error:
        missing(str(error))
    try:
        yield prepared
    finally:
        shutil.rmtree(prepared.base, ignore_errors=True)
