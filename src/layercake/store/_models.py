"""OCI image models and their canonical JSON form.

The classes are frozen attrs values with snake_case names; one cattrs
converter maps them to the exact field names of the OCI image spec (and
Docker's capitalised container config names). :func:`to_json` writes keys in
a fixed order, compact, so equal values always serialise to equal bytes and
therefore to equal digests. :func:`from_json` reads a document whose values
are all of their fields' types without cattrs, so starting a container does
not import it; anything else goes through the converter.
"""

from __future__ import annotations

import functools
import json
import platform as _platform
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from layercake.errors import StoreCorrupted, StoreError

if TYPE_CHECKING:
    import cattrs

from ._digest import Digest
from ._media import MediaType

__all__ = [
    "ContainerConfig",
    "Descriptor",
    "Healthcheck",
    "History",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "RootFS",
    "from_json",
    "host_platform",
    "to_json",
]

T = TypeVar("T")


# Mapping fields hold a read-only view over a private copy, so they cannot
# change under the frozen object; they take part in equality but not in the
# hash (a mapping proxy is unhashable), which keeps every model hashable.
def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _frozen_nested(value: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in value.items()})


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _descriptors(value: Iterable[Descriptor]) -> tuple[Descriptor, ...]:
    return tuple(value)


def _digests(value: Iterable[Digest]) -> tuple[Digest, ...]:
    return tuple(value)


def _histories(value: Iterable[History]) -> tuple[History, ...]:
    return tuple(value)


def _tuple_or_none(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _empty_map() -> Mapping[str, Any]:
    return MappingProxyType({})


@attrs.frozen
class Platform:
    """The platform an image or manifest is for (``architecture``/``os``)."""

    architecture: str
    os: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = attrs.field(default=(), converter=_strs)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``"os/arch"`` or ``"os/arch/variant"`` (``linux/arm64/v8``).

        Raises:
            ValueError: the text does not have two or three non-empty parts.
        """
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(part.strip() for part in parts):
            raise ValueError(
                f"invalid platform {text!r}: expected os/arch or os/arch/variant"
                " (e.g. linux/amd64)"
            )
        variant = parts[2] if len(parts) == 3 else None
        return cls(architecture=parts[1], os=parts[0], variant=variant)


@attrs.frozen
class Descriptor:
    """A reference to a blob: its media type, digest and size."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = attrs.field(
        factory=_empty_map, converter=_frozen_map, hash=False
    )
    platform: Platform | None = None
    urls: tuple[str, ...] = attrs.field(default=(), converter=_strs)


@attrs.frozen
class Manifest:
    """An image manifest: one config blob and an ordered list of layers."""

    config: Descriptor
    layers: tuple[Descriptor, ...] = attrs.field(converter=_descriptors)
    media_type: str = MediaType.OCI_MANIFEST
    annotations: Mapping[str, str] = attrs.field(
        factory=_empty_map, converter=_frozen_map, hash=False
    )
    schema_version: int = 2


@attrs.frozen
class Index:
    """An image index (or Docker manifest list): manifests per platform."""

    manifests: tuple[Descriptor, ...] = attrs.field(converter=_descriptors)
    media_type: str = MediaType.OCI_INDEX
    annotations: Mapping[str, str] = attrs.field(
        factory=_empty_map, converter=_frozen_map, hash=False
    )
    schema_version: int = 2


@attrs.frozen
class Healthcheck:
    """Docker's HEALTHCHECK settings; durations are in nanoseconds."""

    test: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@attrs.frozen
class ContainerConfig:
    """The run defaults of an image (the ``config`` object of its config)."""

    user: str = ""
    env: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    entrypoint: tuple[str, ...] | None = attrs.field(
        default=None, converter=_tuple_or_none
    )
    cmd: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    working_dir: str = ""
    labels: Mapping[str, str] = attrs.field(
        factory=_empty_map, converter=_frozen_map, hash=False
    )
    exposed_ports: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=_empty_map, converter=_frozen_nested, hash=False
    )
    volumes: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=_empty_map, converter=_frozen_nested, hash=False
    )
    stop_signal: str = ""
    shell: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)
    on_build: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    healthcheck: Healthcheck | None = None


@attrs.frozen
class RootFS:
    """The uncompressed digests (diff ids) of an image's layers, in order."""

    diff_ids: tuple[Digest, ...] = attrs.field(converter=_digests)
    type: str = "layers"


