"""Building the README's examples and files with owners, as any user.

The unprivileged CI run (tests/test_unprivileged_ci.py) runs this module as
``layercake-ci``, whose WORKDIR and COPY steps are staged as root of a user
namespace; as root it checks the same results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import layercake

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.usefixtures("container_runtime")

DEMO_OUTPUT = (
    b"run PROD app\n"
    b"fileA.txt: contents of file A\n"
    b"fileB.txt: contents of file B\n"
    b"NODE_ENV=production\n"
)
"""What examples/demo.sh's ``layercake run --rm demo:latest`` prints."""


def test_readme_examples_build_and_run(store, busybox):
    """busybox, middle and demo build, and middle and demo print what demo.sh shows."""
    builder = layercake.Builder(store)
    middle = builder.build(EXAMPLES / "middle", tag="middle:latest", pull="never")
    demo = builder.build(EXAMPLES / "demo", tag="demo:latest", pull="never")

    assert busybox.tags == ("busybox:latest",)
    assert middle.run().stdout == b"run DEV app\n"
    result = demo.run()
    assert (result.exit_code, result.stdout, result.stderr) == (0, DEMO_OUTPUT, b"")


def test_copy_chown_and_workdir_give_files_their_owners(store, busybox, write_context):
    """COPY --chown=1000:1000 and a WORKDIR made as USER 1000 show owner 1000 inside."""
    context = write_context(
        store.path.parent / "context",
        "FROM busybox\n"
        "COPY --chown=1000:1000 --chmod=640 f.txt /app/\n"
        "USER 1000:1000\n"
        "WORKDIR /home/app\n"
        "USER root\n",
        **{"f.txt": "hello\n"},
    )
    image = layercake.Builder(store).build(context, tag="owned")

    files = image.run(["ls", "-ln", "/app"])
    workdir = image.run(["ls", "-lnd", "/home/app"])
    assert [line.split()[:5] + line.split()[-1:] for line in lines(files)] == [
        ["-rw-r-----", "1", "1000", "1000", "6", "f.txt"]
    ]
    assert [line.split()[:4] + line.split()[-1:] for line in lines(workdir)] == [
        ["drwxr-xr-x", "2", "1000", "1000", "/home/app"]
    ]


def lines(result: layercake.RunResult) -> list[str]:
    """The lines a successful run printed, without ls's "total" line."""
    assert (result.exit_code, result.stderr) == (0, b"")
    return [
        line
        for line in result.stdout.decode().splitlines()
        if not line.startswith("total")
    ]


def test_copy_from_a_stage_reads_files_only_their_owner_may_read(store, busybox):
    """COPY --from copies a mode 0600 file of uid 1000 made by an earlier stage."""
    context = store.path.parent / "stages"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox AS secret\n"
        "RUN echo secret > /s && chown 1000:1000 /s && chmod 600 /s\n"
        "FROM busybox\n"
        "COPY --from=secret /s /copied\n"
    )
    image = layercake.Builder(store).build(context, pull="never")

    result = image.run(["sh", "-c", "cat /copied; stat -c '%a %u %g' /copied"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        b"secret\n600 0 0\n",
        b"",
    )
