"""layercake against the tools a user would pick instead, side by side.

Usage::

    python benchmarks/run.py [--only NAME] [--repeat N] [--profile]

NAME is one of: start, size, many, build, context, bigcopy (repeatable).
Every figure is the median of whole runs made in this one invocation on this
machine; the table prints each median and the ratio ours / peer, and marks
the targets of shared/BENCHMARKS.md that are met. Peers (podman, buildah,
runc) are skipped with a note when missing.

Everything (layercake stores, build contexts, the peers' own storage, runc
state) lives under one temporary directory, removed at the end after
unmounting whatever is still mounted below it. Needs root, like the runtime.
"""

from __future__ import annotations

import argparse
import compileall
import concurrent.futures
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import attrs

import layercake
from layercake import runtime

REPO = Path(__file__).resolve().parent.parent
BENCHES = ("start", "size", "many", "build", "context", "bigcopy")
# Measured by their own scripts (each sets up its own registry or trees);
# run.py runs them after its own table so one command covers everything.
SEPARATE = {"registry": "registry_bench.py", "store": "store_bench.py"}
BASE = "localhost/busybox:latest"
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""
SIX_STEP = f"""\
FROM {BASE}
ENV APP_MODE=bench
WORKDIR /app
COPY a.txt b.txt /app/
RUN cat a.txt b.txt > joined.txt
CMD ["cat", "/app/joined.txt"]
"""


@attrs.frozen
class Measurement:
    """The median (and fastest) of ``runs`` timed runs of one thing, in seconds."""

    key: str
    label: str
    median: float
    fastest: float
    runs: int


@attrs.frozen
class Target:
    """A BENCHMARKS.md target: ``ours`` / ``peer`` at most ``ratio``.

    With ``peer`` empty the target is absolute: ``ours`` at most ``ratio``
    seconds.
    """

    text: str
    ours: str
    peer: str
    ratio: float


@attrs.frozen
class Comparison:
    """A ratio to print: ``ours`` / ``peer``, both measurement keys."""

    ours: str
    peer: str


@attrs.frozen
class Timed:
    """One thing to time: ``action``, after ``setup`` (untimed) if any."""

    key: str
    label: str
    action: Callable[[], object]
    setup: Callable[[], object] | None = None


