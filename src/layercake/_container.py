"""The public ``Container``: one run of an image, with its own writable layer."""

from __future__ import annotations

import logging
import secrets
import shutil
import signal
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from layercake import runtime
from layercake._run_config import RunConfig, env_list, process_spec
from layercake.errors import ContainerError, ContainerTimeout
from layercake.runtime import RootfsSpec, RunResult, Sandbox, SandboxSpec

if TYPE_CHECKING:
    from layercake._image import Image

__all__ = ["Container"]

logger = logging.getLogger(__name__)

_STOP_TIMEOUT = 10.0


def _entrypoint(value: Sequence[str] | str | None) -> tuple[str, ...] | None:
    # docker run --entrypoint takes one word; "" clears the image's Entrypoint.
    if value is None:
        return None
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(value)


class Container:
    """A container made from an image, with ``docker run`` semantics.

    Creating one checks the configuration (command, user) and prepares its
    directory; nothing runs until :meth:`run` or :meth:`start`. Use it as a
    context manager: leaving the block kills whatever still runs and removes
    the container, its writable layer and its logs.

    Raises:
        ContainerConfigError: the image has no command and none was given,
            or the user is not in the image's /etc/passwd.
        RuntimeUnavailable: this machine cannot run containers.
    """

    def __init__(
        self,
        image: Image,
        command: Sequence[str] | None = None,
        *,
        entrypoint: Sequence[str] | str | None = None,
        env: Mapping[str, str] | Sequence[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        hostname: str | None = None,
        network: str = "none",
    ) -> None:
        runtime.require()
        self.image = image
        self.id = secrets.token_hex(32)
        self.config = RunConfig(
            command=tuple(command) if command is not None else None,
            entrypoint=_entrypoint(entrypoint),
            env=env_list(env),
            workdir=workdir,
            user=user,
            hostname=hostname or self.id[:12],
            network=network,
        )
        stack = image.layer_stack()
        self._process = process_spec(image.config.config, self.config, stack)
        self._lower_dirs = tuple(str(path) for path in stack.layer_dirs)
        self.path = image.store._directory.containers_dir / self.id
        self.path.mkdir(parents=True)
        # Which image the container uses, so the store refuses to remove it.
        (self.path / "image").write_text(str(image.digest))
        self._sandbox: Sandbox | None = None
        self._exit_code: int | None = None
        logger.info("created container %s from %s", self.short_id, image.short_id)

    def __repr__(self) -> str:
        return f"Container({self.short_id!r}, image={self.image.short_id!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove(force=True)

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the id, as ``docker ps`` shows it."""
        return self.id[:12]

    @property
    def exit_code(self) -> int | None:
        """The exit code once the container has exited, else ``None``."""
        return self._exit_code

    def _spec(self) -> SandboxSpec:
        network = self.config.network
        if network not in ("none", "host"):
            raise ContainerError(
                f"network mode {network!r} is not supported (use 'none' or 'host')",
                container_id=self.id,
            )
        return SandboxSpec(
            rootfs=RootfsSpec(
                lower_dirs=self._lower_dirs,
                upper_dir=str(self.path / "upper"),
                work_dir=str(self.path / "work"),
                mount_point=str(self.path / "rootfs"),
            ),
            process=self._process,
            hostname=self.config.hostname or self.short_id,
            network=network,  # type: ignore[arg-type]
        )

    def _ensure_not_started(self) -> None:
        if self._sandbox is not None or self._exit_code is not None:
            raise ContainerError(
                f"container {self.short_id} was already started", container_id=self.id
            )

    def run(
        self, *, stdin: bytes | None = None, timeout: float | None = None
    ) -> RunResult:
        """Run attached: start, wait for the exit, return code and output.

        Raises:
            ContainerError: already started, failed to start, or timed out.
        """
        self._ensure_not_started()
        result = runtime.run(self._spec(), stdin=stdin, timeout=timeout)
        self._exit_code = result.exit_code
        logger.info("container %s exited with %d", self.short_id, result.exit_code)
        return result

    def attach(
        self,
        *,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
    ) -> int:
        """Run with the given file descriptors and return the exit code.

        ``None`` gives the container /dev/null as stdin and the caller's own
        stdout and stderr, as ``docker run`` does in a terminal.

        Raises:
            ContainerError: already started or failed to start.
        """
        self._ensure_not_started()
        self._sandbox = runtime.start(
            self._spec(), stdin=stdin, stdout=stdout, stderr=stderr
        )
        return self.wait()

    def start(self) -> None:
        """Start in the background; output goes to the container's log files.

        Raises:
            ContainerError: already started or failed to start.
        """
        self._ensure_not_started()
        with (
            open(self.path / "stdout.log", "wb") as out,
            open(self.path / "stderr.log", "wb") as err,
        ):
            self._sandbox = runtime.start(
                self._spec(), stdout=out.fileno(), stderr=err.fileno()
            )
        logger.info("started container %s", self.short_id)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for a started container to exit and return its exit code.

        Raises:
            ContainerError: not started, or still running after ``timeout``.
        """
        if self._exit_code is not None:
            return self._exit_code
        if self._sandbox is None:
            raise ContainerError(
                f"container {self.short_id} is not started", container_id=self.id
            )
        self._exit_code = self._sandbox.wait(timeout)
        return self._exit_code

    def logs(self, *, stdout: bool = True, stderr: bool = True) -> bytes:
        """Return what a started container wrote, stdout first, then stderr."""
        chunks = []
        for wanted, name in ((stdout, "stdout.log"), (stderr, "stderr.log")):
            path = self.path / name
            if wanted and path.exists():
                chunks.append(path.read_bytes())
        return b"".join(chunks)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the container's main process (default SIGKILL)."""
        if self._sandbox is not None and self._exit_code is None:
            if sig == signal.SIGKILL:
                self._sandbox.kill()
            else:
                self._sandbox.send_signal(sig)

    def stop(self, timeout: float = _STOP_TIMEOUT) -> int:
        """Stop as ``docker stop`` does: StopSignal, then SIGKILL after ``timeout``."""
        if self._sandbox is None or self._exit_code is not None:
            return self.wait() if self._sandbox else -1
        stop_signal = self.image.config.config.stop_signal or "SIGTERM"
        self.kill(_signal_number(stop_signal))
        try:
            return self.wait(timeout)
        except ContainerTimeout:
            self.kill()
            return self.wait()

    def remove(self, *, force: bool = False) -> None:
        """Delete the container and its writable layer.

        Raises:
            ContainerError: it still runs and ``force`` is false.
        """
        if self._sandbox is not None and self._exit_code is None:
            if not force:
                raise ContainerError(
                    f"container {self.short_id} is running; stop it or use force",
                    container_id=self.id,
                )
            self.kill()
            self.wait()
        if self.path.exists():
            shutil.rmtree(self.path)
            logger.info("removed container %s", self.short_id)


def _signal_number(name: str) -> int:
    text = name.upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise ContainerError(f"invalid stop signal {name!r}") from None
