"""Fixtures for the registry tests: a real registry server and small HTTP servers.

The registry is Debian's ``docker-registry`` (the CNCF distribution server),
started on 127.0.0.1 with a free port and its storage under tmp_path, and
stopped by pid at the end of the test. The htpasswd variant lets the registry
provision its own bcrypt htpasswd file (user ``docker``, random password it
logs once), so the tests need no bcrypt implementation of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from registry_servers import (
    Handler,
    QuietServer,
    RunningRegistry,
    make_certificate,
    start_registry,
)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A registry without authentication on 127.0.0.1."""
    yield from start_registry(tmp_path / "registry", htpasswd=False)


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[RunningRegistry, Path]]:
    """A registry serving HTTPS with a certificate from a throwaway CA.

    Yields the registry and the CA certificate's path.
    """
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_certificate(certs)
    for running in start_registry(
        tmp_path / "tls-registry", htpasswd=False, tls=(cert, key)
    ):
        yield running, ca


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A registry that requires HTTP Basic auth against a bcrypt htpasswd file."""
    yield from start_registry(tmp_path / "auth-registry", htpasswd=True)


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], str]]:
    """Return a function that serves a handler class on 127.0.0.1.

    It returns ``127.0.0.1:PORT``; every server stops when the test ends.
    """
    servers: list[tuple[QuietServer, threading.Thread]] = []

    def start(handler: Handler) -> str:
        server = QuietServer(("127.0.0.1", 0), handler)
        server.timeout = 5
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $DOCKER_CONFIG at an empty folder, so no real credentials are read."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder / "config.json"
