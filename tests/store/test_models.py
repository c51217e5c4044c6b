"""Tests for the OCI models and their canonical JSON."""

import subprocess
import sys

import pytest

from layercake.errors import StoreCorrupted
from layercake.store import (
    ContainerConfig,
    Descriptor,
    Digest,
    Healthcheck,
    History,
    ImageConfig,
    Index,
    Manifest,
    MediaType,
    Platform,
    RootFS,
    from_json,
    host_platform,
    to_json,
)

A = Digest("sha256", "a" * 64)
B = Digest("sha256", "b" * 64)


def test_manifest_serialises_to_exact_canonical_bytes() -> None:
    """A manifest's JSON has the spec's names, in a fixed order, compact."""
    manifest = Manifest(
        config=Descriptor(MediaType.OCI_CONFIG, A, 123),
        layers=(Descriptor(MediaType.OCI_LAYER, B, 456),),
    )
    assert to_json(manifest) == (
        b'{"schemaVersion":2,'
        b'"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
        b'"digest":"sha256:' + b"a" * 64 + b'","size":123},'
        b'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar",'
        b'"digest":"sha256:' + b"b" * 64 + b'","size":456}]}'
    )


def test_config_serialises_to_exact_canonical_bytes() -> None:
    """An image config uses Docker's capitalised names and omits empty fields."""
    config = ImageConfig(
        architecture="amd64",
        os="linux",
        config=ContainerConfig(
            env=("PATH=/bin",), cmd=("sh",), working_dir="/w", labels={"a": "1"}
        ),
        rootfs=RootFS(diff_ids=(A,)),
        history=(History(created_by="ADD x /", comment="c"),),
        created="2024-01-01T00:00:00Z",
    )
    assert to_json(config) == (
        b'{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux",'
        b'"config":{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/w",'
        b'"Labels":{"a":"1"}},'
        b'"rootfs":{"type":"layers","diff_ids":["sha256:' + b"a" * 64 + b'"]},'
        b'"history":[{"created_by":"ADD x /","comment":"c"}]}'
    )


def test_empty_entrypoint_is_kept_but_none_is_omitted() -> None:
    """An explicit empty Entrypoint differs from none and survives the JSON."""
    assert to_json(ContainerConfig(entrypoint=(), cmd=None)) == b'{"Entrypoint":[]}'
    assert to_json(ContainerConfig()) == b"{}"


def test_docker_extensions_use_docker_names() -> None:
    """Shell, OnBuild, Healthcheck and friends use the names Docker writes."""
    config = ContainerConfig(
        user="1:2",
        exposed_ports={"80/tcp": {}},
        volumes={"/data": {}},
        stop_signal="SIGINT",
        shell=("/bin/bash", "-c"),
        on_build=("RUN x",),
        healthcheck=Healthcheck(test=("CMD", "true"), interval=10**9, retries=3),
    )
    assert to_json(config) == (
        b'{"User":"1:2","ExposedPorts":{"80/tcp":{}},"Volumes":{"/data":{}},'
        b'"StopSignal":"SIGINT","Shell":["/bin/bash","-c"],"OnBuild":["RUN x"],'
        b'"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000,"Retries":3}}'
    )


def test_index_with_platform_round_trips() -> None:
    """An index with platforms and annotations parses back to an equal value."""
    index = Index(
        manifests=(
            Descriptor(
                MediaType.OCI_MANIFEST,
                A,
                7,
                annotations={"k": "v"},
                platform=Platform("arm64", "linux", variant="v8"),
            ),
        )
    )
    data = to_json(index)
    assert b'"platform":{"architecture":"arm64","os":"linux","variant":"v8"}' in data
    assert from_json(Index, data) == index


def test_config_round_trips_with_every_field() -> None:
    """A config using every field parses back to an equal value."""
    config = ImageConfig(
        architecture="arm",
        os="linux",
        variant="v7",
        author="me",
        config=ContainerConfig(
            user="u",
            env=("A=1",),
            entrypoint=("/e",),
            cmd=("c",),
            working_dir="/",
            labels={"l": "v"},
            exposed_ports={"53/udp": {}},
            volumes={"/v": {}},
            stop_signal="9",
            shell=("sh", "-c"),
            on_build=("RUN a",),
            healthcheck=Healthcheck(("NONE",), 1, 2, 3, 4, 5),
        ),
        rootfs=RootFS((A, B)),
        history=(History("t", "b", "a", "c", True),),
        created="t",
    )
    assert from_json(ImageConfig, to_json(config)) == config


def test_docker_nulls_and_unknown_keys_are_accepted() -> None:
    """A config as Docker writes it (nulls, extra keys) parses to defaults."""
    data = (
        b'{"architecture":"amd64","os":"linux","docker_version":"24",'
        b'"config":{"Env":null,"Cmd":null,"Labels":null,"Hostname":""},'
        b'"rootfs":{"type":"layers","diff_ids":[]}}'
    )
    config = from_json(ImageConfig, data)
    assert config.config == ContainerConfig()
    assert config.rootfs == RootFS(())


