"""Registries that lie, loop, flood or fail: refused clearly, nothing stored."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from registry_servers import QuietHandler, layer_tar

from layercake.errors import InvalidRegistryResponse, RegistryError, TooManyRequests
from layercake.store import (
    ContainerConfig,
    Descriptor,
    Digest,
    ImageConfig,
    Index,
    Manifest,
    MediaType,
    Platform,
    RootFS,
    StoreDirectory,
    to_json,
)
from layercake.store._registry import Credentials, pull

LAYER = layer_tar({"etc/hello": b"hello\n"})
LAYER_DIGEST = Digest.of_bytes(LAYER)
CONFIG = to_json(
    ImageConfig(
        architecture="amd64",
        os="linux",
        config=ContainerConfig(),
        rootfs=RootFS(diff_ids=[LAYER_DIGEST]),
    )
)
CONFIG_DIGEST = Digest.of_bytes(CONFIG)

Route = Callable[[QuietHandler], None]


def manifest_bytes(layer_size: int = len(LAYER)) -> bytes:
    """The image's manifest, claiming ``layer_size`` for its one layer."""
    return to_json(
        Manifest(
            config=Descriptor(MediaType.OCI_CONFIG, CONFIG_DIGEST, len(CONFIG)),
            layers=[Descriptor(MediaType.OCI_LAYER, LAYER_DIGEST, layer_size)],
        )
    )


def static(status: int, body: bytes = b"", **headers: str) -> Route:
    """A route answering the same response every time."""
    return lambda handler: handler.reply(status, body, headers)


def fake_registry(serve, routes: dict[str, Route]) -> str:
    """Serve ``routes`` (path -> route) as registry ``evil/img``; 404 otherwise."""
    defaults = {
        "/v2/evil/img/manifests/1": static(
            200, manifest_bytes(), **{"Content-Type": MediaType.OCI_MANIFEST}
        ),
        f"/v2/evil/img/blobs/{CONFIG_DIGEST}": static(200, CONFIG),
        f"/v2/evil/img/blobs/{LAYER_DIGEST}": static(200, LAYER),
    }
    table = {**defaults, **routes}

    class Fake(QuietHandler):
        def do_GET(self) -> None:
            route = table.get(self.path.split("?")[0])
            if route is None:
                self.reply(404, b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}')
            else:
                route(self)

        do_HEAD = do_GET

    return serve(Fake)


def assert_nothing_stored(store: StoreDirectory) -> None:
    """No tag, no blob and no temp file came out of the failed pull."""
    assert store.tags() == []
    assert list((store.root / "blobs/sha256").iterdir()) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_blob_that_does_not_match_its_digest_is_refused(tmp_path: Path, serve) -> None:
    """A layer whose bytes hash differently raises and leaves nothing behind."""
    forged = LAYER.replace(b"hello\n", b"HELLO\n")
    host = fake_registry(
        serve, {f"/v2/evil/img/blobs/{LAYER_DIGEST}": static(200, forged)}
    )
    store = StoreDirectory(tmp_path / "s")

    with pytest.raises(InvalidRegistryResponse) as caught:
        pull(store, f"{host}/evil/img:1")

    url = f"http://{host}/v2/evil/img/blobs/{LAYER_DIGEST}"
    assert str(caught.value) == (
        f"pull of {host}/evil/img:1: blob does not match its digest: expected "
        f"{LAYER_DIGEST}, got {Digest.of_bytes(forged)} ({url})"
    )
    assert (caught.value.url, caught.value.reference) == (url, f"{host}/evil/img:1")
    assert_nothing_stored(store)


def test_blob_longer_than_the_manifest_says_is_refused(tmp_path: Path, serve) -> None:
    """A manifest that understates a layer's size cannot make us store more."""
    short = manifest_bytes(layer_size=100)
    host = fake_registry(serve, {"/v2/evil/img/manifests/1": static(200, short)})
    store = StoreDirectory(tmp_path / "s")

    with pytest.raises(InvalidRegistryResponse) as caught:
        pull(store, f"{host}/evil/img:1")

    assert str(caught.value) == (
        f"pull of {host}/evil/img:1: blob {LAYER_DIGEST} is longer than the 100 "
        f"bytes its descriptor says (http://{host}/v2/evil/img/blobs/{LAYER_DIGEST})"
    )
    assert_nothing_stored(store)


def test_blob_shorter_than_the_manifest_says_is_refused(tmp_path: Path, serve) -> None:
    """A manifest that overstates a layer's size is caught when the body ends."""
    long = manifest_bytes(layer_size=len(LAYER) + 1)
    host = fake_registry(serve, {"/v2/evil/img/manifests/1": static(200, long)})
    store = StoreDirectory(tmp_path / "s")

    with pytest.raises(InvalidRegistryResponse) as caught:
        pull(store, f"{host}/evil/img:1")

    assert str(caught.value) == (
        f"pull of {host}/evil/img:1: blob {LAYER_DIGEST} is {len(LAYER)} bytes, "
        f"not the {len(LAYER) + 1} its descriptor says "
        f"(http://{host}/v2/evil/img/blobs/{LAYER_DIGEST})"
    )
    assert_nothing_stored(store)