class Bench:
    """The shared state of one run: temp root, stores, peers, results."""

    def __init__(self, root: Path, repeat: int | None, profile: bool) -> None:
        self.root = root
        self.repeat = repeat
        self.profile = profile
        self.results: dict[str, Measurement] = {}
        self.comparisons: list[Comparison] = []
        self.targets: list[Target] = []
        self.notes: list[str] = []
        # Read now: others may commit to the checkout while this runs.
        self.commit = _commit()
        # Other work on a shared machine inflates every figure; say how much.
        self.load_at_start = os.getloadavg()[0]
        self.profiles: list[str] = []
        self.counter = 0
        self.peer_env = dict(os.environ)
        self.peer_env["CONTAINERS_CONF"] = str(root / "containers.conf")
        self.peer_env["TMPDIR"] = str(self.mkdir("peer-tmp"))
        (root / "containers.conf").write_text(CONTAINERS_CONF)
        self.rootfs_tar = root / "rootfs.tar"
        self.store = layercake.Store(root / "store")
        self.busybox_context = self.mkdir("busybox-context")
        self._podman_ready: set[str] = set()

    def mkdir(self, name: str) -> Path:
        """A new directory under the temp root."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def fresh_name(self, prefix: str) -> str:
        """A name not used before in this run."""
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def runs(self, default: int) -> int:
        """How many timed runs: ``--repeat`` or the benchmark's default."""
        return self.repeat if self.repeat is not None else default

    def record(self, key: str, label: str, samples: Sequence[float]) -> None:
        """Keep the median of ``samples`` under ``key``."""
        median = statistics.median(samples)
        self.results[key] = Measurement(key, label, median, min(samples), len(samples))
        sys.stdout.write(f"  {label}: {_fmt(median)} (median of {len(samples)})\n")
        sys.stdout.flush()

    def time_together(self, items: Sequence[Timed], runs: int) -> None:
        """Time every item ``runs`` times, round-robin, and record the medians.

        Taking turns keeps slow phases of a shared machine from landing on
        one contender only. Each item first makes one untimed warm-up run.
        """
        samples: dict[str, list[float]] = {item.key: [] for item in items}
        for turn in range(runs + 1):
            for item in items:
                if item.setup is not None:
                    item.setup()
                started = time.perf_counter()
                item.action()
                if turn:
                    samples[item.key].append(time.perf_counter() - started)
        for item in items:
            self.record(item.key, item.label, samples[item.key])

    def time_it(
        self,
        key: str,
        label: str,
        action: Callable[[], object],
        runs: int,
        setup: Callable[[], object] | None = None,
    ) -> None:
        """Time ``action`` ``runs`` times (after ``setup``, untimed) and record it."""
        self.time_together([Timed(key, label, action, setup)], runs)

    def profile_of(self, label: str, action: Callable[[], object]) -> None:
        """With ``--profile``, keep the cProfile top of one more run of ``action``."""
        if not self.profile:
            return
        profiler = cProfile.Profile()
        profiler.runcall(action)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(22)
        self.profiles.append(f"### {label}\n{out.getvalue()}")

    def command(self, argv: Sequence[str], *, peer: bool = False) -> None:
        """Run one command to completion, output discarded; fail loudly."""
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.peer_env if peer else None,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {result.returncode}: "
                f"{result.stderr.decode(errors='replace')[-2000:]}"
            )

    def commands(self, argvs: Sequence[Sequence[str]], *, peer: bool = False) -> None:
        """Start every command at once and wait for all; fail loudly."""
        processes = [
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=self.peer_env if peer else None,
            )
            for argv in argvs
        ]
        failures = []
        for argv, process in zip(argvs, processes, strict=True):
            _, err = process.communicate()
            if process.returncode != 0:
                failures.append(
                    f"{' '.join(argv)} exited {process.returncode}: "
                    f"{err.decode(errors='replace')[-500:]}"
                )
        if failures:
            raise RuntimeError("\n".join(failures))

    def podman(self, name: str) -> list[str] | None:
        """The podman command line for storage ``name``, with busybox imported."""
        if shutil.which("podman") is None:
            return None
        argv = [
            "podman",
            "--root",
            str(self.root / f"{name}-root"),
            "--runroot",
            str(self.root / f"{name}-runroot"),
            "--tmpdir",
            str(self.root / f"{name}-tmp"),
            "--storage-driver",
            "overlay",
        ]
        if name not in self._podman_ready:
            self.command(
                [*argv, "import", "--change", 'CMD ["sh"]', str(self.rootfs_tar), BASE],
                peer=True,
            )
            self._podman_ready.add(name)
        return argv

    def buildah(self) -> list[str] | None:
        """The buildah command line for its own storage, with busybox imported."""
        if shutil.which("buildah") is None or shutil.which("podman") is None:
            return None
        # buildah cannot import a rootfs tarball itself; podman fills its store.
        self.podman("buildah")
        return [
            "buildah",
            "--root",
            str(self.root / "buildah-root"),
            "--runroot",
            str(self.root / "buildah-runroot"),
            "--storage-driver",
            "overlay",
        ]

    def fresh_store(self) -> layercake.Store:
        """A new store holding only the busybox image."""
        store = layercake.Store(self.root / self.fresh_name("store"))
        layercake.Builder(store).build(
            self.busybox_context, tag=["busybox:latest", BASE]
        )
        return store

    def compare(self, ours: str, peer: str) -> None:
        """Print ours / peer in the ratio table (when both were measured)."""
        self.comparisons.append(Comparison(ours, peer))

    def target(self, text: str, ours: str, peer: str, ratio: float) -> None:
        """Check a BENCHMARKS.md target in the final table."""
        self.targets.append(Target(text, ours, peer, ratio))


