"""Benchmark the store's layer packing and unpacking against GNU tar (and umoci).

Makes a tree of about ``--size-mb`` megabytes (many small files, some
medium, a few large), then times, each in its own child process so its peak
memory (max RSS) can be read:

* pack: ``StoreDirectory.write_layer`` (tar + sha256 into a blob) vs
  ``tar -cf`` of the same tree, both as whole processes; and the
  ``write_layer`` call alone (what a build in a running process pays: no
  interpreter start, no imports) against the same ``tar -cf`` runs;
* unpack: ``Layer.unpacked_path`` (verify + extract) vs ``tar -xf``, and
  ``umoci unpack`` of the same image where umoci is installed.

Run it by hand (it is not part of the test suite)::

    python benchmarks/store_bench.py --size-mb 300

It prints one line per measurement and the ratios layercake / GNU tar.
Each command runs ``--repeat`` times (3 by default), ours and GNU tar taking
turns, and the fastest run counts, so one slow run on a busy machine does
not decide the ratio; the median of the ratios within each round follows,
which drifting load moves less.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_PACK = """
import sys, time
from pathlib import Path
from layercake.store import StoreDirectory
directory = StoreDirectory(sys.argv[1])
start = time.perf_counter()
print(directory.write_layer(Path(sys.argv[2])).digest)
Path(sys.argv[3]).write_text(str(time.perf_counter() - start))
"""

_UNPACK = """
import sys
import layercake
store = layercake.Store(sys.argv[1])
store.image(sys.argv[2]).layers[0].unpacked_path()
"""


def make_tree(root: Path, size_mb: int, seed: int = 4) -> int:
    """Fill ``root`` with about ``size_mb`` MB of files; return the bytes written."""
    rng = random.Random(seed)
    budget = size_mb << 20
    written = 0
    shares = ((0.2, 4 << 10), (0.4, 256 << 10), (0.4, 32 << 20))
    block = os.urandom(1 << 20)
    for n_share, (share, size) in enumerate(shares):
        goal = int(budget * share)
        count = 0
        while goal > 0:
            folder = root / f"s{n_share}" / f"d{count // 100}"
            folder.mkdir(parents=True, exist_ok=True)
            length = min(goal, max(1, int(size * rng.uniform(0.5, 1.5))))
            with open(folder / f"f{count}", "wb") as file:
                left = length
                while left:
                    piece = block[: min(left, len(block))]
                    file.write(piece)
                    left -= len(piece)
            goal -= length
            written += length
            count += 1
    return written


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Run ``command``; return (seconds, peak RSS in KiB) of that child alone.

    GNU time measures the peak: Linux carries a process's peak RSS across
    fork and exec, so a child started from this (large) Python process would
    report this process's peak; GNU time is small and forks the command
    itself.
    """
    gnu_time = shutil.which("time") or "/usr/bin/time"
    if not os.access(gnu_time, os.X_OK):
        raise SystemExit("GNU time (/usr/bin/time) is needed to measure peak memory")
    with tempfile.NamedTemporaryFile("r") as out:
        start = time.perf_counter()
        done = subprocess.run(
            [gnu_time, "-f", "%M", "-o", out.name, *command],
            env=env,
            stdout=subprocess.DEVNULL,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"failed: {' '.join(command)}")
        peak = int(out.read().split()[-1])
    return elapsed, peak


def settle() -> None:
    """Sync, so one run's dirty pages do not slow the next one down."""
    os.sync()


def report(name: str, seconds: float, rss_kib: int, size: int) -> None:
    """Write one result line."""
    rate = size / seconds / (1 << 20)
    sys.stdout.write(
        f"{name:<26} {seconds:7.2f} s {rate:8.1f} MB/s  peak RSS {rss_kib / 1024:7.1f} MB\n"
    )


def main() -> None:
    """Parse arguments, run the measurements and print them with ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.workdir))
    try:
        run(work, args.size_mb, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def best(runs: list[tuple[float, int]]) -> tuple[float, int]:
    """The fastest run's time, and the largest peak RSS of all runs."""
    return min(t for t, _ in runs), max(rss for _, rss in runs)


