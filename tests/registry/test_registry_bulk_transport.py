"""Blob bodies read with readinto: whole, over kept-alive connections, or refused."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx
import pytest
from registry_servers import QuietHandler

from layercake.store import (
    ContainerConfig,
    Descriptor,
    Digest,
    ImageConfig,
    Manifest,
    MediaType,
    RootFS,
    StoreDirectory,
    to_json,
)
from layercake.store._registry import pull
from layercake.store._registry._bulk_transport import BulkBody, BulkTransport

BODY = os.urandom(3 * 1024 * 1024 + 17)


Routes = dict[str, tuple[int, bytes, dict[str, str]]]


def image_routes(layer: bytes) -> Routes:
    """Manifest and config of image ``big/img:1`` whose one layer is ``layer``."""
    layer_digest = Digest.of_bytes(layer)
    config = to_json(
        ImageConfig(
            architecture="amd64",
            os="linux",
            config=ContainerConfig(),
            rootfs=RootFS(diff_ids=[layer_digest]),
        )
    )
    config_digest = Digest.of_bytes(config)
    manifest = to_json(
        Manifest(
            config=Descriptor(MediaType.OCI_CONFIG, config_digest, len(config)),
            layers=[Descriptor(MediaType.OCI_LAYER, layer_digest, len(layer))],
        )
    )
    return {
        "/v2/big/img/manifests/1": (
            200,
            manifest,
            {"Content-Type": MediaType.OCI_MANIFEST},
        ),
        f"/v2/big/img/blobs/{config_digest}": (200, config, {}),
    }


def bulk_client() -> httpx.Client:
    """An httpx client sending through a BulkTransport."""
    return httpx.Client(transport=BulkTransport(ssl.create_default_context()))


def read_all(response: httpx.Response) -> bytes:
    """Read a bulk response's body with readinto, in 1 MiB pieces."""
    body = BulkBody.of(response)
    assert body is not None
    buffer = memoryview(bytearray(1 << 20))
    data = bytearray()
    while count := body.readinto(buffer):
        data += buffer[:count]
    return bytes(data)


def test_requests_in_turn_share_one_kept_alive_connection(serve) -> None:
    """A body read to its end gives its connection to the next request."""
    peers: list[int] = []

    class Server(QuietHandler):
        def do_GET(self) -> None:
            peers.append(self.client_address[1])
            self.reply(200, BODY)

    host = serve(Server)
    with bulk_client() as client:
        bodies = []
        for _ in range(3):
            with client.stream("GET", f"http://{host}/blob") as response:
                bodies.append(read_all(response))

    assert bodies == [BODY, BODY, BODY]
    assert len(set(peers)) == 1


def test_connection_the_server_closed_is_replaced(serve) -> None:
    """A kept-alive connection closed while idle is not an error: a new one is."""
    peers: list[int] = []

    class HangsUpAfterEach(QuietHandler):
        def do_GET(self) -> None:
            peers.append(self.client_address[1])
            self.reply(200, b"abc")
            self.close_connection = True

    host = serve(HangsUpAfterEach)
    with bulk_client() as client:
        first = client.get(f"http://{host}/a").content
        second = client.get(f"http://{host}/b").content

    assert (first, second) == (b"abc", b"abc")
    assert len(set(peers)) == 2


def test_body_cut_short_raises_remote_protocol_error(serve) -> None:
    """A body that ends before its Content-Length says how much came."""

    class CutsShort(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "5000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.close_connection = True

    host = serve(CutsShort)
    with bulk_client() as client:
        with client.stream("GET", f"http://{host}/blob") as response:
            with pytest.raises(httpx.RemoteProtocolError) as caught:
                read_all(response)

    assert str(caught.value) == (
        "peer closed connection without sending complete message body "
        "(received 1000 bytes, expected 5000)"
    )


def test_chunked_layer_of_many_pieces_is_pulled_whole(tmp_path: Path, serve) -> None:
    """A 3 MiB layer sent chunked, in uneven pieces, is stored byte for byte."""
    layer_digest = Digest.of_bytes(BODY)
    routes = image_routes(BODY)

    class Chunked(QuietHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path != f"/v2/big/img/blobs/{layer_digest}":
                status, body, headers = routes.get(path, (404, b"", {}))
                self.reply(status, body, headers)
                return
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(BODY), 700_001):
                piece = BODY[start : start + 700_001]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")

    host = serve(Chunked)
    store = StoreDirectory(tmp_path / "s")
    pull(store, f"{host}/big/img:1")

    assert store.read_blob(layer_digest) == BODY


def test_layer_download_goes_through_the_configured_proxy(
    tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTP_PROXY set, the layer is fetched through the proxy as well."""
    layer_digest = Digest.of_bytes(BODY)
    routes = image_routes(BODY)
    routes[f"/v2/big/img/blobs/{layer_digest}"] = (200, BODY, {})
    through_proxy: list[str] = []

    class Registry(QuietHandler):
        def do_GET(self) -> None:
            status, body, headers = routes.get(self.path, (404, b"", {}))
            self.reply(status, body, headers)

    class Proxy(QuietHandler):
        def do_GET(self) -> None:
            url = httpx.URL(self.path)
            through_proxy.append(url.path)
            # Not through the proxy variables this test sets: to the registry.
            answer = httpx.get(url, trust_env=False)
            self.reply(answer.status_code, answer.content)

    host = serve(Registry)
    proxy = serve(Proxy)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy}")
    store = StoreDirectory(tmp_path / "s")
    pull(store, f"{host}/big/img:1")

    assert store.read_blob(layer_digest) == BODY
    assert f"/v2/big/img/blobs/{layer_digest}" in through_proxy