def _fmt(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def _write_random_tree(root: Path, dirs: int, files: int, size: int) -> None:
    for d in range(dirs):
        directory = root / f"d{d:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        for f in range(files):
            (directory / f"f{f:04d}.bin").write_bytes(os.urandom(size))


# -- 1. start to exit of `true` ------------------------------------------------


def bench_start(bench: Bench) -> None:
    """Start-to-exit of ``true``: SDK, CLI, podman, runc and the floors."""
    runs = bench.runs(20)
    image = bench.store.image("busybox:latest")
    leftovers: list[layercake.Container] = []

    def sdk_run() -> None:
        container = layercake.Container(image, ["true"], network="none")
        leftovers.append(container)
        container.run()

    def sdk_cleanup() -> None:
        while leftovers:
            leftovers.pop().remove()

    def sdk_whole() -> None:
        with layercake.Container(image, ["true"], network="none") as container:
            container.run()

    def image_run() -> None:
        image.run(["true"], network="none")

    def sdk_bridge() -> None:
        # The default network, as docker run without --network.
        container = layercake.Container(image, ["true"])
        leftovers.append(container)
        container.run()

    def sdk_whole_bridge() -> None:
        with layercake.Container(image, ["true"]) as container:
            container.run()

    runtime_dirs = _RuntimeDirs(bench, image)
    items = [
        Timed(
            "start.sdk", "SDK Container(image, ['true']).run()", sdk_run, sdk_cleanup
        ),
        Timed(
            "start.sdk_rm",
            "SDK create + run + remove (with-block)",
            sdk_whole,
            sdk_cleanup,
        ),
        Timed("start.image_run", "SDK Image.run(['true'])", image_run),
        Timed(
            "start.sdk_bridge",
            "SDK Container(image, ['true']).run() on the default bridge",
            sdk_bridge,
            sdk_cleanup,
        ),
        Timed(
            "start.sdk_rm_bridge",
            "SDK create + run + remove on the default bridge",
            sdk_whole_bridge,
            sdk_cleanup,
        ),
        Timed(
            "start.runtime",
            "layercake.runtime.run of a SandboxSpec",
            runtime_dirs.run,
            runtime_dirs.fresh,
        ),
    ]

    cli = Path(sys.executable).parent / "layercake"
    if cli.exists():
        argv = [
            str(cli),
            "--store",
            str(bench.store.path),
            "run",
            "--rm",
            "--network",
            "none",
        ]
        items.append(
            Timed(
                "start.cli",
                "layercake run --rm --network none busybox true",
                lambda: bench.command([*argv, "busybox", "true"]),
            )
        )
    else:
        bench.notes.append(f"no layercake entry point at {cli}: CLI start skipped")

    podman = bench.podman("podman")
    if podman is not None:
        podman_run = [*podman, "run", "--rm", "--network", "none", BASE, "true"]
        items.append(
            Timed(
                "start.podman",
                "podman run --rm --network none busybox true",
                lambda: bench.command(podman_run, peer=True),
            )
        )
    else:
        bench.notes.append("podman not installed: podman run skipped")

    bundle = _runc_bundle(bench)
    if bundle is not None:
        state = bench.mkdir("runc-state")
        runc = ["runc", "--root", str(state), "run", "--bundle", str(bundle)]
        items.append(
            Timed(
                "start.runc",
                "runc run (prepared bundle)",
                lambda: bench.command([*runc, bench.fresh_name("bench")]),
            )
        )
    else:
        bench.notes.append("runc not installed: runc run skipped")

    floor = bench.mkdir("floor")
    for name in ("upper", "work", "merged"):
        (floor / name).mkdir(exist_ok=True)
    lower = bench.root / "bundle" / "rootfs"
    if not lower.exists():
        lower.mkdir(parents=True)
        subprocess.run(
            ["tar", "-xf", str(bench.rootfs_tar), "-C", str(lower)], check=True
        )
    script = (
        f"mount -t overlay overlay -o lowerdir={lower},upperdir={floor}/upper,"
        f"workdir={floor}/work {floor}/merged && exec chroot {floor}/merged /bin/true"
    )
    unshare = ["unshare", "-mpf", "--mount-proc", "sh", "-c", script]
    python = [sys.executable, "-c", "pass"]
    items += [
        Timed(
            "start.floor_unshare",
            "floor: unshare -mpf --mount-proc + overlay + chroot",
            lambda: bench.command(unshare),
        ),
        Timed(
            "start.floor_python_isolated",
            "floor: python3 -I -S -c pass",
            lambda: bench.command([python[0], "-I", "-S", *python[1:]]),
        ),
        Timed(
            "start.floor_python",
            "floor: python3 -c pass",
            lambda: bench.command(python),
        ),
    ]
    bench.time_together(items, runs)
    sdk_cleanup()
    bench.profile_of("SDK create + run + remove of `true`", sdk_whole)

    bench.compare("start.sdk", "start.podman")
    bench.compare("start.sdk", "start.runc")
    bench.compare("start.image_run", "start.podman")
    bench.compare("start.image_run", "start.runc")
    bench.compare("start.runtime", "start.runc")
    bench.compare("start.cli", "start.podman")
    bench.compare("start.cli", "start.runc")
    bench.compare("start.sdk", "start.floor_unshare")
    bench.compare("start.sdk_bridge", "start.sdk")
    bench.compare("start.sdk_rm_bridge", "start.sdk_rm")
    bench.compare("start.cli", "start.floor_python_isolated")
    bench.target("SDK run of `true` at most 12 ms", "start.sdk", "", 0.012)
    bench.target("Image.run(['true']) at most 12 ms", "start.image_run", "", 0.012)
    bench.target("SDK run at most 1/2 of runc", "start.sdk", "start.runc", 0.5)
    bench.target("SDK run at most 1/13 of podman", "start.sdk", "start.podman", 1 / 13)
    bench.target(
        "CLI run --rm at most 1/3 of podman", "start.cli", "start.podman", 1 / 3
    )


class _RuntimeDirs:
    """The runtime alone: a SandboxSpec over the image's unpacked layers.

    Each run gets new upper, work and mount directories (made untimed), as a
    container's own directory would give it.
    """

    def __init__(self, bench: Bench, image: layercake.Image) -> None:
        self.bench = bench
        self.lower = tuple(str(path) for path in image.layer_stack().layer_dirs)
        self.spec: runtime.SandboxSpec | None = None

    def fresh(self) -> None:
        """New directories for the next run; the previous ones go."""
        if self.spec is not None:
            shutil.rmtree(Path(self.spec.rootfs.upper_dir).parent)
        base = self.bench.mkdir(self.bench.fresh_name("runtime"))
        self.spec = runtime.SandboxSpec(
            rootfs=runtime.RootfsSpec(
                lower_dirs=self.lower,
                upper_dir=str(base / "upper"),
                work_dir=str(base / "work"),
                mount_point=str(base / "rootfs"),
            ),
            process=runtime.ProcessSpec(args=("true",)),
        )

    def run(self) -> None:
        """Run ``true``; fail loudly if it did not exit 0."""
        assert self.spec is not None
        result = runtime.run(self.spec)
        if result.exit_code != 0:
            raise RuntimeError(f"runtime.run of true exited {result.exit_code}")


def _runc_bundle(bench: Bench) -> Path | None:
    if shutil.which("runc") is None:
        return None
    bundle = bench.mkdir("bundle")
    rootfs = bundle / "rootfs"
    if not rootfs.exists():
        rootfs.mkdir()
        subprocess.run(
            ["tar", "-xf", str(bench.rootfs_tar), "-C", str(rootfs)], check=True
        )
    config = bundle / "config.json"
    if not config.exists():
        subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
        spec = json.loads(config.read_text())
        spec["root"]["path"] = str(rootfs)
        spec["process"]["args"] = ["true"]
        spec["process"]["terminal"] = False
        config.write_text(json.dumps(spec, indent=2))
    return bundle


# -- 2. start time against image size ------------------------------------------


def bench_size(bench: Bench) -> None:
    """Start of a 1 GB image against a 1 MB one (layercake only)."""
    runs = bench.runs(20)
    small = bench.mkdir("size-small")
    (small / "blob.bin").write_bytes(os.urandom(1 << 20))
    (small / "Dockerfile").write_text(f"FROM {BASE}\nCOPY blob.bin /blob.bin\n")
    big = bench.mkdir("size-big")
    (big / "Dockerfile").write_text(
        f"FROM {BASE}\nRUN dd if=/dev/urandom of=/blob.bin bs=1048576 count=1024\n"
    )
    builder = layercake.Builder(bench.store)
    small_image = builder.build(small, tag="size-small")
    started = time.perf_counter()
    big_image = builder.build(big, tag="size-big")
    bench.record(
        "size.build_big",
        "build of the 1 GB image (RUN dd, once)",
        [time.perf_counter() - started],
    )

    def start(image: layercake.Image) -> Callable[[], None]:
        def action() -> None:
            with layercake.Container(image, ["true"], network="none") as container:
                container.run()

        return action

    # Writing back the gigabyte just built would slow whichever runs first.
    os.sync()
    bench.time_together(
        [
            Timed("size.small", "start of `true`, 1 MB image", start(small_image)),
            Timed("size.big", "start of `true`, 1 GB image", start(big_image)),
        ],
        runs,
    )
    bench.profile_of("start of `true` in the 1 GB image", start(big_image))
    bench.compare("size.big", "size.small")
    bench.target("1 GB image starts within 1.1x of 1 MB", "size.big", "size.small", 1.1)


# -- 3. many containers ----------------------------------------------------------


def bench_many(bench: Bench) -> None:
    """50 throwaway containers in a row; 20 at once on threads, against peers."""
    runs = bench.runs(5)
    image = bench.store.image("busybox:latest")

    def one() -> int:
        with layercake.Container(image, ["true"], network="none") as container:
            return container.run().exit_code

    def sequential() -> None:
        for _ in range(50):
            one()

    def parallel() -> None:
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(lambda _: one(), range(20)))
        if codes != [0] * 20:
            raise RuntimeError(f"parallel containers exited {codes}")

    bench.time_it(
        "many.seq50", "50 throwaway containers, in a row (total)", sequential, runs
    )
    items = [Timed("many.par20", "20 containers on 20 threads (total)", parallel)]
    podman = bench.podman("podman")
    if podman is not None:
        podman_run = [*podman, "run", "--rm", "--network", "none", BASE, "true"]
        items.append(
            Timed(
                "many.par20_podman",
                "20 podman run --rm at once (total)",
                lambda: bench.commands([podman_run] * 20, peer=True),
            )
        )
    bundle = _runc_bundle(bench)
    if bundle is not None:
        state = bench.mkdir("runc-state")
        runc = ["runc", "--root", str(state), "run", "--bundle", str(bundle)]
        items.append(
            Timed(
                "many.par20_runc",
                "20 runc run at once (total)",
                lambda: bench.commands(
                    [[*runc, bench.fresh_name("bench")] for _ in range(20)]
                ),
            )
        )
    bench.time_together(items, runs)
    bench.profile_of("50 throwaway containers in a row", sequential)
    bench.compare("many.par20", "many.par20_podman")
    bench.compare("many.par20", "many.par20_runc")
    bench.target("50 throwaway containers under 1 s", "many.seq50", "", 1.0)