def test_malformed_json_names_the_digest() -> None:
    """Bad JSON raises StoreCorrupted naming the digest and the problem."""
    with pytest.raises(StoreCorrupted) as info:
        from_json(Manifest, b'{"config":{"digest":"sha256:x"}}', digest=A)
    assert str(info.value) == (
        f"malformed Manifest json {A}: required field missing @ "
        "$.config.mediaType; invalid digest 'sha256:x': expected 64 lowercase hex "
        "digits @ $.config.digest; required field missing @ $.config.size; "
        "required field missing @ $.layers"
    )
    assert info.value.digest == str(A)


def test_invalid_json_text_is_store_corrupted() -> None:
    """Bytes that are not JSON at all raise StoreCorrupted."""
    with pytest.raises(StoreCorrupted) as info:
        from_json(Index, b"{", digest=A)
    assert str(info.value).startswith(f"malformed Index json {A}: ")


def test_models_are_frozen_and_mappings_read_only() -> None:
    """Models cannot be changed after creation, not even their mappings."""
    descriptor = Descriptor(MediaType.OCI_LAYER, A, 1, annotations={"a": "b"})
    with pytest.raises(AttributeError):
        descriptor.size = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        descriptor.annotations["a"] = "c"  # type: ignore[index]


def test_host_platform_uses_go_architecture_names() -> None:
    """The host platform is linux with a GOARCH name such as amd64."""
    platform = host_platform()
    assert platform.os == "linux"
    assert platform.architecture in {
        "amd64",
        "arm64",
        "arm",
        "386",
        "ppc64le",
        "s390x",
        "riscv64",
    }


def test_models_are_hashable_and_equal_values_hash_equal() -> None:
    """Descriptors and configs can be set members and dict keys."""
    first = Descriptor(MediaType.OCI_LAYER, A, 1, annotations={"a": "b"})
    second = Descriptor(MediaType.OCI_LAYER, A, 1, annotations={"a": "b"})
    assert {first, second} == {first}
    assert hash(ContainerConfig(labels={"x": "y"})) == hash(
        ContainerConfig(labels={"x": "y"})
    )


def test_config_without_run_defaults_is_read():
    """The OCI spec makes "config" optional; such an image config still reads."""
    data = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    config = from_json(ImageConfig, data)
    assert (config.config, config.rootfs.diff_ids) == (ContainerConfig(), ())


def _every_field_documents() -> list[tuple[str, object]]:
    config = ImageConfig(
        architecture="arm",
        os="linux",
        variant="v7",
        os_version="1",
        os_features=("f",),
        author="me",
        config=ContainerConfig(
            user="u",
            env=("A=1",),
            entrypoint=("/e",),
            cmd=("c",),
            working_dir="/",
            labels={"l": "v"},
            exposed_ports={"53/udp": {}},
            volumes={"/v": {}},
            stop_signal="9",
            shell=("sh", "-c"),
            on_build=("RUN a",),
            healthcheck=Healthcheck(("NONE",), 1, 2, 3, 4, 5),
        ),
        rootfs=RootFS((A, B)),
        history=(History("t", "b", "a", "c", True),),
        created="t",
    )
    layer = Descriptor(
        MediaType.OCI_LAYER,
        B,
        456,
        annotations={"k": "v"},
        platform=Platform("arm64", "linux", "v8", "10", ("x",)),
        urls=("https://example.invalid/b",),
    )
    manifest = Manifest(
        config=Descriptor(MediaType.OCI_CONFIG, A, 123),
        layers=(layer,),
        annotations={"a": "b"},
    )
    index = Index(manifests=(layer,), annotations={"i": "j"})
    return [("ImageConfig", config), ("Manifest", manifest), ("Index", index)]


def test_well_formed_documents_are_read_without_importing_cattrs(tmp_path) -> None:
    """Reading what to_json wrote needs no cattrs, whose import slows start-up."""
    for name, model in _every_field_documents():
        (tmp_path / name).write_bytes(to_json(model))
    code = (
        "import sys; from pathlib import Path; from layercake import store\n"
        f"for name in ('ImageConfig', 'Manifest', 'Index'):\n"
        f"    data = Path({str(tmp_path)!r}, name).read_bytes()\n"
        "    print(repr(store.from_json(getattr(store, name), data)))\n"
        "print('cattrs' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    expected = [repr(model) for _, model in _every_field_documents()]
    assert result.stdout.splitlines() == [*expected, "False"]


def test_a_value_of_another_type_is_converted_as_before() -> None:
    """A size written as a string or a null list still reads as it always did."""
    data = (
        b'{"schemaVersion":"2","config":{"mediaType":"m","digest":"sha256:'
        + b"a" * 64
        + b'","size":"7"},"layers":null}'
    )
    with pytest.raises(StoreCorrupted, match="required field missing @ \\$.layers"):
        from_json(Manifest, data)
    fixed = data.replace(b'"layers":null', b'"layers":[]')
    assert from_json(Manifest, fixed) == Manifest(
        config=Descriptor("m", A, 7), layers=()
    )
