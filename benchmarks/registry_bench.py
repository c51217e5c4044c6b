"""Push and pull of a ~300 MB image to a local registry, beside skopeo.

Usage::

    python benchmarks/registry_bench.py [--repeat N] [--size-mb 300]

Starts Debian's docker-registry on 127.0.0.1 with its storage in a temporary
directory, builds an image of three ~100 MB uncompressed layers (random
bytes, repetitive text, many small files) in a layercake store, and times,
as medians of N runs, each into an empty repository or an empty store:

- push: layercake as built (uncompressed layers), layercake with
  ``compression="gzip"``, and ``skopeo copy oci:STORE:TAG docker://...``
  (skopeo gzips uncompressed layers when it pushes to a registry);
- pull of the gzip image skopeo pushed: layercake into an empty store, and
  ``skopeo copy docker://... oci:DIR:TAG``.

Prints each median and the ratio ours / skopeo. Measures, never asserts.
``--only pull`` or ``--only push`` runs one direction. The library's pulls
share a TLS context within the process (built by the first run), while each
skopeo run is a new process.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import httpx

from layercake.store import (
    ContainerConfig,
    Descriptor,
    ImageConfig,
    Manifest,
    MediaType,
    RootFS,
    StoreDirectory,
)
from layercake.store._registry import pull, push

REGISTRY = "/usr/bin/docker-registry"


@contextmanager
def running_registry(root: Path) -> Iterator[str]:
    """Run docker-registry on a free 127.0.0.1 port; yield ``host:port``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(
        [REGISTRY, "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _tar(members: Iterator[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def build_image(store: StoreDirectory, layer_mb: int) -> Descriptor:
    """Write an image of three ~``layer_mb`` MB layers; tag it ``bench``."""
    size = layer_mb * 1024 * 1024
    rng = random.Random(5)
    words = b" ".join(
        rng.choice([b"layer", b"cake", b"registry", b"blob"]) for _ in range(4096)
    )
    layers = [
        _tar(iter([("random.bin", rng.randbytes(size))])),
        _tar(iter([("text.txt", (words * (size // len(words) + 1))[:size])])),
        _tar((f"files/{i:05}", rng.randbytes(8192)) for i in range(size // 8704)),
    ]
    descriptors = []
    for data in layers:
        digest = store.write_blob(data)
        descriptors.append(Descriptor(MediaType.OCI_LAYER, digest, len(data)))
    config = ImageConfig(
        architecture="amd64",
        os="linux",
        config=ContainerConfig(),
        rootfs=RootFS(diff_ids=[d.digest for d in descriptors]),
    )
    manifest = Manifest(
        config=store.write_json(config, MediaType.OCI_CONFIG), layers=descriptors
    )
    descriptor = store.write_json(manifest, MediaType.OCI_MANIFEST)
    store.set_tag("bench", descriptor)
    return descriptor


def median(measure: Callable[[int], float], repeat: int) -> float:
    """Return the median of ``measure(i)`` (seconds) over ``repeat`` runs."""
    return statistics.median(measure(i) for i in range(repeat))


class Bench:
    """The image, its store, and fresh registries and stores for each run."""

    def __init__(self, root: Path, skopeo: str, layer_mb: int) -> None:
        self.root = root
        self.skopeo = skopeo
        self.store = StoreDirectory(root / "store")
        self.manifest = build_image(self.store, layer_mb)
        self._count = 0

    def _fresh(self, prefix: str) -> Path:
        self._count += 1
        return self.root / f"{prefix}{self._count}"

    def fresh_store(self) -> StoreDirectory:
        """A copy of the image's store with no registry records or gzip cache."""
        copy = self._fresh("store")
        shutil.copytree(self.store.root, copy)
        return StoreDirectory(copy)

    def timed(
        self,
        run: Callable[[str], object],
        prepare: Callable[[str], object] | None = None,
    ) -> Callable[[int], float]:
        """Time ``run(host)`` against a registry started empty for the run."""

        def measure(_: int) -> float:
            folder = self._fresh("registry")
            folder.mkdir()
            with running_registry(folder) as host:
                if prepare is not None:
                    prepare(host)
                start = time.perf_counter()
                run(host)
                return time.perf_counter() - start

        return measure

    def skopeo_push(self, host: str) -> None:
        """Push the image with skopeo (which gzips the layers on the way)."""
        subprocess.run(
            [
                self.skopeo,
                "copy",
                "-q",
                "--dest-tls-verify=false",
                f"oci:{self.store.root}:bench",
                f"docker://{host}/sk/img:1",
            ],
            check=True,
        )

    def skopeo_pull(self, host: str) -> None:
        """Copy the skopeo-pushed image into a fresh OCI layout."""
        subprocess.run(
            [
                self.skopeo,
                "copy",
                "-q",
                "--src-tls-verify=false",
                f"docker://{host}/sk/img:1",
                f"oci:{self._fresh('skopeo')}:bench",
            ],
            check=True,
        )

    def our_push(
        self, compression: Literal["gzip"] | None
    ) -> tuple[Callable[[str], object], Callable[[str], object]]:
        """Return (prepare, run): push from a store copy made off the clock."""
        stores: list[StoreDirectory] = []

        def prepare(host: str) -> None:
            stores.append(self.fresh_store())

        def run(host: str) -> object:
            return push(
                stores[-1], self.manifest, f"{host}/lc/img:1", compression=compression
            )

        return prepare, run

    def our_pull(self, host: str) -> None:
        """Pull the skopeo-pushed image into an empty store."""
        pull(StoreDirectory(self._fresh("pulled")), f"{host}/sk/img:1")


def interleaved(measures: list[Callable[[int], float]], repeat: int) -> list[float]:
    """Median of each measure, taking turns run by run.

    On a shared machine the load drifts; alternating keeps both sides of a
    ratio under the same conditions.
    """
    times: list[list[float]] = [[] for _ in measures]
    for run in range(repeat):
        for index, measure in enumerate(measures):
            times[index].append(measure(run))
    return [statistics.median(each) for each in times]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--only", choices=("push", "pull"), help="one direction")
    args = parser.parse_args(argv)
    skopeo = shutil.which("skopeo")
    if skopeo is None or not os.access(REGISTRY, os.X_OK):
        sys.stderr.write("needs skopeo and docker-registry\n")
        return 1

    n = args.repeat
    rows = []
    with tempfile.TemporaryDirectory(prefix="registry-bench-") as temp:
        bench = Bench(Path(temp), skopeo, max(args.size_mb // 3, 1))
        layers = bench.store.read_json(Manifest, bench.manifest.digest).layers
        total = sum(layer.size for layer in layers)
        if args.only != "pull":
            prepare, run = bench.our_push(None)
            prepare_gz, run_gz = bench.our_push("gzip")
            skopeo_push, ours_plain, ours_gz = interleaved(
                [
                    bench.timed(bench.skopeo_push),
                    bench.timed(run, prepare),
                    bench.timed(run_gz, prepare_gz),
                ],
                n,
            )
            rows.append(
                ("push, layers as built (uncompressed)", ours_plain, skopeo_push)
            )
            rows.append(("push, compression=gzip (first time)", ours_gz, skopeo_push))
        if args.only != "push":
            ours_pull, skopeo_pull = interleaved(
                [
                    bench.timed(bench.our_pull, bench.skopeo_push),
                    bench.timed(bench.skopeo_pull, bench.skopeo_push),
                ],
                n,
            )
            rows.append(
                ("pull skopeo's gzip image, empty store", ours_pull, skopeo_pull)
            )

    print(f"image: 3 layers, {total / 2**20:.0f} MiB uncompressed; median of {n} runs")
    print("each run against a registry started empty for it; the sides take turns")
    print(f"{'task':40} {'layercake':>10} {'skopeo':>10} {'ratio':>7}")
    for task, mine, peer in rows:
        print(f"{task:40} {mine:9.2f}s {peer:9.2f}s {mine / peer:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