# -- 4. the 6-step Dockerfile ------------------------------------------------------


def bench_build(bench: Bench) -> None:
    """Fresh and cached builds of the 6-step Dockerfile, SDK against peers."""
    runs = bench.runs(5)
    context = bench.mkdir("six")
    (context / "a.txt").write_text("hello\n")
    (context / "b.txt").write_text("world\n")
    (context / "Dockerfile").write_text(SIX_STEP)
    _build_pair(bench, "build", "6-step Dockerfile", context, runs, with_buildah=True)
    bench.target(
        "6-step fresh at most 1/3 of podman", "build.fresh", "build.podman_fresh", 1 / 3
    )
    bench.target(
        "6-step cached at most 1/10 of buildah",
        "build.cached",
        "build.buildah_cached",
        0.1,
    )


def _build_pair(
    bench: Bench,
    key: str,
    label: str,
    context: Path,
    runs: int,
    *,
    with_buildah: bool = False,
    cached: bool = True,
) -> None:
    stores: list[layercake.Store] = []

    def new_store() -> None:
        for store in stores:
            shutil.rmtree(store.path)
        stores.clear()
        stores.append(bench.fresh_store())

    def fresh() -> None:
        layercake.Builder(stores[-1]).build(context, tag=key)

    cached_store = bench.fresh_store()

    def rebuild() -> None:
        layercake.Builder(cached_store).build(context, tag=key)

    fresh_items = [
        Timed(f"{key}.fresh", f"{label}: SDK fresh (new store)", fresh, new_store)
    ]
    cached_items = [Timed(f"{key}.cached", f"{label}: SDK cached rebuild", rebuild)]

    podman = bench.podman("podman")
    build = ["build", "--pull=never", "--network", "none", "-t", key, str(context)]
    if podman is None:
        bench.notes.append(f"podman not installed: podman build of {label} skipped")
    else:
        podman_fresh = [*podman, build[0], "--no-cache", *build[1:]]
        fresh_items.append(
            Timed(
                f"{key}.podman_fresh",
                f"{label}: podman build --no-cache",
                lambda: bench.command(podman_fresh, peer=True),
            )
        )
        cached_items.append(
            Timed(
                f"{key}.podman_cached",
                f"{label}: podman build (cached)",
                lambda: bench.command([*podman, *build], peer=True),
            )
        )
        bench.compare(f"{key}.fresh", f"{key}.podman_fresh")
        if cached:
            bench.compare(f"{key}.cached", f"{key}.podman_cached")

    buildah = bench.buildah() if with_buildah else None
    if with_buildah and buildah is None:
        bench.notes.append(f"buildah not installed: buildah bud of {label} skipped")
    if buildah is not None:
        bud = ["bud", "--layers", "--pull=never", "--network", "none", "-t", key]
        buildah_fresh = [*buildah, *bud, "--no-cache", str(context)]
        fresh_items.append(
            Timed(
                f"{key}.buildah_fresh",
                f"{label}: buildah bud --layers --no-cache",
                lambda: bench.command(buildah_fresh, peer=True),
            )
        )
        cached_items.append(
            Timed(
                f"{key}.buildah_cached",
                f"{label}: buildah bud --layers (cached)",
                lambda: bench.command([*buildah, *bud, str(context)], peer=True),
            )
        )
        bench.compare(f"{key}.fresh", f"{key}.buildah_fresh")
        if cached:
            bench.compare(f"{key}.cached", f"{key}.buildah_cached")

    bench.time_together(fresh_items, runs)
    new_store()
    bench.profile_of(f"{label}: SDK fresh build", fresh)
    if cached:
        bench.time_together(cached_items, runs)
        bench.profile_of(f"{label}: SDK cached rebuild", rebuild)
    shutil.rmtree(stores[-1].path)
    shutil.rmtree(cached_store.path)