def test_malformed_manifest_json_is_refused(tmp_path: Path, serve) -> None:
    """A manifest that is not JSON raises InvalidRegistryResponse."""
    host = fake_registry(serve, {"/v2/evil/img/manifests/1": static(200, b"{not json")})
    store = StoreDirectory(tmp_path / "s")

    with pytest.raises(InvalidRegistryResponse) as caught:
        pull(store, f"{host}/evil/img:1")

    assert str(caught.value) == (
        f"pull of {host}/evil/img:1: malformed manifest json: Expecting property "
        "name enclosed in double quotes: line 1 column 2 (char 1) "
        f"(http://{host}/v2/evil/img/manifests/1)"
    )
    assert_nothing_stored(store)


def test_manifest_whose_digest_header_lies_is_refused(tmp_path: Path, serve) -> None:
    """A Docker-Content-Digest that does not match the body is refused."""
    other = Digest.of_bytes(b"other")
    route = static(200, manifest_bytes(), **{"Docker-Content-Digest": str(other)})
    host = fake_registry(serve, {"/v2/evil/img/manifests/1": route})

    with pytest.raises(InvalidRegistryResponse) as caught:
        pull(StoreDirectory(tmp_path / "s"), f"{host}/evil/img:1")

    assert str(caught.value) == (
        f"pull of {host}/evil/img:1: manifest does not match its digest: expected "
        f"{other}, got {Digest.of_bytes(manifest_bytes())} "
        f"(http://{host}/v2/evil/img/manifests/1)"
    )


def endless(handler: QuietHandler) -> None:
    """Answer with a chunked body that would never end (stops at 8 MiB)."""
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b" " * 65536
    try:
        for _ in range(128):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    handler.close_connection = True


def test_endless_manifest_is_cut_at_4_mib(tmp_path: Path, serve) -> None:
    """A manifest body over 4 MiB is refused without reading it all."""
    host = fake_registry(serve, {"/v2/evil/img/manifests/1": endless})
    store = StoreDirectory(tmp_path / "s")

    with pytest.raises(InvalidRegistryResponse) as caught:
        pull(store, f"{host}/evil/img:1")

    assert str(caught.value) == (
        f"pull of {host}/evil/img:1: manifest from "
        f"http://{host}/v2/evil/img/manifests/1 is larger than 4194304 bytes"
    )
    assert_nothing_stored(store)


def test_redirect_loop_is_refused(tmp_path: Path, serve) -> None:
    """A blob URL that redirects to itself fails after a few hops."""
    path = f"/v2/evil/img/blobs/{LAYER_DIGEST}"
    host = fake_registry(serve, {path: static(307, Location=path)})
    store = StoreDirectory(tmp_path / "s")

    with pytest.raises(InvalidRegistryResponse) as caught:
        pull(store, f"{host}/evil/img:1")

    assert str(caught.value) == (
        f"blob pull failed for {host}/evil/img:1: too many redirects from "
        f"http://{host}{path}"
    )
    assert_nothing_stored(store)


def test_redirected_blob_download_never_sends_authorization_elsewhere(
    tmp_path: Path, serve, caplog: pytest.LogCaptureFixture
) -> None:
    """Credentials go to the registry only; a signed query is not in request logs."""
    caplog.set_level(logging.DEBUG)
    seen_by_cdn: list[dict[str, str]] = []
    seen_by_registry: list[str | None] = []

    class Cdn(QuietHandler):
        def do_GET(self) -> None:
            seen_by_cdn.append(dict(self.headers.items()))
            self.reply(200, LAYER)

    cdn = serve(Cdn)
    expected = "Basic " + base64.b64encode(b"u:p").decode()

    def guarded(route: Route) -> Route:
        def answer(handler: QuietHandler) -> None:
            seen_by_registry.append(handler.headers.get("Authorization"))
            if handler.headers.get("Authorization") != expected:
                handler.reply(401, b"", {"WWW-Authenticate": 'Basic realm="r"'})
            else:
                route(handler)

        return answer

    location = f"http://{cdn}/layer?X-Amz-Signature=secret"
    host = fake_registry(
        serve,
        {
            "/v2/evil/img/manifests/1": guarded(static(200, manifest_bytes())),
            f"/v2/evil/img/blobs/{CONFIG_DIGEST}": guarded(static(200, CONFIG)),
            f"/v2/evil/img/blobs/{LAYER_DIGEST}": guarded(
                static(307, Location=location)
            ),
        },
    )
    store = StoreDirectory(tmp_path / "s")
    pull(store, f"{host}/evil/img:1", credentials=Credentials("u", "p"))

    assert store.read_blob(LAYER_DIGEST) == LAYER
    assert len(seen_by_cdn) == 1
    assert "Authorization" not in seen_by_cdn[0]
    assert expected in seen_by_registry
    # httpcore's DEBUG trace prints raw response headers; ours and httpx's
    # request lines must not carry the signed query.
    ours = "\n".join(
        r.getMessage() for r in caplog.records if r.name.split(".")[0] != "httpcore"
    )
    assert f"GET http://{cdn}/layer " in ours
    assert "secret" not in ours


