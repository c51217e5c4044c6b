"""The asyncio API: long operations never block the event loop."""

from __future__ import annotations

import asyncio
import os

import pytest

pytestmark = pytest.mark.usefixtures("container_runtime")


async def ticking(coroutine):
    """Run a coroutine beside a ticker; return its result and the tick count."""
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    try:
        return await coroutine, ticks
    finally:
        task.cancel()


def test_arun_returns_output_while_the_loop_keeps_running(busybox):
    """arun gives exit code and both streams; other tasks run meanwhile."""
    result, ticks = asyncio.run(
        ticking(busybox.arun(["sh", "-c", "sleep 0.2; echo out; echo err >&2; exit 4"]))
    )
    assert (result.exit_code, result.stdout, result.stderr) == (4, b"out\n", b"err\n")
    assert ticks >= 10


def test_cancelling_arun_kills_and_removes_the_container(busybox, store):
    """A cancelled arun leaves no container and no process behind."""

    async def main():
        task = asyncio.create_task(busybox.arun(["sleep", "60"]))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert os.listdir(store.path / "containers") == []
