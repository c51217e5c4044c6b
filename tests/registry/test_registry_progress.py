"""Transfer progress: bars on a terminal, lines otherwise, JSON on request."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from registry_servers import RunningRegistry, make_image

from layercake.cli import main
from layercake.cli._format import size
from layercake.cli._progress import TransferBars, TransferLines
from layercake.store import Descriptor, Digest, Manifest, StoreDirectory
from layercake.store._registry import TransferProgress, push

LAYERS = [{"etc/one": b"1\n"}, {"etc/two": b"2\n" * 40_000}]
ESC = "\x1b"


def pushed_image(tmp_path: Path, registry: RunningRegistry) -> tuple[str, Manifest]:
    """Push a two-layer image; return its reference and manifest."""
    store = StoreDirectory(tmp_path / "source")
    descriptor = make_image(store, LAYERS)
    reference = f"{registry.host}/progress/app:1"
    push(store, descriptor, reference)
    return reference, store.read_json(Manifest, descriptor.digest)


def done_line(layer: Descriptor) -> str:
    """The line a finished layer shows."""
    return f"{layer.digest.hex[:12]}: done ({size(layer.size)})"


def screen(output: str) -> list[str]:
    """Replay text with CR, LF, cursor-up and erase-line; return the lines."""
    lines = [""]
    row = column = 0
    for token in re.findall(rf"{ESC}\[\d*[A-Za-z]|\r|\n|[^{ESC}\r\n]+", output):
        if token == "\r":
            column = 0
        elif token == "\n":
            row += 1
            column = 0
            if row == len(lines):
                lines.append("")
        elif token.startswith(ESC) and token.endswith("A"):
            row -= int(token[2:-1] or 1)
        elif token == f"{ESC}[2K":
            lines[row] = ""
        else:
            line = lines[row]
            lines[row] = line[:column] + token + line[column + len(token) :]
            column += len(token)
    return lines[:-1] if lines[-1] == "" else lines


def test_plain_progress_prints_one_line_per_layer_as_it_completes(
    tmp_path: Path, registry: RunningRegistry, capfd
) -> None:
    """--progress=plain writes each layer's done line, then the digest."""
    reference, manifest = pushed_image(tmp_path, registry)
    store = str(tmp_path / "store")
    assert main(["--store", store, "pull", "--progress=plain", reference]) == 0

    lines = capfd.readouterr().out.splitlines()
    assert sorted(lines[:-1]) == sorted(done_line(layer) for layer in manifest.layers)
    assert lines[-1].startswith("Digest: sha256:")


def test_json_progress_writes_every_event_and_the_result(
    tmp_path: Path, registry: RunningRegistry, capfd
) -> None:
    """--progress=json writes every event: 0 bytes per layer in order, then chunks."""
    reference, manifest = pushed_image(tmp_path, registry)
    store = str(tmp_path / "store")
    assert main(["--store", store, "pull", "--progress=json", reference]) == 0

    records = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    final = records.pop()
    assert final["event"] == "PullFinished"
    assert final["reference"] == reference
    assert records[:2] == [
        {
            "event": "TransferProgress",
            "reference": reference,
            "digest": str(layer.digest),
            "done": 0,
            "total": layer.size,
        }
        for layer in manifest.layers
    ]
    for layer in manifest.layers:
        mine = [r for r in records if r["digest"] == str(layer.digest)]
        assert [r["done"] for r in mine] == sorted(r["done"] for r in mine)
        assert mine[-1] == {
            "event": "TransferProgress",
            "reference": reference,
            "digest": str(layer.digest),
            "done": layer.size,
            "total": layer.size,
        }
    assert {r["digest"] for r in records} == {str(x.digest) for x in manifest.layers}

    # Pulling again transfers nothing: each layer reports complete at once.
    assert main(["--store", store, "pull", "--progress=json", reference]) == 0
    again = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [r["done"] for r in again[:-1]] == [x.size for x in manifest.layers]


