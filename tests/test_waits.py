"""Readiness waits against real services in containers."""

from __future__ import annotations

import time
import urllib.request

import pytest

import layercake
from layercake import _waits as waits
from layercake.errors import ContainerConfigError, ContainerError, ContainerTimeout

pytestmark = pytest.mark.usefixtures("container_runtime")

HTTPD = [
    "sh",
    "-c",
    (
        "mkdir /www; echo hello > /www/index.html; sleep 0.3; "
        "exec httpd -f -p 8080 -h /www"
    ),
]


@pytest.fixture
def httpd(busybox):
    with layercake.Container(busybox, HTTPD, ports={8080: 0}) as container:
        container.start()
        yield container


def test_wait_for_port_then_http(httpd):
    """A busybox httpd is reachable from the test at the published port."""
    host_port = waits.wait_for_port(httpd, 8080, timeout=10)
    assert waits.wait_for_http(httpd, 8080, timeout=10) == host_port
    with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/") as response:
        assert response.read() == b"hello\n"


def test_wait_for_http_status_that_never_comes_times_out(httpd):
    """A 404 never becomes the wanted 200: the wait ends at its timeout."""
    with pytest.raises(ContainerTimeout) as caught:
        waits.wait_for_http(httpd, 8080, path="/missing", timeout=1)
    assert caught.value.timeout == 1
    assert f"container {httpd.short_id}: no sign within 1s that GET /missing " in str(
        caught.value
    )


def test_wait_for_command_and_healthcheck(busybox, store):
    """A command, and the image's HEALTHCHECK, pass once /ready exists."""
    image = layercake.Builder(store).build(
        None, text="FROM busybox\nHEALTHCHECK --interval=100ms CMD test -f /ready\n"
    )
    script = "sleep 0.3; touch /ready; sleep 30"
    with layercake.Container(image, ["sh", "-c", script]) as container:
        container.start()
        waits.wait_for_command(container, ["test", "-f", "/ready"], timeout=10)
        waits.wait_for_healthcheck(container, timeout=10)


def test_waits_stop_at_once_when_the_container_exits(busybox):
    """An exiting container ends the wait with its code and output, not a hang."""
    with layercake.Container(
        busybox, ["sh", "-c", "echo broken config >&2; exit 2"], ports={80: 0}
    ) as container:
        container.start()
        with pytest.raises(ContainerError) as caught:
            waits.wait_for_command(container, ["true"], timeout=30)
    message = str(caught.value)
    assert message.startswith(f"container {container.short_id} exited with code 2")
    assert message.endswith("last output:\nbroken config")


def test_healthcheck_wait_needs_a_healthcheck(busybox):
    """An image without HEALTHCHECK cannot be waited on for health."""
    with layercake.Container(busybox, ["sleep", "5"]) as container:
        container.start()
        with pytest.raises(ContainerConfigError) as caught:
            waits.wait_for_healthcheck(container)
    assert str(caught.value) == (
        f"image {busybox.short_id} has no HEALTHCHECK to wait for"
    )


def test_container_methods_wait_and_snapshot(busybox, store):
    """Container.wait_for_log and snapshot(): a seeded state starts new copies."""
    script = "echo seeded > /data.txt; echo ready; sleep 30"
    with layercake.Container(busybox, ["sh", "-c", script]) as seeder:
        # Detached, it has a cgroup: snapshot() freezes it while copying.
        seeder.start(detach=True)
        assert seeder.wait_for_log("^ready$").group(0) == "ready"
        snapshot = seeder.snapshot(tag="seeded:1")
    for _ in range(2):
        assert snapshot.run(["cat", "/data.txt"]).stdout == b"seeded\n"
    assert store.image("seeded:1") == snapshot


def test_await_exit_does_not_block_the_loop(busybox):
    """await_exit returns the exit code while other tasks run."""
    import asyncio

    async def main():
        with layercake.Container(busybox, ["sh", "-c", "sleep 0.2; exit 5"]) as c:
            c.start()
            return await c.await_exit(timeout=10)

    assert asyncio.run(main()) == 5


