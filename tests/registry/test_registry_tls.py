"""HTTPS registries: certificates are verified, an extra CA can be trusted."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_servers import RunningRegistry, make_certificate, make_image

from layercake.errors import RegistryError
from layercake.store import StoreDirectory
from layercake.store._registry import pull, push
from layercake.store._registry._client import tls_context


def test_https_registry_with_extra_ca_round_trips(
    tmp_path: Path, tls_registry: tuple[RunningRegistry, Path]
) -> None:
    """With ca_file naming the registry's CA, push and pull work over TLS."""
    registry, ca = tls_registry
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, [{"etc/hello": b"hello\n"}])
    reference = f"{registry.host}/tests/tls:1"
    push(store, manifest, reference, insecure=False, ca_file=ca)

    pulled = pull(StoreDirectory(tmp_path / "b"), reference, insecure=False, ca_file=ca)
    assert pulled.digest == manifest.digest


def test_https_registry_with_unknown_ca_is_refused(
    tmp_path: Path, tls_registry: tuple[RunningRegistry, Path]
) -> None:
    """Without its CA the registry's certificate fails verification."""
    registry, _ = tls_registry
    with pytest.raises(RegistryError) as caught:
        pull(
            StoreDirectory(tmp_path / "b"),
            f"{registry.host}/tests/tls:1",
            insecure=False,
        )

    url = f"https://{registry.host}/v2/tests/tls/manifests/1"
    assert str(caught.value).startswith(
        f"manifest pull failed for {registry.host}/tests/tls:1: GET {url}: "
        "ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    )
    assert caught.value.url == url


def test_tls_contexts_are_shared_until_the_ca_file_changes(tmp_path: Path) -> None:
    """The same CA file gives the same context; a rewritten one a fresh context."""
    ca, _, _ = make_certificate(tmp_path)
    first = tls_context(ca)
    assert tls_context(str(ca)) is first
    assert tls_context() is tls_context(None)
    assert tls_context() is not first

    ca.write_bytes(ca.read_bytes() + b"\n")
    assert tls_context(ca) is not first
    with pytest.raises(FileNotFoundError):
        tls_context(tmp_path / "absent.pem")