# -- 5. a context of 2,000 small files ------------------------------------------------


def bench_context(bench: Bench) -> None:
    """2,000 small files (19 MiB) built fresh and rebuilt unchanged."""
    runs = bench.runs(5)
    context = bench.mkdir("context2000")
    _write_random_tree(context, 20, 100, 19 * (1 << 20) // 2000)
    (context / "Dockerfile").write_text(f"FROM {BASE}\nCOPY . /ctx/\n")
    _build_pair(bench, "context", "2,000-file context", context, runs)
    bench.target(
        "2,000-file rebuild at most 1/10 of podman",
        "context.cached",
        "context.podman_cached",
        0.1,
    )


# -- 6. a COPY of a 300 MB tree ----------------------------------------------------


def bench_bigcopy(bench: Bench) -> None:
    """A fresh build that COPYs a 300 MB tree."""
    runs = bench.runs(3)
    context = bench.mkdir("bigcopy")
    _write_random_tree(context, 30, 10, 1_000_000)
    (context / "Dockerfile").write_text(f"FROM {BASE}\nCOPY . /data/\n")
    _build_pair(bench, "bigcopy", "300 MB COPY", context, runs, cached=False)
    bench.target(
        "300 MB COPY at most 1/4 of podman",
        "bigcopy.fresh",
        "bigcopy.podman_fresh",
        0.25,
    )


# -- the run --------------------------------------------------------------------------


def prepare(bench: Bench) -> None:
    """Byte-compile the measured package; make busybox and import it into our store.

    An installed package has its bytecode written at install; a checkout
    run with PYTHONDONTWRITEBYTECODE would otherwise compile every module
    at every start of the CLI, which is not what a user's start costs.
    """
    compileall.compile_dir(Path(layercake.__file__).parent, quiet=1)
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "make_busybox_rootfs.py"),
            str(bench.rootfs_tar),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.copy(bench.rootfs_tar, bench.busybox_context / "rootfs.tar")
    (bench.busybox_context / "Dockerfile").write_text(
        'FROM scratch\nADD rootfs.tar /\nCMD ["sh"]\n'
    )
    layercake.Builder(bench.store).build(
        bench.busybox_context, tag=["busybox:latest", BASE]
    )


