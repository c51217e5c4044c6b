"""Push an image (or a multi-platform index) from a store to a registry.

Blobs go first, in a small thread pool: a HEAD request skips those the
repository already has; a blob recorded in another repository of the same
registry is mounted from there; the rest are uploaded in one PUT, or in
PATCH chunks when bigger than ``chunk_size``. Manifests go last, so the tag
never points at an incomplete image.

Layers built by layercake are uncompressed tars (valid OCI layers) and are
pushed as they are, unless ``compression="gzip"``: then each uncompressed
layer is compressed into a new blob in the store and the manifest rewritten
to use it (the config's diff ids, being uncompressed digests, stay).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import attrs
import httpx

from layercake.errors import DigestMismatch, InvalidRegistryResponse, RegistryError

from .._digest import Digest
from .._directory import StoreDirectory
from .._media import MediaType
from .._models import Descriptor, Index, Manifest, to_json
from .._reference import Reference
from ._auth import Credentials
from ._client import RegistryClient, TransferProgress
from ._compress import gzip_layers
from ._errors import public_url
from ._sources import BlobSources

__all__ = ["DEFAULT_CHUNK_SIZE", "push"]

logger = logging.getLogger(__name__)

_WORKERS = 4
_READ = 1 << 20
#: Blobs up to this size go in one PUT; bigger ones in PATCH chunks.
DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024

ProgressCallback = Callable[[TransferProgress], None]


def push(
    directory: StoreDirectory,
    manifest: Descriptor,
    reference: str,
    *,
    credentials: Credentials | None = None,
    insecure: bool | None = None,
    ca_file: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    compression: Literal["gzip"] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    config_path: Path | None = None,
) -> Digest:
    """Push the manifest or index ``manifest`` and its blobs to ``reference``.

    ``reference`` names the repository and a tag, a digest or both; with
    only a digest it must be the digest of what is pushed. Returns the
    digest of the pushed manifest (which differs from ``manifest.digest``
    when ``compression="gzip"`` rewrote it). ``on_progress`` is called with
    a :class:`TransferProgress`: first with ``done=0`` for each blob, config
    first and then the layers in manifest order, then from upload threads.

    Raises:
        InvalidReference: ``reference`` is not a valid image reference.
        BlobNotFound: a blob of the image is missing from the store.
        RegistryUnauthorized: credentials are needed or were refused.
        RegistryDenied: the credentials may not push to this repository.
        InvalidRegistryResponse: the registry answered an upload in a way
            the distribution spec does not allow.
        RegistryError: any other refusal or network failure.
    """
    ref = Reference.parse(reference)
    with RegistryClient(
        ref.domain,
        credentials=credentials,
        insecure=insecure,
        ca_file=ca_file,
        config_path=config_path,
    ) as client:
        pusher = _Pusher(client, directory, ref, on_progress, compression, chunk_size)
        digest = pusher.run(manifest)
    logger.info("pushed %s as %s", ref, digest)
    return digest


class _Pusher:
    def __init__(
        self,
        client: RegistryClient,
        directory: StoreDirectory,
        ref: Reference,
        on_progress: ProgressCallback | None,
        compression: Literal["gzip"] | None,
        chunk_size: int,
    ) -> None:
        self._client = client
        self._directory = directory
        self._ref = ref
        self._name = ref.familiar
        self._on_progress = on_progress
        self._compression = compression
        self._chunk_size = chunk_size
        self._sources = BlobSources(directory, ref.domain)
        self._repo = ref.path

    def run(self, top: Descriptor) -> Digest:
        if top.media_type in MediaType.INDEXES:
            index = self._directory.read_json(Index, top.digest)
            children = []
            for child in index.manifests:
                pushed = self._push_image(child)
                children.append(attrs.evolve(child, digest=pushed[0], size=pushed[1]))
            if self._compression is None:
                data = self._directory.read_blob(top.digest)
            else:
                data = to_json(attrs.evolve(index, manifests=children))
                self._directory.write_blob(data)
            return self._put_manifest(data, top.media_type, final=True)
        digest, _ = self._push_image(top, final=True)
        return digest

    def _push_image(
        self, descriptor: Descriptor, final: bool = False
    ) -> tuple[Digest, int]:
        manifest = self._directory.read_json(Manifest, descriptor.digest)
        data = self._directory.read_blob(descriptor.digest)
        if self._compression == "gzip":
            manifest = self._compressed(manifest)
            data = to_json(manifest)
            self._directory.write_blob(data)
        blobs = [manifest.config, *manifest.layers]
        unique = list({blob.digest: blob for blob in blobs}.values())
        # A first event per blob, in manifest order, so displays list the
        # blobs in that order whatever order the transfers finish in.
        for blob in unique:
            self._progress(blob.digest, blob.size, 0)
        with ThreadPoolExecutor(max_workers=min(_WORKERS, len(unique))) as pool:
            futures = [pool.submit(self._push_blob, blob) for blob in unique]
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        self._sources.record([blob.digest for blob in unique], self._repo)
        return self._put_manifest(data, descriptor.media_type, final=final), len(data)

    def _compressed(self, manifest: Manifest) -> Manifest:
        layers = gzip_layers(self._directory, manifest.layers)
        return attrs.evolve(manifest, layers=layers)

    def _scopes(self, extra: str | None = None) -> tuple[str, ...]:
        scopes: tuple[str, ...] = (f"repository:{self._repo}:pull,push",)
        if extra is not None and extra != self._repo:
            scopes += (f"repository:{extra}:pull",)
        return scopes

    def _push_blob(self, blob: Descriptor) -> None:
        url = self._client.url(f"/v2/{self._repo}/blobs/{blob.digest}")
        response = self._client.request(
            "HEAD",
            url,
            scopes=self._scopes(),
            action="blob check",
            reference=self._name,
        )
        response.close()
        if response.status_code == 200:
            logger.debug("registry has blob %s", blob.digest)
            self._progress(blob.digest, blob.size, blob.size)
            return
        if response.status_code != 404:
            self._client.check(response, reference=self._name, action="blob check")

        location = None
        for source in self._sources.repositories(blob.digest):
            if source == self._repo:
                continue
            location = self._mount(blob, source)
            if location is None:
                self._progress(blob.digest, blob.size, blob.size)
                return
            break
        if location is None:
            location = self._start_upload()
        self._upload(blob, location)

    def _mount(self, blob: Descriptor, source: str) -> httpx.URL | None:
        """Ask for a mount; ``None`` if done, else the upload it started."""
        url = self._client.url(f"/v2/{self._repo}/blobs/uploads/").copy_merge_params(
            {"mount": str(blob.digest), "from": source}
        )
        response = self._client.request(
            "POST",
            url,
            scopes=self._scopes(source),
            action="blob mount",
            reference=self._name,
        )
        if response.status_code == 201:
            response.close()
            logger.info("mounted blob %s from %s", blob.digest, source)
            return None
        self._client.check(
            response, reference=self._name, action="blob mount", expected=(202,)
        )
        response.close()
        return self._location(response)

    def _start_upload(self) -> httpx.URL:
        url = self._client.url(f"/v2/{self._repo}/blobs/uploads/")
        response = self._client.request(
            "POST",
            url,
            scopes=self._scopes(),
            action="blob upload",
            reference=self._name,
            headers={"Content-Length": "0"},
        )
        self._client.check(
            response, reference=self._name, action="blob upload", expected=(202,)
        )
        response.close()
        return self._location(response)

    def _location(self, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("Location")
        if not location:
            url = public_url(response.request.url)
            raise InvalidRegistryResponse(
                f"push of {self._name}: no upload location from {url}",
                url=url,
                status=response.status_code,
                reference=self._name,
            )
        return response.request.url.join(location)

    def _upload(self, blob: Descriptor, location: httpx.URL) -> None:
        # The hash of the bytes before each offset, so a retried request
        # re-hashes only its own range.
        hashes = {0: hashlib.sha256()}
        if blob.size > self._chunk_size:
            offset = 0
            while offset < blob.size:
                length = min(self._chunk_size, blob.size - offset)
                response = self._send(
                    "PATCH",
                    location,
                    self._reader(blob, offset, length, hashes),
                    length,
                    expected=202,
                    extra={"Content-Range": f"{offset}-{offset + length - 1}"},
                )
                location = self._location(response)
                offset += length
            body: Callable[[], Iterator[bytes]] | bytes = b""
            length = 0
        else:
            body = self._reader(blob, 0, blob.size, hashes)
            length = blob.size

        url = location.copy_merge_params({"digest": str(blob.digest)})
        self._send("PUT", url, body, length, expected=201)
        logger.debug("uploaded blob %s", blob.digest)

    def _send(
        self,
        method: str,
        url: httpx.URL,
        content: Callable[[], Iterator[bytes]] | bytes,
        length: int,
        *,
        expected: int,
        extra: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one upload request of ``length`` bytes; check its status."""
        response = self._client.request(
            method,
            url,
            scopes=self._scopes(),
            action="blob upload",
            reference=self._name,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(length),
                **(extra or {}),
            },
            content=content,
        )
        self._client.check(
            response, reference=self._name, action="blob upload", expected=(expected,)
        )
        response.close()
        return response

    def _reader(
        self,
        blob: Descriptor,
        offset: int,
        length: int,
        hashes: dict[int, hashlib._Hash],
    ) -> Callable[[], Iterator[bytes]]:
        def chunks() -> Iterator[bytes]:
            running = hashes[offset].copy()
            with self._directory.open_blob(blob.digest) as file:
                file.seek(offset)
                left = length
                while left > 0:
                    chunk = file.read(min(_READ, left))
                    if not chunk:
                        raise RegistryError(
                            f"push of {self._name}: blob {blob.digest} in the store "
                            "is shorter than its descriptor says",
                            reference=self._name,
                        )
                    left -= len(chunk)
                    running.update(chunk)
                    if left == 0 and offset + length == blob.size:
                        # Checked before the last bytes leave, so a damaged
                        # blob never completes at the registry.
                        self._check(blob, running)
                    yield chunk
                    self._progress(blob.digest, blob.size, offset + length - left)
            hashes[offset + length] = running

        return chunks

    def _check(self, blob: Descriptor, running: hashlib._Hash) -> None:
        actual = Digest("sha256", running.hexdigest())
        if blob.digest.algorithm == "sha256" and actual != blob.digest:
            raise DigestMismatch(
                str(blob.digest),
                str(actual),
                path=str(self._directory.blob_path(blob.digest)),
            )

    def _put_manifest(
        self, data: bytes, media_type: str, *, final: bool = False
    ) -> Digest:
        digest = Digest.of_bytes(data)
        targets = [str(digest)]
        if final:
            if self._ref.digest is not None and self._ref.digest != digest:
                raise RegistryError(
                    f"push of {self._name}: the image's digest is {digest}, not the "
                    f"{self._ref.digest} the reference names",
                    reference=self._name,
                )
            targets = [self._ref.tag] if self._ref.tag else [str(digest)]
        for target in targets:
            url = self._client.url(f"/v2/{self._repo}/manifests/{target}")
            response = self._client.request(
                "PUT",
                url,
                scopes=self._scopes(),
                action="manifest push",
                reference=self._name,
                headers={"Content-Type": media_type},
                content=data,
            )
            self._client.check(
                response,
                reference=self._name,
                action="manifest push",
                expected=(201,),
            )
            response.close()
            header = response.headers.get("Docker-Content-Digest")
            if header is not None and header != str(digest):
                url_text = public_url(url)
                raise InvalidRegistryResponse(
                    f"push of {self._name}: registry stored manifest as {header}, "
                    f"not {digest} ({url_text})",
                    url=url_text,
                    status=response.status_code,
                    reference=self._name,
                )
        return digest

    def _progress(self, digest: Digest, total: int, done: int) -> None:
        if self._on_progress is not None:
            self._on_progress(TransferProgress(digest, total, done, self._name))