@attrs.frozen
class History:
    """One step of an image's history; ``empty_layer`` if it added no layer."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False


@attrs.frozen
class ImageConfig:
    """An image configuration: platform, run defaults, layers and history."""

    architecture: str
    os: str
    # Optional in the OCI image spec: an image may have no run defaults.
    config: ContainerConfig = attrs.field(factory=ContainerConfig, kw_only=True)
    rootfs: RootFS
    history: tuple[History, ...] = attrs.field(default=(), converter=_histories)
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = attrs.field(default=(), converter=_strs)


# For each class: (python name, JSON name, always written) in the order the
# keys appear in JSON. Fields not always written are left out when they hold
# their default (None, empty, zero or False).
_JSON_FIELDS: dict[type, tuple[tuple[str, str, bool], ...]] = {
    Platform: (
        ("architecture", "architecture", True),
        ("os", "os", True),
        ("os_version", "os.version", False),
        ("os_features", "os.features", False),
        ("variant", "variant", False),
    ),
    Descriptor: (
        ("media_type", "mediaType", True),
        ("digest", "digest", True),
        ("size", "size", True),
        ("urls", "urls", False),
        ("annotations", "annotations", False),
        ("platform", "platform", False),
    ),
    Manifest: (
        ("schema_version", "schemaVersion", True),
        ("media_type", "mediaType", True),
        ("config", "config", True),
        ("layers", "layers", True),
        ("annotations", "annotations", False),
    ),
    Index: (
        ("schema_version", "schemaVersion", True),
        ("media_type", "mediaType", True),
        ("manifests", "manifests", True),
        ("annotations", "annotations", False),
    ),
    Healthcheck: (
        ("test", "Test", False),
        ("interval", "Interval", False),
        ("timeout", "Timeout", False),
        ("start_period", "StartPeriod", False),
        ("start_interval", "StartInterval", False),
        ("retries", "Retries", False),
    ),
    ContainerConfig: (
        ("user", "User", False),
        ("exposed_ports", "ExposedPorts", False),
        ("env", "Env", False),
        ("entrypoint", "Entrypoint", False),
        ("cmd", "Cmd", False),
        ("volumes", "Volumes", False),
        ("working_dir", "WorkingDir", False),
        ("labels", "Labels", False),
        ("stop_signal", "StopSignal", False),
        ("shell", "Shell", False),
        ("on_build", "OnBuild", False),
        ("healthcheck", "Healthcheck", False),
    ),
    RootFS: (
        ("type", "type", True),
        ("diff_ids", "diff_ids", True),
    ),
    History: (
        ("created", "created", False),
        ("created_by", "created_by", False),
        ("author", "author", False),
        ("comment", "comment", False),
        ("empty_layer", "empty_layer", False),
    ),
    ImageConfig: (
        ("created", "created", False),
        ("author", "author", False),
        ("architecture", "architecture", True),
        ("os", "os", True),
        ("os_version", "os.version", False),
        ("os_features", "os.features", False),
        ("variant", "variant", False),
        ("config", "config", True),
        ("rootfs", "rootfs", True),
        ("history", "history", False),
    ),
}


def _structure_digest(value: Any, _: type) -> Digest:
    if not isinstance(value, str):
        raise StoreError(f"invalid digest {value!r}: not a string")
    return Digest.parse(value)


def _build_converter() -> cattrs.Converter:
    # Imported here: cattrs costs tens of milliseconds to import, which a
    # command that never reads JSON should not pay.
    import cattrs
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    converter = cattrs.Converter()
    converter.register_unstructure_hook(Digest, str)
    converter.register_structure_hook(Digest, _structure_digest)
    converter.register_unstructure_hook(MappingProxyType, dict)

    def renames(cls: type) -> dict[str, Any]:
        return {name: override(rename=key) for name, key, _ in _JSON_FIELDS[cls]}

    def structure(cls: type) -> Any:
        return _dropping_nulls(make_dict_structure_fn(cls, converter, **renames(cls)))

    def unstructure(cls: type) -> Any:
        function: Any = make_dict_unstructure_fn(cls, converter, **renames(cls))
        return _ordered(function, _JSON_FIELDS[cls], attrs.fields(cls))

    # Each model's functions are generated when it is first converted: a
    # container start reads a manifest and a config, not every model.
    converter.register_structure_hook_factory(_JSON_FIELDS.__contains__, structure)
    converter.register_unstructure_hook_factory(_JSON_FIELDS.__contains__, unstructure)
    return converter


def _dropping_nulls(structure: Any) -> Any:
    # Docker writes null for absent lists and maps ("Env": null); treat a
    # null exactly like a missing key so the field takes its default.
    def hook(value: Any, cls: type) -> Any:
        if not isinstance(value, dict):
            raise StoreError(f"expected a JSON object, got {type(value).__name__}")
        return structure({k: v for k, v in value.items() if v is not None}, cls)

    return hook


def _ordered(
    unstructure: Any, fields: tuple[tuple[str, str, bool], ...], attributes: Any
) -> Any:
    defaults = {}
    for name, key, always in fields:
        if always:
            continue
        default = getattr(attributes, name).default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        defaults[key] = default

    def hook(obj: Any) -> dict[str, Any]:
        raw = unstructure(obj)
        out = {}
        for _, key, always in fields:
            value = raw[key]
            default = defaults.get(key)
            if always or not (value == default or _empty(value) and _empty(default)):
                out[key] = value
        return out

    return hook


def _empty(value: Any) -> bool:
    return isinstance(value, (dict, list, tuple, MappingProxyType)) and not value


@functools.cache
def _converter() -> cattrs.Converter:
    # Built on first use: making the hooks costs tens of milliseconds, which
    # a command that never reads JSON should not pay at start-up.
    return _build_converter()


def to_json(obj: Any) -> bytes:
    """Serialise a model to canonical JSON bytes (compact, fixed key order).

    Equal values give equal bytes, so the digest of the result is stable.
    """
    raw = _converter().unstructure(obj)
    text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def from_json(cls: type[T], data: bytes, *, digest: Digest | None = None) -> T:
    """Parse JSON bytes into a model of type ``cls``; unknown keys are ignored.

    Raises:
        StoreCorrupted: the bytes are not valid JSON for ``cls``; the message
            names the digest when one is given.
    """
    try:
        return _read_plain(cls, json.loads(data))
    except (_NotPlain, StoreError, TypeError, ValueError):
        # The cattrs reader takes what it always took, and words the error.
        pass
    import cattrs

    where = f" {digest}" if digest is not None else ""
    try:
        raw = json.loads(data)
        return _converter().structure(raw, cls)
    except (ValueError, TypeError, StoreError, cattrs.BaseValidationError) as exc:
        reason = _reason(exc)
        raise StoreCorrupted(
            f"malformed {cls.__name__} json{where}: {reason}",
            digest=None if digest is None else str(digest),
        ) from exc


class _NotPlain(Exception):
    """A JSON value that is not exactly of its field's type."""