def test_wait_for_port_returns_only_once_the_service_listens(busybox):
    """The forwarder accepts at once, but the wait lasts until httpd listens."""
    script = "mkdir /www; echo late > /www/index.html; sleep 1; exec httpd -f -p 8080 -h /www"
    with layercake.Container(
        busybox, ["sh", "-c", script], ports={8080: 0}
    ) as container:
        container.start()
        began = time.monotonic()
        host_port = waits.wait_for_port(container, 8080, timeout=10)
        waited = time.monotonic() - began
        with urllib.request.urlopen(
            f"http://127.0.0.1:{host_port}/", timeout=5
        ) as response:
            body = response.read()
    assert body == b"late\n"
    assert waited >= 0.9


def test_wait_for_port_that_never_listens_times_out(busybox):
    """A published port nothing listens on ends the wait at its timeout."""
    with layercake.Container(busybox, ["sleep", "30"], ports={8080: 0}) as container:
        container.start()
        with pytest.raises(ContainerTimeout) as caught:
            waits.wait_for_port(container, 8080, timeout=1)
    assert caught.value.timeout == 1
    assert str(caught.value) == (
        f"container {container.short_id}: no sign within 1s that port 8080 "
        "accepted connections; last output: (none)"
    )


def test_wait_for_log_with_an_invalid_regex_names_it(busybox):
    """A pattern that is no regular expression is a configuration error."""
    with layercake.Container(busybox, ["sleep", "30"]) as container:
        container.start()
        with pytest.raises(ContainerConfigError) as caught:
            waits.wait_for_log(container, "ready(", timeout=1)
    assert str(caught.value) == (
        "invalid regular expression 'ready(': missing ), unterminated subpattern "
        "at position 5"
    )


def test_negative_timeout_is_a_value_error(busybox):
    """Every wait refuses a negative timeout before it polls."""
    with layercake.Container(busybox, ["sleep", "30"], ports={80: 0}) as container:
        container.start()
        calls = [
            lambda: waits.wait_for_log(container, "x", timeout=-1),
            lambda: waits.wait_for_port(container, 80, timeout=-1),
            lambda: waits.wait_for_http(container, 80, timeout=-1),
            lambda: waits.wait_for_command(container, ["true"], timeout=-1),
        ]
        for call in calls:
            with pytest.raises(ValueError) as caught:
                call()
            assert isinstance(caught.value, ContainerConfigError)
            assert str(caught.value) == "timeout must not be negative, not -1"


def test_wait_for_command_that_cannot_run_fails_at_once(busybox):
    """A missing command (exit 127) fails the wait at once, not at its timeout."""
    with layercake.Container(busybox, ["sleep", "30"]) as container:
        container.start()
        began = time.monotonic()
        with pytest.raises(ContainerError) as caught:
            waits.wait_for_command(container, ["sh", "-c", "no-such-tool"], timeout=30)
        waited = time.monotonic() - began
    assert not isinstance(caught.value, ContainerTimeout)
    assert waited < 5
    assert str(caught.value) == (
        f"['sh', '-c', 'no-such-tool'] was not found in container "
        f"{container.short_id}: the command cannot run (exit code 127); its "
        "output: sh: no-such-tool: not found"
    )


def test_wait_for_command_that_cannot_be_executed_fails_with_the_reason(busybox):
    """A program exec cannot start fails the wait with the exec error."""
    with layercake.Container(busybox, ["sleep", "30"]) as container:
        container.start()
        with pytest.raises(ContainerError) as caught:
            waits.wait_for_command(container, ["no-such-tool"], timeout=30)
    assert str(caught.value) == (
        f"['no-such-tool'] cannot run in container {container.short_id}: "
        'exec: "no-such-tool": executable file not found in $PATH (exit code 127)'
    )


def test_failing_healthcheck_output_is_in_the_timeout_message(busybox, store):
    """The timeout names the last check's exit code and what it printed."""
    image = layercake.Builder(store).build(
        None,
        text=(
            "FROM busybox\n"
            "HEALTHCHECK --interval=100ms CMD echo not ready yet; exit 1\n"
        ),
    )
    with layercake.Container(image, ["sleep", "30"]) as container:
        container.start()
        with pytest.raises(ContainerTimeout) as caught:
            waits.wait_for_healthcheck(container, timeout=1)
    assert str(caught.value) == (
        f"container {container.short_id}: no sign within 1s that ['/bin/sh', '-c', "
        "'echo not ready yet; exit 1'] exited 0; last check exited 1 with output: "
        "not ready yet; last output: (none)"
    )