def _commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "an unknown commit"


def report(bench: Bench) -> str:
    """The final tables as Markdown."""
    lines = [
        (
            f"layercake {layercake.__version__} from "
            f"{Path(layercake.__file__).parent.parent} (checkout at {bench.commit}), "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
            f"load average {bench.load_at_start:.2f} at the start, "
            f"{os.getloadavg()[0]:.2f} at the end"
        ),
        "",
        "| measurement | median | fastest | runs |",
        "|---|---:|---:|---:|",
    ]
    for m in bench.results.values():
        lines.append(f"| {m.label} | {_fmt(m.median)} | {_fmt(m.fastest)} | {m.runs} |")
    lines += ["", "| ours | peer | ours / peer |", "|---|---|---:|"]
    for c in bench.comparisons:
        ours, peer = bench.results.get(c.ours), bench.results.get(c.peer)
        if ours is None or peer is None:
            continue
        lines.append(
            f"| {ours.label} | {peer.label} | {ours.median / peer.median:.3f} |"
        )
    lines += ["", "| target | measured | limit | met |", "|---|---:|---:|---|"]
    for t in bench.targets:
        ours = bench.results.get(t.ours)
        peer = bench.results.get(t.peer) if t.peer else None
        if ours is None or (t.peer and peer is None):
            lines.append(f"| {t.text} | not measured | | |")
            continue
        if peer is None:
            value, limit = _fmt(ours.median), _fmt(t.ratio)
            met = ours.median <= t.ratio
        else:
            ratio = ours.median / peer.median
            value, limit = f"{ratio:.3f}", f"{t.ratio:.3f}"
            met = ratio <= t.ratio
        lines.append(f"| {t.text} | {value} | {limit} | {'yes' if met else 'NO'} |")
    if bench.notes:
        lines += [""] + [f"- {note}" for note in bench.notes]
    return "\n".join(lines) + "\n"