# A well-formed document (as layercake, docker and registries write them) is
# read without cattrs, whose import and generated functions cost a container
# start tens of milliseconds. Each value must already be of its field's type;
# anything else goes to the cattrs reader, which converts what it can and
# names what is wrong, so the two never give different models.
def _read_plain(cls: type[T], raw: Any) -> T:
    if type(raw) is not dict:
        raise _NotPlain
    # The annotations as written: cattrs replaces the fields' types by the
    # classes they name once it has converted a model.
    annotations = cls.__annotations__
    values = {}
    for name, key, _ in _JSON_FIELDS[cls]:
        value = raw.get(key)
        if value is not None:  # Docker's null is a missing key
            values[name] = _plain_value(annotations[name], value)
    return cls(**values)


def _plain_value(annotation: str, value: Any) -> Any:
    kind = annotation.removesuffix(" | None")
    if kind.startswith("tuple[") and kind.endswith(", ...]"):
        if type(value) is not list:
            raise _NotPlain
        return tuple(_plain_value(kind[6:-6], item) for item in value)
    if kind in _PLAIN_SCALARS:
        if type(value) is not _PLAIN_SCALARS[kind]:
            raise _NotPlain
        return value
    if kind == "Digest":
        if type(value) is not str:
            raise _NotPlain
        return Digest.parse(value)
    if kind == "Mapping[str, str]":
        if type(value) is not dict or any(type(v) is not str for v in value.values()):
            raise _NotPlain
        return value
    if kind == "Mapping[str, Mapping[str, Any]]":
        if type(value) is not dict or any(type(v) is not dict for v in value.values()):
            raise _NotPlain
        return value
    return _read_plain(_MODELS[kind], value)


_PLAIN_SCALARS = {"str": str, "int": int, "bool": bool}
_MODELS = {cls.__name__: cls for cls in _JSON_FIELDS}


def _reason(exc: Exception) -> str:
    import cattrs

    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc, format_exception=_leaf)
        return "; ".join(_json_path(message) for message in messages)
    return str(exc)


# cattrs reports paths with Python names; users see the JSON's names.
_JSON_NAMES = {name: key for fields in _JSON_FIELDS.values() for name, key, _ in fields}


def _json_path(message: str) -> str:
    text, sep, path = message.rpartition(" @ ")
    if not sep:
        return message
    parts = path.split(".")
    renamed = [_JSON_NAMES.get(part, part) for part in parts]
    return f"{text} @ {'.'.join(renamed)}"


def _leaf(exc: BaseException, type_: type | None) -> str:
    from cattrs.v import format_exception

    if isinstance(exc, StoreError):
        return str(exc)
    return format_exception(exc, type_)


_GOARCH = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
    "mips64": ("mips64", None),
    "loongarch64": ("loong64", None),
}


def host_platform() -> Platform:
    """Return this machine's platform with Go's architecture names.

    ``x86_64`` becomes ``amd64``, ``aarch64`` becomes ``arm64``; a machine
    name with no known Go equivalent is passed through unchanged.
    """
    machine = _platform.machine().lower()
    architecture, variant = _GOARCH.get(machine, (machine, None))
    return Platform(architecture=architecture, os="linux", variant=variant)