def test_terminal_progress_redraws_bars_in_place_through_a_pty(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    """On a terminal, pull redraws bars in place and leaves done lines in order."""
    reference, manifest = pushed_image(tmp_path, registry)
    controller, terminal = pty.openpty()
    errors = tmp_path / "stderr"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "layercake.cli", "--store", str(tmp_path / "s")]
            + ["pull", reference],
            stdout=terminal,
            stderr=stderr,
        )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=60) == 0, (
        process.stderr.read() if process.stderr else ""
    )
    output = b"".join(chunks).decode()

    assert f"{ESC}[2K" in output
    assert f"{ESC}[1A" in output or f"{ESC}[2A" in output
    lines = screen(output)
    assert lines[:-1] == [done_line(layer) for layer in manifest.layers]
    assert lines[-1].startswith("Digest: sha256:")


def progress(hex_char: str, done: int, total: int) -> TransferProgress:
    """A progress event for the blob whose digest is hex_char repeated."""
    return TransferProgress(Digest("sha256", hex_char * 64), total, done, "r:1")


def test_bars_are_throttled_and_completion_is_always_drawn() -> None:
    """Events closer than the interval are not drawn, except a completion."""
    now = [0.0]
    out = io.StringIO()
    bars = TransferBars(out, interval=0.1, clock=lambda: now[0])
    bars(progress("a", 0, 3_000_000))
    now[0] = 0.05
    bars(progress("b", 1_500_000, 3_000_000))  # within the interval: held back
    now[0] = 0.06
    bars(progress("a", 3_000_000, 3_000_000))  # completion: drawn at once
    bars.close()

    empty = " " * 29
    half = "=" * 15 + ">" + " " * 14
    assert out.getvalue().split("\n") == [
        f"\r{ESC}[2K{'a' * 12}: [>{empty}] 0B/3MB",
        f"{ESC}[1A\r{ESC}[2K{'a' * 12}: done (3MB)",
        f"\r{ESC}[2K{'b' * 12}: [{half}] 1.5MB/3MB",
        "",
    ]

    # A held-back event is drawn on close; an up-to-date screen is not redrawn.
    now[0] = 0.07
    bars(progress("b", 2_000_000, 3_000_000))
    bars.close()
    bars.close()
    two_thirds = "=" * 20 + ">" + " " * 9
    assert out.getvalue().split("\n")[-3:] == [
        f"{ESC}[2A\r{ESC}[2K{'a' * 12}: done (3MB)",
        f"\r{ESC}[2K{'b' * 12}: [{two_thirds}] 2MB/3MB",
        "",
    ]


def test_lines_print_each_blob_once_when_complete() -> None:
    """Plain lines ignore partial events and repeated completions."""
    out = io.StringIO()
    lines = TransferLines(out)
    lines(progress("c", 10, 2048))
    lines(progress("c", 2048, 2048))
    lines(progress("c", 2048, 2048))
    assert out.getvalue() == f"{'c' * 12}: done (2.05kB)\n"


def test_plain_push_progress_has_a_line_for_every_blob_sent(
    tmp_path: Path, registry: RunningRegistry, capfd
) -> None:
    """push --progress=plain prints the config's and each layer's done line.

    ``--compression=none`` sends the layers as stored, so the lines name them.
    """
    store = tmp_path / "store"
    directory = StoreDirectory(store)
    descriptor = make_image(directory, LAYERS)
    manifest = directory.read_json(Manifest, descriptor.digest)
    reference = f"{registry.host}/progress/pushed:1"
    directory.set_tag(reference, descriptor)

    argv = ["--store", str(store), "push", "--progress=plain"]
    assert main([*argv, "--compression=none", reference]) == 0

    lines = capfd.readouterr().out.splitlines()
    blobs = [manifest.config, *manifest.layers]
    assert sorted(lines[:-1]) == sorted(done_line(blob) for blob in blobs)
    assert lines[-1] == f"Digest: {descriptor.digest}"