def paired(ours: list[float], theirs: list[float]) -> float:
    """The median of the ratios of runs made one right after the other.

    On a shared machine the load drifts between rounds; each round's two
    runs see about the same load, so their ratio moves less than the
    ratio of the two fastest runs, which may come from different moments.
    """
    return statistics.median(a / b for a, b in zip(ours, theirs, strict=True))


def run(work: Path, size_mb: int, repeat: int = 1) -> None:
    """Do every measurement inside ``work``, each ``repeat`` times."""
    python = sys.executable
    tree = work / "tree"
    size = make_tree(tree, size_mb)
    files = sum(1 for _ in tree.rglob("*"))
    sys.stdout.write(f"tree: {size / (1 << 20):.0f} MB in {files} entries\n")

    store = work / "store"
    call_seconds = work / "call-seconds"
    ours_runs, tar_runs, calls = [], [], []
    for _ in range(repeat):
        settle()
        ours_runs.append(
            timed([python, "-c", _PACK, str(store), str(tree), str(call_seconds)])
        )
        calls.append(float(call_seconds.read_text()))
        settle()
        tar_runs.append(
            timed(
                [
                    "tar",
                    "--numeric-owner",
                    "-C",
                    str(tree),
                    "-cf",
                    str(work / "gnu.tar"),
                    ".",
                ]
            )
        )
    pack_runs = (ours_runs, tar_runs)
    ours_pack, tar_pack = best(ours_runs), best(tar_runs)
    report("pack: layercake", *ours_pack, size)
    report("pack: write_layer call", min(calls), ours_pack[1], size)
    report("pack: GNU tar", *tar_pack, size)

    import layercake

    image = layercake.Store(store).import_rootfs(work / "gnu.tar", tag="bench:1")
    layer = image.layers[0]
    store_dir = layercake.Store(store)._directory

    ours_runs, tar_runs = [], []
    target = work / "gnu-out"
    for _ in range(repeat):
        store_dir.remove_unpacked(layer.diff_id)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        settle()
        ours_runs.append(timed([python, "-c", _UNPACK, str(store), "bench:1"]))
        settle()
        tar_runs.append(
            timed(
                [
                    "tar",
                    "--numeric-owner",
                    "-C",
                    str(target),
                    "-xf",
                    str(work / "gnu.tar"),
                ]
            )
        )
    unpack_runs = (ours_runs, tar_runs)
    ours_unpack, tar_unpack = best(ours_runs), best(tar_runs)
    report("unpack: layercake", *ours_unpack, size)
    report("unpack: GNU tar", *tar_unpack, size)

    umoci = shutil.which("umoci")
    umoci_unpack = None
    if umoci is not None:
        settle()
        umoci_unpack = timed(
            [umoci, "unpack", "--image", f"{store}:bench:1", str(work / "umoci-bundle")]
        )
        report("unpack: umoci", *umoci_unpack, size)

    sys.stdout.write(
        "ratios (layercake / other; time <1 is faster, RSS <1 is leaner):\n"
    )
    sys.stdout.write(
        f"  pack   vs GNU tar: time {ours_pack[0] / tar_pack[0]:.2f}, "
        f"RSS {ours_pack[1] / tar_pack[1]:.2f}\n"
    )
    sys.stdout.write(
        f"  pack call alone vs GNU tar: time {min(calls) / tar_pack[0]:.2f}\n"
    )
    pack_ours, pack_tar = ([t for t, _ in runs] for runs in pack_runs)
    unpack_ours, unpack_tar = ([t for t, _ in runs] for runs in unpack_runs)
    sys.stdout.write(
        "  median of the ratios within each round: "
        f"pack {paired(pack_ours, pack_tar):.2f}, "
        f"pack call {paired(calls, pack_tar):.2f}, "
        f"unpack {paired(unpack_ours, unpack_tar):.2f}\n"
    )
    sys.stdout.write(
        f"  unpack vs GNU tar: time {ours_unpack[0] / tar_unpack[0]:.2f}, "
        f"RSS {ours_unpack[1] / tar_unpack[1]:.2f}\n"
    )
    if umoci_unpack is not None:
        sys.stdout.write(
            f"  unpack vs umoci:   time {ours_unpack[0] / umoci_unpack[0]:.2f}, "
            f"RSS {ours_unpack[1] / umoci_unpack[1]:.2f}\n"
        )


if __name__ == "__main__":
    main()
