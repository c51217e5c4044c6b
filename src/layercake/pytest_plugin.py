"""layercake's pytest plugin: build images once, give each test fresh containers.

Registered through the ``pytest11`` entry point, so installing layercake is
enough. Fixtures:

- ``layercake_store``: the session's :class:`~layercake.Store`. Set its
  directory with ``--layercake-store`` or the ``layercake_store`` ini option
  (default: the user's store, so the build cache outlives the session). The
  store is safe to share between pytest-xdist workers.
- ``layercake_image``: builds an image once per session and returns it;
  takes ``Builder.build``'s arguments.
- ``layercake_container``: starts throwaway containers for one test and
  removes them after it, whatever happens; ``wait_for_log=`` waits for a line
  of output before the test goes on. Containers die with the test process
  even when it is killed, and the next session removes what such a crash
  left in the store.

When a test fails, the last output lines and the exit status of each of its
containers are added to the report.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from layercake import Container, Image, Store

__all__ = [
    "layercake_container",
    "layercake_image",
    "layercake_store",
]

_CONTAINERS = pytest.StashKey[list["Container"]]()
_NAME_PREFIX = "pytest-"
_OWNER_FILE = "owner"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add --layercake-store and the layercake_store ini option."""
    help_text = "store directory for layercake's fixtures (default: the user's store)"
    parser.addini("layercake_store", help_text, default="")
    group = parser.getgroup("layercake")
    group.addoption("--layercake-store", dest="layercake_store", help=help_text)


@pytest.fixture(scope="session")
def layercake_store(pytestconfig: pytest.Config) -> Store:
    """The store every layercake fixture of this session uses.

    Containers an earlier, crashed session left behind are removed first.
    """
    import layercake

    path = pytestconfig.getoption("layercake_store") or pytestconfig.getini(
        "layercake_store"
    )
    store = layercake.Store(Path(str(path)).expanduser() if path else None)
    _sweep(store)
    return store


def _sweep(store: Store) -> None:
    """Remove the containers this plugin made for a process that has ended.

    Each records its owner (see :func:`_claim`); one whose owner still
    lives belongs to another pytest-xdist worker or another session, which
    may still use it whatever its state.
    """
    from layercake._container_listing import list_containers
    from layercake.errors import ContainerError

    for container in list_containers(store, all=True):
        if _owner_alive(container.path / _OWNER_FILE):
            continue
        try:
            container.remove(force=True)
        except ContainerError:
            # Its owner's own cleanup, or another sweep, removed it first.
            continue


def _claim(container: Container) -> None:
    """Record this process (pid and kernel start time) as the container's owner."""
    from layercake._container_state import process_start_time

    pid = os.getpid()
    path = container.path / _OWNER_FILE
    # Written aside and renamed: a sweep never reads half an owner.
    temporary = path.with_name(f".{_OWNER_FILE}.{pid}")
    temporary.write_text(f"{pid} {process_start_time(pid)}\n")
    os.replace(temporary, path)


def _owner_alive(path: Path) -> bool:
    """Whether the owner recorded in ``path`` lives; true if none is recorded.

    A container without the file is not the plugin's, or is being created
    right now: either way not for the sweep.
    """
    from layercake._container_state import is_alive

    try:
        pid, start = path.read_text().split()
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return start.isdigit() and is_alive(int(pid), int(start))


@pytest.fixture(scope="session")
def layercake_image(layercake_store: Store) -> Callable[..., Image]:
    """Return ``build(context=None, *, dockerfile=, text=, tag=, build_args=,
    target=)``, which builds each distinct image once per session."""
    import layercake

    built: dict[tuple[Any, ...], Image] = {}
    builder = layercake.Builder(layercake_store)

    def build(
        context: str | Path | None = None,
        *,
        dockerfile: str | Path | None = None,
        text: str | None = None,
        tag: str | None = None,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
    ) -> Image:
        key = (
            str(context),
            str(dockerfile),
            text,
            tag,
            tuple(sorted((build_args or {}).items())),
            target,
        )
        if key not in built:
            built[key] = builder.build(
                context,
                dockerfile=dockerfile,
                text=text,
                tag=tag,
                build_args=build_args,
                target=target,
            )
        return built[key]

    return build


@pytest.fixture
def layercake_container(
    request: pytest.FixtureRequest, layercake_store: Store
) -> Iterator[Callable[..., Container]]:
    """Return ``start(image, command=None, *, wait_for_..., timeout=30,
    **options)``: a started container, removed when the test ends.

    ``image`` is an :class:`~layercake.Image` or a reference in the store;
    ``options`` are :class:`~layercake.Container`'s keyword arguments (e.g.
    ``ports={5432: 0}``). Before returning it waits, as asked, for a log
    line (``wait_for_log``, a regex), a published TCP port
    (``wait_for_port``), an HTTP 200 (``wait_for_http=port`` or
    ``(port, path)``), a command exiting 0 (``wait_for_command``) or the
    image's HEALTHCHECK (``wait_for_healthcheck=True``); each wait fails at
    once with the exit code and last output if the container exits.
    """
    import layercake
    from layercake import _waits as waits

    containers: list[Container] = []
    request.node.stash[_CONTAINERS] = containers

    def start(
        image: Image | str,
        command: Sequence[str] | None = None,
        *,
        wait_for_log: str | None = None,
        wait_for_port: int | None = None,
        wait_for_http: int | tuple[int, str] | None = None,
        wait_for_command: Sequence[str] | None = None,
        wait_for_healthcheck: bool = False,
        timeout: float = 30.0,
        **options: Any,
    ) -> Container:
        if isinstance(image, str):
            image = layercake_store.image(image)
        options.setdefault("name", f"{_NAME_PREFIX}{secrets.token_hex(6)}")
        container = layercake.Container(image, command, **options)
        _claim(container)
        containers.append(container)
        container.start()
        if wait_for_log is not None:
            waits.wait_for_log(container, wait_for_log, timeout=timeout)
        if wait_for_port is not None:
            waits.wait_for_port(container, wait_for_port, timeout=timeout)
        if wait_for_http is not None:
            port, path = (
                wait_for_http
                if isinstance(wait_for_http, tuple)
                else (wait_for_http, "/")
            )
            waits.wait_for_http(container, port, path=path, timeout=timeout)
        if wait_for_command is not None:
            waits.wait_for_command(container, wait_for_command, timeout=timeout)
        if wait_for_healthcheck:
            waits.wait_for_healthcheck(container, timeout=timeout)
        return container

    yield start

    for container in reversed(containers):
        container.remove(force=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """Attach each container's exit status and last output to a failure."""
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    from layercake._waits import exit_status, last_output

    for container in item.stash.get(_CONTAINERS, []):
        if not container.path.exists():
            continue
        status = exit_status(container)
        state = "running" if status is None else f"exited with code {status}"
        report.sections.append(
            (
                f"layercake container {container.short_id}",
                f"{state}\n{last_output(container)}",
            )
        )