def _mounts_under(root: Path) -> list[str]:
    found = []
    with open("/proc/mounts") as mounts:
        for line in mounts:
            target = line.split()[1]
            target = target.encode().decode("unicode_escape")
            if target == str(root) or target.startswith(f"{root}/"):
                found.append(target)
    return found


def cleanup(root: Path) -> None:
    """Unmount whatever is left under ``root`` (deepest first) and remove it."""
    for _ in range(3):
        mounts = _mounts_under(root)
        if not mounts:
            break
        for target in sorted(mounts, key=len, reverse=True):
            if subprocess.run(["umount", target], check=False).returncode != 0:
                subprocess.run(["umount", "-l", target], check=False)
    shutil.rmtree(root, ignore_errors=True)


@contextmanager
def temporary_root() -> Iterator[Path]:
    """One temp directory for the whole run, unmounted and removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="layercake-bench-"))
    try:
        yield root
    finally:
        cleanup(root)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks and print their table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHES + tuple(SEPARATE),
        help="run only NAME",
    )
    parser.add_argument("--repeat", type=int, help="timed runs of every measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile our side")
    args = parser.parse_args(argv)
    chosen = args.only or list(BENCHES)
    runners = {
        "start": bench_start,
        "size": bench_size,
        "many": bench_many,
        "build": bench_build,
        "context": bench_context,
        "bigcopy": bench_bigcopy,
    }
    if any(name in BENCHES for name in chosen):
        with temporary_root() as root:
            bench = Bench(root, args.repeat, args.profile)
            prepare(bench)
            for name in BENCHES:
                if name in chosen:
                    sys.stdout.write(f"== {name}\n")
                    sys.stdout.flush()
                    runners[name](bench)
            sys.stdout.write("\n" + report(bench))
            for text in bench.profiles:
                sys.stdout.write("\n" + text)
    for name, script in SEPARATE.items():
        if name in chosen:
            sys.stdout.write(f"\n== {name} ({script})\n")
            sys.stdout.flush()
            subprocess.run(
                [sys.executable, str(Path(__file__).with_name(script))], check=True
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
