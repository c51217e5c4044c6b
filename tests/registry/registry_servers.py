"""Helpers of the registry tests: a registry process, HTTP handlers, images."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
from tests.conftest import missing

from layercake.store import (
    ContainerConfig,
    Descriptor,
    ImageConfig,
    Manifest,
    MediaType,
    RootFS,
    StoreDirectory,
)

REGISTRY_BINARY = "/usr/bin/docker-registry"


@attrs.frozen
class RunningRegistry:
    """A registry server on 127.0.0.1: ``host`` is ``127.0.0.1:PORT``."""

    host: str
    storage: Path
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(
    root: Path, port: int, htpasswd: Path | None, tls: tuple[Path, Path] | None
) -> str:
    text = (
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: layercake-tests\n"
    )
    if tls is not None:
        text += f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
    if htpasswd is not None:
        text += (
            f"auth:\n  htpasswd:\n    realm: layercake-tests\n    path: {htpasswd}\n"
        )
    return text


def start_registry(
    root: Path, *, htpasswd: bool, tls: tuple[Path, Path] | None = None
) -> Iterator[RunningRegistry]:
    if not os.access(REGISTRY_BINARY, os.X_OK):
        missing(f"{REGISTRY_BINARY} is missing (install Debian's docker-registry)")
    root.mkdir(parents=True)
    port = free_port()
    password_file = root / "htpasswd" if htpasswd else None
    config = root / "config.yml"
    config.write_text(_config(root, port, password_file, tls))
    log_path = root / "registry.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_ready(port, process, log_path, tls is not None)
        username = password = None
        if password_file is not None:
            found = re.search(r"password=(\S+) user=(\S+)", log_path.read_text())
            assert found is not None, log_path.read_text()
            password, username = found.group(1), found.group(2)
        yield RunningRegistry(f"127.0.0.1:{port}", root / "data", username, password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(
    port: int, process: subprocess.Popen[bytes], log: Path, tls: bool
) -> None:
    scheme = "https" if tls else "http"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()}")
        try:
            httpx.get(f"{scheme}://127.0.0.1:{port}/v2/", timeout=1, verify=False)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not start: {log.read_text()}")


Handler = type[http.server.BaseHTTPRequestHandler]


class QuietServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server whose handler threads die with the test."""

    daemon_threads = True


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that logs nothing and times out idle connections."""

    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format: str, *args: object) -> None:
        return None

    def reply(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        """Send a complete response with a Content-Length."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def forward(self, upstream: str, path: str | None = None) -> None:
        """Proxy this request to ``upstream`` (``host:port``) and relay the answer.

        The Host header is kept, so the registry's upload URLs name this server.
        """
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("authorization", "content-length", "transfer-encoding")
        }
        body = self.body()
        response = httpx.request(
            self.command,
            f"http://{upstream}{path or self.path}",
            headers=headers,
            content=body,
            timeout=30,
        )
        relayed = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        }
        self.reply(response.status_code, response.content, relayed)


def layer_tar(files: dict[str, bytes]) -> bytes:
    """Return an uncompressed tar holding ``files`` (name -> content)."""
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def make_image(
    directory: StoreDirectory,
    layers: list[dict[str, bytes]],
    *,
    tag: str | None = None,
    architecture: str = "amd64",
) -> Descriptor:
    """Write a small image (uncompressed OCI layers) into ``directory``."""
    descriptors = []
    for files in layers:
        data = layer_tar(files)
        digest = directory.write_blob(data)
        descriptors.append(Descriptor(MediaType.OCI_LAYER, digest, len(data)))
    config = ImageConfig(
        architecture=architecture,
        os="linux",
        config=ContainerConfig(cmd=("/bin/sh",)),
        rootfs=RootFS(diff_ids=[d.digest for d in descriptors]),
    )
    config_descriptor = directory.write_json(config, MediaType.OCI_CONFIG)
    manifest = Manifest(config=config_descriptor, layers=descriptors)
    descriptor = directory.write_json(manifest, MediaType.OCI_MANIFEST)
    if tag is not None:
        directory.set_tag(tag, descriptor)
    return descriptor


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """Make a throwaway CA and a server certificate for 127.0.0.1 with openssl.

    Returns (CA certificate, server certificate, server key) paths.
    """
    if shutil.which("openssl") is None:
        missing("openssl is not installed (install Debian's openssl)")
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = (
        directory / "server.key",
        directory / "server.csr",
        directory / "server.pem",
    )
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=layercake test CA",
    )
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return ca, cert, key
