"""StoreDirectory: an OCI image layout plus unpacked layers, cache and temp."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from layercake.errors import DigestMismatch, StoreCorrupted, StoreError

from ._atomic import replace_file
from ._blobs import Blobs, BlobWriter
from ._cache import BuildCache
from ._digest import Digest
from ._index import Tags
from ._leftovers import sweep_dead, temp_prefix
from ._media import MediaType
from ._models import Descriptor, Index, from_json, to_json

if TYPE_CHECKING:
    from ._unpack import Owners

__all__ = ["StoreDirectory"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` as an integer, or ``None`` if unset or not a number."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(text) if text.isdigit() else None


def _env_layer_limit() -> int | None:
    text = os.environ.get("LAYERCAKE_MAX_LAYER_SIZE", "").strip()
    return int(text) if text.isdigit() else None


def _open_up(directory: Path) -> None:
    """Give the user every right on the directories it owns under ``directory``."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.chmod(entry.path, 0o700)
            _open_up(Path(entry.path))


class StoreDirectory:
    """One store directory: an OCI image layout that layercake also works in.

    Opening a directory creates whatever part of the layout is missing and
    never rewrites what exists. Blobs become visible only complete and
    verified; tag updates are locked and atomic; layers unpack into a temp
    directory and appear by rename.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_layer_size: int | None = None,
        mapped_root: Callable[[Callable[[], bytes | None]], bytes] | None = None,
        owners_inside: Callable[[int, int], tuple[int, int]] | None = None,
    ) -> None:
        self._root = Path(root).absolute()
        #: Runs a function as root of a user namespace that maps the image's
        #: ids (an unprivileged user with subordinate ids): unpacked layers
        #: then get their owners, and trees holding them can be removed.
        self.mapped_root = mapped_root
        #: Turns owners on disk into the ids a layer records (those of a
        #: rootless container's user namespace); ``None`` keeps them.
        self.owners_inside = owners_inside
        #: The largest uncompressed layer accepted, in bytes, beside the free
        #: space of the store's file system; ``None`` means only free space
        #: counts. Defaults to ``$LAYERCAKE_MAX_LAYER_SIZE`` when set.
        self.max_layer_size = (
            max_layer_size if max_layer_size is not None else _env_layer_limit()
        )
        self._create_layout()
        tmp = self._root / "tmp"
        self._blobs = Blobs(self._root / "blobs", tmp)
        self._tags = Tags(self._root, tmp)
        self._cache = BuildCache(self._root / "cache", tmp)
        # A killed pull, load or build leaves its temp files behind; their
        # names say which process made them, so dead ones go right away.
        sweep_dead(tmp)

    def _create_layout(self) -> None:
        root = self._root
        for folder in ("blobs/sha256", "layers", "cache", "containers"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(mode=0o700, exist_ok=True)
        self._create_file("oci-layout", lambda: _LAYOUT_VERSION)
        self._create_file("index.json", lambda: to_json(Index(manifests=())))
        self._check_layout()

    def _create_file(self, name: str, data: Callable[[], bytes]) -> None:
        path = self._root / name
        if not path.exists():
            # Another process may create it at the same moment; both write
            # the same bytes and the rename is atomic.
            replace_file(path, data(), temp_dir=self._root / "tmp")

    def _check_layout(self) -> None:
        path = self._root / "oci-layout"
        try:
            version = json.loads(path.read_bytes())["imageLayoutVersion"]
        except (ValueError, KeyError, TypeError):
            raise StoreCorrupted(
                f"not an OCI image layout: {path} is malformed", path=str(path)
            ) from None
        if not isinstance(version, str) or not version.startswith("1."):
            raise StoreCorrupted(
                f"unsupported OCI layout version {version!r} in {path}",
                path=str(path),
            )

    @property
    def root(self) -> Path:
        """The store's directory."""
        return self._root

    @property
    def layers_dir(self) -> Path:
        """Where unpacked layers live, one ``layers/<diff id hex>`` each."""
        return self._root / "layers"

    @property
    def containers_dir(self) -> Path:
        """Where containers keep their writable layers and state."""
        return self._root / "containers"

    # blobs

    def has_blob(self, digest: Digest) -> bool:
        """Return whether the blob ``digest`` is in the store."""
        return self._blobs.has(digest)

    def blob_path(self, digest: Digest) -> Path:
        """Return ``blobs/sha256/<hex>`` for ``digest`` (it may not exist)."""
        return self._blobs.path(digest)

    def write_blob(self, data: bytes, *, expected: Digest | None = None) -> Digest:
        """Store ``data`` as a blob and return its digest.

        Raises:
            DigestMismatch: ``data`` does not hash to ``expected``.
        """
        return self._blobs.write(data, expected=expected)

    def blob_writer(
        self, *, expected: Digest | None = None
    ) -> contextlib.AbstractContextManager[BlobWriter]:
        """Stream a blob in: ``with store.blob_writer() as w: w.write(...)``.

        After the block, ``w.digest`` and ``w.size`` describe the blob. If the
        block raises, nothing is left behind.

        Raises:
            DigestMismatch: the bytes written do not hash to ``expected``.
        """
        return self._blobs.writer(expected=expected)

    def read_blob(self, digest: Digest) -> bytes:
        """Return a blob's bytes, verified against ``digest``.

        Raises:
            BlobNotFound: the blob is missing.
            DigestMismatch: the blob's content does not match its digest.
        """
        return self._blobs.read(digest)

    def open_blob(self, digest: Digest) -> BinaryIO:
        """Open a blob for streaming reads (not verified while reading).

        Raises:
            BlobNotFound: the blob is missing.
        """
        return self._blobs.open(digest)

    def write_json(self, obj: Any, media_type: str) -> Descriptor:
        """Store a model as canonical JSON; return its descriptor."""
        data = to_json(obj)
        digest = self._blobs.write(data)
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def read_json(self, cls: type[T], digest: Digest) -> T:
        """Read and verify a JSON blob and parse it as ``cls``.

        Raises:
            BlobNotFound: the blob is missing.
            DigestMismatch: the blob's content does not match its digest.
            StoreCorrupted: the blob is not valid JSON for ``cls``.
        """
        return from_json(cls, self._blobs.read(digest), digest=digest)

    # tags

    def set_tag(self, name: str, manifest: Descriptor) -> None:
        """Tag ``manifest`` as ``name`` in ``index.json``, replacing that tag.

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        self._tags.set(name, manifest)
        logger.info("tagged %s as %s", manifest.digest, name)

    def set_tags(self, pairs: list[tuple[str, Descriptor]]) -> None:
        """Set several tags in one atomic ``index.json`` update.

        A name given twice ends up pointing at its last manifest.

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        last = dict(pairs)
        self._tags.set_many(sorted(last.items(), key=lambda pair: pair[0]))

    def resolve_tag(self, name: str) -> Descriptor | None:
        """Return the descriptor tagged ``name``, or ``None``.

        The returned descriptor carries no ref.name annotation, so it equals
        what was given to :meth:`set_tag`.

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        return self._tags.resolve(name)

    def remove_tag(self, name: str) -> bool:
        """Remove the tag ``name``; return whether it existed (blobs stay).

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        return self._tags.remove(name)

    def untagged(self) -> list[Descriptor]:
        """Return the images no tag names (unnamed ``index.json`` entries).

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        return self._tags.untagged()

    def add_untagged(self, manifest: Descriptor) -> None:
        """Record ``manifest`` as an image (dangling until tagged).

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        self._tags.add_untagged(manifest)

    def remove_image(self, digest: Digest) -> list[str]:
        """Drop every ``index.json`` entry of ``digest``; return its tags.

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        return self._tags.remove_image(digest)

    def tags(self) -> list[tuple[str, Descriptor]]:
        """Return all (name, descriptor) pairs sorted by name.

        Raises:
            StoreCorrupted: ``index.json`` cannot be read.
        """
        return self._tags.all()

    # layers

    def write_layer(self, directory: Path) -> Descriptor:
        """Pack ``directory`` into an uncompressed OCI layer blob.

        The digest of the returned descriptor is also the layer's diff id.
        See :func:`pack_directory` for what the tar holds. When the
        ``SOURCE_DATE_EPOCH`` environment variable holds a number, entry
        mtimes are clamped to it, so the same tree gives the same digest.

        Raises:
            StoreError: a file changed while packing, or the tree is an
                overlay upper dir that depends on its lower layers
                (metacopy or redirect_dir entries).
        """
        from ._pack import pack_directory

        if self.mapped_root is not None:
            return self._write_layer_mapped(directory, self.mapped_root)
        with self._blobs.writer() as writer:
            pack_directory(
                directory,
                writer,
                clamp_mtime=source_date_epoch(),
                owners=self.owners_inside,
            )
        logger.info("packed %s into layer %s", directory, writer.digest)
        return Descriptor(
            media_type=MediaType.OCI_LAYER, digest=writer.digest, size=writer.size
        )

    def _write_layer_mapped(
        self, directory: Path, mapped_root: Callable[[Callable[[], None]], bytes]
    ) -> Descriptor:
        # Files owned by subordinate ids may be unreadable to the user: the
        # tar is written as root of the user namespace, where stat also
        # shows the ids as the image has them.
        from ._pack import pack_directory

        staging = self.tmp_dir("pack-")
        tar = staging / "layer.tar"
        clamp = source_date_epoch()

        def pack() -> None:
            with open(tar, "wb") as out:
                pack_directory(directory, out, clamp_mtime=clamp)

        try:
            try:
                mapped_root(pack)
            except OSError as error:
                raise StoreError(
                    f"cannot pack {directory} into a layer: {error.strerror}",
                    path=str(directory),
                ) from None
            with self._blobs.writer() as writer, open(tar, "rb") as packed:
                while chunk := packed.read(1 << 20):
                    writer.write(chunk)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("packed %s into layer %s", directory, writer.digest)
        return Descriptor(
            media_type=MediaType.OCI_LAYER, digest=writer.digest, size=writer.size
        )

    def adopt_unpacked(self, directory: Path, diff_id: Digest) -> Path:
        """Move ``directory`` (a tree in overlay form) to ``layers/<hex>``.

        ``directory`` must be on the store's file system (stage it under
        :meth:`tmp_dir`). If the layer is already unpacked, ``directory`` is
        removed instead. Returns the unpacked layer's path.

        Raises:
            StoreError: ``directory`` is on another file system.
        """
        target = self.layers_dir / diff_id.hex
        if target.is_dir():
            shutil.rmtree(directory)
            return target
        os.chmod(directory, 0o755)
        self._publish(directory, target)
        return target

    def unpacked_layer(self, layer: Descriptor, diff_id: Digest) -> Path:
        """Return ``layers/<diff id hex>``, extracting the layer blob if needed.

        The blob (plain, gzip or zstd tar) is verified against the
        descriptor's digest and its uncompressed stream against ``diff_id``;
        the tree is extracted into a temp directory, whiteouts turned into
        overlay form, and renamed into place only when complete.

        Raises:
            BlobNotFound: the layer blob is missing.
            DigestMismatch: the blob or its uncompressed stream has the
                wrong digest.
            UnsafeArchiveEntry: an entry would escape the layer directory.
            StoreCorrupted: the blob is not a readable tar archive.
            StoreError: the store's file system is full, or the layer
                expands past :meth:`layer_size_limit` (a gzip bomb).
        """
        target = self.layers_dir / diff_id.hex
        if target.is_dir():
            return target

        staging = self.tmp_dir("layer-")
        try:
            self.extract_owned(layer, diff_id, staging)
            os.chmod(staging, 0o755)
        except BaseException as exc:
            self.remove_tree(staging)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreError(
                    f"cannot unpack layer {diff_id}: the store's file system "
                    f"is full ({self._root})",
                    path=str(self._root),
                ) from exc
            raise
        self._publish(staging, target)
        logger.info("unpacked layer %s into %s", diff_id, target)
        return target

    def extract_owned(self, layer: Descriptor, diff_id: Digest, into: Path) -> None:
        """:meth:`extract_verified`, then give entries their owners.

        As root the extraction sets owners itself; an unprivileged user's
        extraction sets them through :attr:`mapped_root` when there is one
        (else every entry stays the user's, root inside a container).

        Raises:
            the errors of :meth:`extract_verified`, and OSError when owners
            could not be set.
        """
        from ._unpack import apply_owners

        owners: Owners | None = [] if self.mapped_root is not None else None
        self.extract_verified(layer, diff_id, into, owners=owners)
        if owners and self.mapped_root is not None:
            self.mapped_root(functools.partial(apply_owners, owners))

    def remove_tree(self, path: Path) -> None:
        """Delete the tree ``path``, as mapped root where its owners need it.

        An unpacked layer or a container's files may belong to subordinate
        ids that the user cannot delete from, and a rootless overlay leaves
        its ``work/work`` with mode 0; what cannot be removed stays.
        """
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except PermissionError:
            if self.mapped_root is None:
                _open_up(path)
                shutil.rmtree(path, ignore_errors=True)
                return
            with contextlib.suppress(OSError):
                self.mapped_root(functools.partial(shutil.rmtree, path, True))

    def extract_verified(
        self,
        layer: Descriptor,
        diff_id: Digest,
        into: Path,
        *,
        owners: Owners | None = None,
    ) -> None:
        """Extract a layer blob into ``into`` (overlay form), checking both digests.

        ``owners`` collects what an unprivileged extraction could not chown.

        Raises:
            BlobNotFound: the layer blob is missing.
            DigestMismatch: the blob or its uncompressed stream is wrong.
            UnsafeArchiveEntry: an entry would escape ``into``.
            StoreCorrupted: the blob is not a readable tar archive.
            StoreError: the layer expands past :meth:`layer_size_limit`.
        """
        from ._unpack import HashingReader, compression, decompressed, extract_stream

        path = str(self.blob_path(layer.digest))
        limit = self.layer_size_limit()
        refusal = self.layer_refusal(diff_id, limit)
        with self._blobs.open(layer.digest) as blob:
            # An uncompressed blob is its own tar: hash its bytes once.
            plain_blob = compression(blob.read(6)) is None
            blob.seek(0)
            raw = HashingReader(blob)
            with decompressed(raw) as plain:  # type: ignore[arg-type]
                diff = HashingReader(
                    plain, limit=limit, refusal=refusal, hashing=not plain_blob
                )
                extract_stream(
                    diff,  # type: ignore[arg-type]
                    into,
                    whiteouts="overlay",
                    limit=limit,
                    refusal=refusal,
                    owners=owners,
                )
                actual_diff = diff.drain()
            actual = raw.drain()
            if plain_blob:
                actual_diff = actual
        if actual != layer.digest:
            raise DigestMismatch(str(layer.digest), str(actual), path=path)
        if actual_diff != diff_id:
            raise DigestMismatch(str(diff_id), str(actual_diff), path=path)

    def layer_size_limit(self) -> int:
        """Return the largest uncompressed layer the store takes in now, in bytes.

        That is the free space of the store's file system, or
        :attr:`max_layer_size` when it is smaller: a layer that expands past
        it (a gzip bomb) is refused before it can fill the disk.
        """
        st = os.statvfs(self._root)
        free = st.f_bavail * st.f_frsize
        cap = self.max_layer_size
        return free if cap is None else min(free, cap)

    def layer_refusal(self, layer: Digest | str, limit: int) -> str:
        """The message of the error refusing ``layer`` for expanding past ``limit``."""
        return (
            f"layer {layer} refused: its uncompressed tar is larger than {limit} "
            "bytes (the store's free space, or max_layer_size if smaller)"
        )

    def _publish(self, staging: Path, target: Path) -> None:
        try:
            os.rename(staging, target)
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise StoreError(
                    f"cannot move {staging} into the store: not on the store's "
                    "file system (stage it under tmp_dir())",
                    path=str(staging),
                ) from exc
            # Another process unpacked the same layer first: keep theirs.
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            self.remove_tree(staging)

    def tmp_dir(self, prefix: str = "") -> Path:
        """Create and return a fresh directory under ``root/tmp``.

        It is on the same file system as ``layers/``, so it can be renamed
        into place; the caller removes it when done.
        """
        path = Path(
            tempfile.mkdtemp(
                prefix=temp_prefix(prefix or "tmp"), dir=self._root / "tmp"
            )
        )
        os.chmod(path, 0o755)
        return path

    # build cache

    def cache_get(self, key: str) -> Digest | None:
        """Return the manifest digest cached under ``key``, or ``None``.

        Raises:
            StoreError: ``key`` is not lowercase hex.
            StoreCorrupted: the entry does not hold a digest.
        """
        return self._cache.get(key)

    def cache_put(self, key: str, manifest: Digest) -> None:
        """Cache ``manifest`` under ``key`` (atomic replace).

        Raises:
            StoreError: ``key`` is not lowercase hex.
        """
        self._cache.put(key, manifest)

    def cache_entries(self) -> list[tuple[str, Digest, float]]:
        """Return every build cache entry as (key, manifest digest, mtime).

        Entries that do not hold a digest are left out.
        """
        return self._cache.entries()

    def cache_remove(self, key: str) -> None:
        """Remove the build cache entry ``key`` if it exists.

        Raises:
            StoreError: ``key`` is not lowercase hex.
        """
        self._cache.remove(key)

    # space

    def blob_digests(self) -> list[Digest]:
        """Return the digest of every blob file in the store, sorted."""
        found = []
        for path in sorted((self._root / "blobs" / "sha256").iterdir()):
            try:
                found.append(Digest.parse(f"sha256:{path.name}"))
            except StoreError:
                logger.warning("ignoring stray file %s", path)
        return found

    def remove_blob(self, digest: Digest) -> None:
        """Delete the blob ``digest`` if present (a no-op otherwise)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.blob_path(digest))

    def remove_unpacked(self, diff_id: Digest) -> None:
        """Delete ``layers/<hex>``: renamed into ``tmp/`` first, so it goes at once."""
        target = self.layers_dir / diff_id.hex
        doomed = Path(
            tempfile.mkdtemp(prefix=temp_prefix("removed"), dir=self._root / "tmp")
        )
        try:
            os.rename(target, doomed / "layer")
        except FileNotFoundError:
            pass
        self.remove_tree(doomed)

    def __repr__(self) -> str:
        return f"StoreDirectory({str(self._root)!r})"
