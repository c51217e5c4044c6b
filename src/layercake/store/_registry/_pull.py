"""Pull an image from a registry into a store, keeping its exact bytes.

The manifest (and the index it was picked from) and every blob keep their
registry digests: layers stay gzip-compressed and are unpacked lazily by the
store. Blobs already in the store are not downloaded; the others download in
a small thread pool, hashed while they stream and stored only when complete
and verified. Manifests are stored and tagged last, so a failed pull leaves
no tag and no partial blob.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx

from layercake.errors import (
    DigestMismatch,
    InvalidRegistryResponse,
    ManifestUnknown,
    RegistryError,
    StoreCorrupted,
    StoreError,
)

from .._digest import Digest
from .._directory import StoreDirectory
from .._media import MediaType
from .._models import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    from_json,
    host_platform,
)
from .._reference import Reference
from ._auth import Credentials
from ._bulk_transport import BulkBody
from ._client import RegistryClient, TransferProgress
from ._errors import public_url
from ._sources import BlobSources

__all__ = ["MANIFEST_ACCEPT", "MAX_MANIFEST_SIZE", "pull", "read_capped"]

logger = logging.getLogger(__name__)

#: Manifests bigger than this are refused (as containerd and Docker do).
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MANIFEST_ACCEPT = (
    f"{MediaType.OCI_INDEX}, {MediaType.DOCKER_MANIFEST_LIST}, "
    f"{MediaType.OCI_MANIFEST}, {MediaType.DOCKER_MANIFEST}"
)
_WORKERS = 4
_CHUNK = 1 << 20
_BODY_ATTEMPTS = 3

T = TypeVar("T")

ProgressCallback = Callable[[TransferProgress], None]


def pull(
    directory: StoreDirectory,
    reference: str,
    *,
    platform: Platform | None = None,
    credentials: Credentials | None = None,
    insecure: bool | None = None,
    ca_file: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    config_path: Path | None = None,
) -> Descriptor:
    """Pull ``reference`` into ``directory`` and tag it with its familiar name.

    A tag or digest naming an index or manifest list picks the manifest for
    ``platform`` (this machine's by default). ``on_progress`` is called with
    a :class:`TransferProgress`: first with ``done=0`` for each layer to
    download, in manifest order, then from download threads once per chunk.
    Returns the descriptor of the image manifest that was tagged.

    Raises:
        InvalidReference: ``reference`` is not a valid image reference.
        ManifestUnknown: no such tag or digest, or no manifest for the
            platform.
        RegistryUnauthorized: credentials are needed or were refused.
        InvalidRegistryResponse: the registry sent content that does not
            match its digest or size, malformed JSON, a body too big, or
            redirected in a loop; nothing of it is stored.
        RegistryError: any other refusal or network failure.
    """
    ref = Reference.parse(reference)
    wanted = platform or host_platform()
    with RegistryClient(
        ref.domain,
        credentials=credentials,
        insecure=insecure,
        ca_file=ca_file,
        config_path=config_path,
    ) as client:
        puller = _Puller(client, directory, ref, on_progress)
        descriptor = puller.run(wanted)
    directory.set_tag(ref.familiar, descriptor)
    logger.info("pulled %s as %s", ref, descriptor.digest)
    return descriptor


def read_capped(
    response: httpx.Response, limit: int, *, reference: str, what: str
) -> bytes:
    """Read a whole response body, refusing one longer than ``limit`` bytes.

    Raises:
        InvalidRegistryResponse: the body is longer than ``limit``.
        RegistryError: the connection broke while reading.
    """
    url = public_url(response.request.url)
    data = bytearray()
    try:
        for chunk in response.iter_bytes(_CHUNK):
            data += chunk
            if len(data) > limit:
                raise InvalidRegistryResponse(
                    f"pull of {reference}: {what} from {url} is larger than "
                    f"{limit} bytes",
                    url=url,
                    status=response.status_code,
                    reference=reference,
                )
    except httpx.TransportError as exc:
        raise RegistryError(
            f"pull of {reference}: reading {what} from {url} failed: {exc}",
            url=url,
            reference=reference,
        ) from exc
    finally:
        response.close()
    return bytes(data)


class _Puller:
    def __init__(
        self,
        client: RegistryClient,
        directory: StoreDirectory,
        ref: Reference,
        on_progress: ProgressCallback | None,
    ) -> None:
        self._client = client
        self._directory = directory
        self._ref = ref
        self._name = ref.familiar
        self._on_progress = on_progress
        self._scopes = (f"repository:{ref.path}:pull",)

    def run(self, platform: Platform) -> Descriptor:
        target = str(self._ref.digest or self._ref.tag)
        data, media_type, digest = self._fetch_manifest(target, None)
        index_data: tuple[bytes, Digest] | None = None
        if media_type in MediaType.INDEXES:
            index = self._parse(Index, data, digest)
            chosen = self._choose(index, platform)
            index_data = (data, digest)
            data, media_type, digest = self._fetch_manifest(str(chosen.digest), chosen)
        if media_type not in MediaType.MANIFESTS:
            raise self._invalid(
                f"manifest {digest} has unsupported media type {media_type!r}",
                self._manifest_url(target),
            )
        manifest = self._parse(Manifest, data, digest)

        config_data = self._fetch_config(manifest.config)
        config = self._parse(
            ImageConfig,
            config_data,
            manifest.config.digest,
            self._blob_url(manifest.config.digest),
        )
        if len(config.rootfs.diff_ids) != len(manifest.layers):
            raise self._invalid(
                f"manifest {digest} lists {len(manifest.layers)} layers but its "
                f"config has {len(config.rootfs.diff_ids)} diff ids",
                self._manifest_url(str(digest)),
            )
        self._download_layers(manifest.layers)

        self._directory.write_blob(config_data, expected=manifest.config.digest)
        if index_data is not None:
            self._directory.write_blob(index_data[0], expected=index_data[1])
        self._directory.write_blob(data, expected=digest)
        BlobSources(self._directory, self._ref.domain).record(
            [manifest.config.digest, *(layer.digest for layer in manifest.layers)],
            self._ref.path,
        )
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def _manifest_url(self, target: str) -> httpx.URL:
        return self._client.url(f"/v2/{self._ref.path}/manifests/{target}")

    def _blob_url(self, digest: Digest) -> httpx.URL:
        return self._client.url(f"/v2/{self._ref.path}/blobs/{digest}")

    def _invalid(
        self, reason: str, url: httpx.URL, status: int | None = None
    ) -> InvalidRegistryResponse:
        where = public_url(url)
        return InvalidRegistryResponse(
            f"pull of {self._name}: {reason} ({where})",
            url=where,
            status=status,
            reference=self._name,
        )

    def _fetch_manifest(
        self, target: str, expected: Descriptor | None
    ) -> tuple[bytes, str, Digest]:
        url = self._manifest_url(target)
        response = self._client.request(
            "GET",
            url,
            scopes=self._scopes,
            action="manifest pull",
            reference=self._name,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        self._client.check(response, reference=self._name, action="manifest pull")
        limit = MAX_MANIFEST_SIZE if expected is None else expected.size
        limit = min(limit, MAX_MANIFEST_SIZE)
        data = read_capped(response, limit, reference=self._name, what="manifest")
        digest = Digest.of_bytes(data)

        promised: Digest | None = None
        if expected is not None:
            promised = expected.digest
        elif self._ref.digest is not None:
            promised = self._ref.digest
        else:
            header = response.headers.get("Docker-Content-Digest")
            if header is not None:
                try:
                    promised = Digest.parse(header)
                except StoreError:
                    raise self._invalid(
                        f"malformed Docker-Content-Digest {header!r}", url
                    ) from None
        if promised is not None and promised != digest:
            raise self._invalid(
                f"manifest does not match its digest: expected {promised}, "
                f"got {digest}",
                url,
            )
        if expected is not None and expected.size != len(data):
            raise self._invalid(
                f"manifest {digest} is {len(data)} bytes, not the {expected.size} "
                "its descriptor says",
                url,
            )
        return data, self._media_type(data, response, url), digest

    def _media_type(self, data: bytes, response: httpx.Response, url: httpx.URL) -> str:
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise self._invalid(f"malformed manifest json: {exc}", url) from None
        if not isinstance(body, dict):
            raise self._invalid("malformed manifest json: not an object", url)
        media_type = body.get("mediaType")
        if isinstance(media_type, str) and media_type:
            return str(media_type)
        header: str = response.headers.get("Content-Type", "")
        return header.split(";", 1)[0].strip()

    def _parse(
        self, cls: type[T], data: bytes, digest: Digest, url: httpx.URL | None = None
    ) -> T:
        try:
            return from_json(cls, data, digest=digest)
        except StoreCorrupted as exc:
            where = url or self._manifest_url(str(digest))
            raise self._invalid(str(exc), where) from None

    def _choose(self, index: Index, platform: Platform) -> Descriptor:
        candidates = [
            d
            for d in index.manifests
            if d.platform is not None
            and d.platform.os == platform.os
            and d.platform.architecture == platform.architecture
            and d.media_type in MediaType.MANIFESTS
        ]
        exact = [d for d in candidates if _variant_matches(d.platform, platform)]
        if exact:
            return exact[0]
        if candidates and platform.variant is None:
            return candidates[0]
        available = ", ".join(
            _platform_text(d.platform) for d in index.manifests if d.platform
        )
        url = public_url(self._manifest_url(str(self._ref.digest or self._ref.tag)))
        raise ManifestUnknown(
            f"pull of {self._name}: no manifest for {_platform_text(platform)} "
            f"(available: {available or 'none'}) ({url})",
            url=url,
            reference=self._name,
        )

    def _fetch_config(self, descriptor: Descriptor) -> bytes:
        if self._directory.has_blob(descriptor.digest):
            return self._directory.read_blob(descriptor.digest)
        url = self._blob_url(descriptor.digest)
        response = self._client.request(
            "GET",
            url,
            scopes=self._scopes,
            action="blob pull",
            reference=self._name,
            follow_redirects=True,
        )
        self._client.check(response, reference=self._name, action="blob pull")
        data = read_capped(
            response,
            min(descriptor.size, MAX_MANIFEST_SIZE),
            reference=self._name,
            what=f"config {descriptor.digest}",
        )
        actual = Digest.of_bytes(data)
        if actual != descriptor.digest or len(data) != descriptor.size:
            raise self._invalid(
                f"config does not match its descriptor: expected "
                f"{descriptor.digest} ({descriptor.size} bytes), got {actual} "
                f"({len(data)} bytes)",
                url,
            )
        return data

    def _download_layers(self, layers: tuple[Descriptor, ...]) -> None:
        # A first event per layer, in manifest order, so displays list the
        # layers in that order whatever order the downloads finish in.
        missing = []
        for layer in layers:
            if self._directory.has_blob(layer.digest):
                self._progress(layer.digest, layer.size, layer.size)
            elif layer not in missing:
                missing.append(layer)
                self._progress(layer.digest, layer.size, 0)
        if not missing:
            return
        with ThreadPoolExecutor(max_workers=min(_WORKERS, len(missing))) as pool:
            futures = [pool.submit(self._download_blob, layer) for layer in missing]
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error

    def _download_blob(self, descriptor: Descriptor) -> None:
        for attempt in range(1, _BODY_ATTEMPTS + 1):
            try:
                self._download_once(descriptor)
                return
            except _BodyBroken as broken:
                if attempt == _BODY_ATTEMPTS:
                    raise broken.error from None
                logger.info("download of %s broke; retrying", descriptor.digest)

    def _download_once(self, descriptor: Descriptor) -> None:
        url = self._blob_url(descriptor.digest)
        response = self._client.request(
            "GET",
            url,
            scopes=self._scopes,
            action="blob pull",
            reference=self._name,
            # The digest is of the bytes as stored: no transfer compression.
            headers={"Accept-Encoding": "identity"},
            follow_redirects=True,
            bulk=True,
        )
        self._client.check(response, reference=self._name, action="blob pull")
        source = response.url
        total = descriptor.size
        try:
            with self._directory.blob_writer(expected=descriptor.digest) as writer:
                for chunk in _pieces(response):
                    if writer.size + len(chunk) > total:
                        raise self._invalid(
                            f"blob {descriptor.digest} is longer than the {total} "
                            "bytes its descriptor says",
                            source,
                        )
                    writer.write(chunk)
                    self._progress(descriptor.digest, total, writer.size)
                if writer.size != total:
                    raise self._invalid(
                        f"blob {descriptor.digest} is {writer.size} bytes, not the "
                        f"{total} its descriptor says",
                        source,
                    )
        except DigestMismatch as exc:
            raise self._invalid(
                f"blob does not match its digest: expected {exc.expected}, "
                f"got {exc.actual}",
                source,
            ) from None
        except httpx.TransportError as exc:
            error = RegistryError(
                f"pull of {self._name}: download of blob {descriptor.digest} from "
                f"{public_url(source)} failed: {exc}",
                url=public_url(source),
                reference=self._name,
            )
            raise _BodyBroken(error) from exc
        finally:
            response.close()
        logger.debug("downloaded blob %s", descriptor.digest)

    def _progress(self, digest: Digest, total: int, done: int) -> None:
        if self._on_progress is not None:
            self._on_progress(TransferProgress(digest, total, done, self._name))


def _pieces(response: httpx.Response) -> Iterator[bytes | memoryview]:
    # A bulk body is read into one reused buffer: each piece is only valid
    # until the next is asked for, which the writer allows (it copies).
    stream = BulkBody.of(response)
    if stream is None:
        yield from response.iter_raw()
        return
    buffer = memoryview(bytearray(_CHUNK))
    while count := stream.readinto(buffer):
        yield buffer[:count]


class _BodyBroken(Exception):
    def __init__(self, error: RegistryError) -> None:
        self.error = error
        super().__init__(str(error))


def _variant_matches(found: Platform | None, wanted: Platform) -> bool:
    variant = found.variant if found is not None else None
    if wanted.variant is None:
        return variant is None or (wanted.architecture == "arm64" and variant == "v8")
    return variant == wanted.variant


def _platform_text(platform: Platform | None) -> str:
    if platform is None:
        return "unknown"
    text = f"{platform.os}/{platform.architecture}"
    return f"{text}/{platform.variant}" if platform.variant else text