def test_rate_limits_and_server_errors_are_retried(tmp_path: Path, serve) -> None:
    """429 with Retry-After and a 503 are retried until the registry answers."""
    answers = [
        static(429, b"", **{"Retry-After": "0"}),
        static(503),
        static(200, manifest_bytes()),
    ]
    calls: list[int] = []

    def flaky(handler: QuietHandler) -> None:
        calls.append(1)
        answers[min(len(calls), len(answers)) - 1](handler)

    host = fake_registry(serve, {"/v2/evil/img/manifests/1": flaky})
    pulled = pull(StoreDirectory(tmp_path / "s"), f"{host}/evil/img:1")
    assert pulled.digest == Digest.of_bytes(manifest_bytes())
    assert len(calls) == 3


def test_endless_rate_limiting_raises_too_many_requests(tmp_path: Path, serve) -> None:
    """A registry that always answers 429 gives TooManyRequests after retries."""
    calls: list[int] = []
    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'

    def limited(handler: QuietHandler) -> None:
        calls.append(1)
        handler.reply(429, body, {"Retry-After": "0"})

    host = fake_registry(serve, {"/v2/evil/img/manifests/1": limited})
    with pytest.raises(TooManyRequests) as caught:
        pull(StoreDirectory(tmp_path / "s"), f"{host}/evil/img:1")

    assert str(caught.value) == (
        f"manifest pull failed for {host}/evil/img:1: GET "
        f"http://{host}/v2/evil/img/manifests/1 returned 429 TOOMANYREQUESTS: "
        "slow down"
    )
    assert len(calls) == 5


def test_connection_reset_is_retried(tmp_path: Path, serve) -> None:
    """A connection closed without an answer is retried."""
    calls: list[int] = []

    def hang_up_once(handler: QuietHandler) -> None:
        calls.append(1)
        if len(calls) == 1:
            handler.close_connection = True
            return
        handler.reply(200, manifest_bytes())

    host = fake_registry(serve, {"/v2/evil/img/manifests/1": hang_up_once})
    pulled = pull(StoreDirectory(tmp_path / "s"), f"{host}/evil/img:1")
    assert pulled.digest == Digest.of_bytes(manifest_bytes())
    assert len(calls) == 2


def cut_short(times: int) -> Route:
    """A blob route that breaks off mid-body the first ``times`` requests."""
    calls: list[int] = []

    def answer(handler: QuietHandler) -> None:
        calls.append(1)
        if len(calls) > times:
            handler.reply(200, LAYER)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(LAYER)))
        handler.end_headers()
        handler.wfile.write(LAYER[:1000])
        handler.close_connection = True

    return answer


def test_download_broken_mid_body_starts_over(tmp_path: Path, serve) -> None:
    """A blob download cut short is tried again and then stored whole."""
    host = fake_registry(serve, {f"/v2/evil/img/blobs/{LAYER_DIGEST}": cut_short(2)})
    store = StoreDirectory(tmp_path / "s")
    pull(store, f"{host}/evil/img:1")
    assert store.read_blob(LAYER_DIGEST) == LAYER


def test_download_that_keeps_breaking_leaves_no_partial_blob(
    tmp_path: Path, serve
) -> None:
    """After three broken attempts the pull fails and stores nothing."""
    host = fake_registry(serve, {f"/v2/evil/img/blobs/{LAYER_DIGEST}": cut_short(9)})
    store = StoreDirectory(tmp_path / "s")

    with pytest.raises(RegistryError) as caught:
        pull(store, f"{host}/evil/img:1")

    url = f"http://{host}/v2/evil/img/blobs/{LAYER_DIGEST}"
    assert str(caught.value).startswith(
        f"pull of {host}/evil/img:1: download of blob {LAYER_DIGEST} from {url} "
        "failed: peer closed connection without sending complete message body"
    )
    assert_nothing_stored(store)


def test_index_that_lies_about_a_manifest_size_is_refused(
    tmp_path: Path, serve
) -> None:
    """A platform manifest longer than its index entry says is refused."""
    manifest = manifest_bytes()
    digest = Digest.of_bytes(manifest)
    index = to_json(
        Index(
            manifests=[
                Descriptor(
                    MediaType.OCI_MANIFEST,
                    digest,
                    len(manifest) - 10,
                    platform=Platform("amd64", "linux"),
                )
            ]
        )
    )
    host = fake_registry(
        serve,
        {
            "/v2/evil/img/manifests/1": static(200, index),
            f"/v2/evil/img/manifests/{digest}": static(200, manifest),
        },
    )
    store = StoreDirectory(tmp_path / "s")

    with pytest.raises(InvalidRegistryResponse) as caught:
        pull(store, f"{host}/evil/img:1", platform=Platform("amd64", "linux"))

    assert str(caught.value) == (
        f"pull of {host}/evil/img:1: manifest from "
        f"http://{host}/v2/evil/img/manifests/{digest} is larger than "
        f"{len(manifest) - 10} bytes"
    )
    assert_nothing_stored(store)
