"""The public ``Container``: one run of an image, with its own writable layer.

A container's directory (``store/containers/<id>/``) records how it was made
and where it is in its life (see :mod:`layercake._container_state`), so
another process can find it with
:func:`layercake._container_listing.list_containers` or
:meth:`Container.load` and stop, kill, inspect or remove it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import select
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Self, overload

import attrs

from layercake import _container_network as net
from layercake import _name_resolution as name_resolution
from layercake import runtime
from layercake._container_lock import claim_name, lifecycle_locked, names_locked
from layercake._container_log import (
    LogWriter,
    follow_lines,
    read_lines,
    relay_output,
    since_ns,
)
from layercake._container_state import (
    LOG_FILE,
    STOP_FILE,
    ContainerRecord,
    ContainerState,
    is_alive,
    now,
    process_start_time,
    read_record,
    read_state,
    status_text,
    write_record,
    write_state,
)
from layercake._limits import check_limits, check_workdir
from layercake._ports import Forwarder, HostPort, Published, parse_ports
from layercake._restart_policy import RestartPolicy, conflicts_with_rm
from layercake._run_config import (
    RunConfig,
    command_override,
    entrypoint_override,
    env_list,
    process_spec,
    security_options,
    with_term,
)
from layercake._signals import signal_to_send, stop_signal_number
from layercake._tmpfs_options import recorded_tmpfs, tmpfs_mounts_of, tmpfs_options
from layercake._volumes import VolumeSpec, prepare_volumes
from layercake.errors import (
    CommandNotStarted,
    ContainerConfigError,
    ContainerError,
    ContainerTimeout,
)
from layercake.runtime import (
    BindMount,
    Cgroup,
    Resources,
    RootfsSpec,
    RunResult,
    Sandbox,
    SandboxSpec,
    TmpfsMount,
    open_cgroup,
)
from layercake.store import Digest

if TYPE_CHECKING:
    from layercake._container_files import Change
    from layercake._image import Image
    from layercake._layer_stack import LayerStack
    from layercake._store import Store

__all__ = ["Container"]

logger = logging.getLogger(__name__)

_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05


def _default_hostname(network: str, container_id: str) -> str:
    # docker: a container on the host's network has the host's name.
    return os.uname().nodename if network == "host" else container_id[:12]


class Container:
    """A container made from an image, with ``docker run`` semantics.

    Creating one checks the configuration (command, user, name, volumes) and
    records it in its directory; nothing runs until :meth:`run`,
    :meth:`attach` or :meth:`start`. Use it as a context manager: leaving the
    block kills whatever still runs and removes the container, its writable
    layer, its anonymous volumes and its logs.

    ``volumes`` entries are ``(source, target)`` or ``(source, target, "ro")``:
    an absolute ``source`` is a host path bound in; any other is a named
    volume under ``store/volumes/<name>``, created on first use and seeded
    with the image's content at ``target``. Each ``VOLUME`` of the image not
    covered gets an anonymous volume, removed with the container.

    ``memory`` (bytes), ``cpus``, ``cpu_shares`` and ``pids_limit`` are
    ``docker run``'s limits, applied through a cgroup of the container's own;
    where cgroups cannot be used the run goes on and says so in a warning
    (logged, and in :attr:`RunResult.warnings` or ``inspect()``).

    ``network`` is ``"bridge"`` (the default, as Docker's: own namespace
    with an address on the host's default bridge ``layercake0`` and
    outbound access; rootless through slirp4netns, or loopback only where
    slirp4netns cannot run), ``"none"`` (own namespace, loopback only),
    ``"host"``, ``"container:<id or name>"`` (join a running container's
    namespace), or the name of a network made with
    :meth:`Store.create_network`, whose members reach each other by
    container name and ``network_aliases``.
    ``ports`` maps container ports (``80``, ``"80/tcp"``, ``"53/udp"``) to
    ports on 127.0.0.1 (``0``: any free one, see :meth:`host_port`) or to
    ``(host address, port)``; :meth:`start` forwards them. On ``"host"``
    they are discarded, as docker does: the container uses the host's ports.

    Security: Docker's default capabilities, changed by ``cap_add`` and
    ``cap_drop`` (names with or without ``CAP_``, or ``ALL``);
    ``security_opt=["no-new-privileges"]``; the default seccomp filter
    (docs/security.md), off with ``security_opt=["seccomp=unconfined"]``;
    ``privileged`` keeps every capability, runs without the seccomp filter
    and leaves /proc and /sys unmasked and writable.

    ``executor`` is ``"builtin"``, or ``"runc"`` or ``"crun"`` to have that
    OCI runtime run the container (see :meth:`bundle`) with the same
    results, as root.

    ``restart`` is ``docker run --restart``'s policy: ``"no"``, ``"always"``,
    ``"unless-stopped"``, ``"on-failure"`` or ``"on-failure:N"`` (at most N
    restarts). The monitor of a started container applies it each time the
    process ends, after Docker's back-off; :meth:`stop`, :meth:`kill` and
    :meth:`remove` end the restarts. An attached run (:meth:`run`,
    :meth:`attach`) returns its first run's result and, if the policy
    restarts it, leaves the container restarting under a detached monitor.

    ``tty`` gives the process a pseudo terminal (``docker run -t``): its
    stdin, stdout and stderr are ``/dev/pts/0``, its controlling terminal,
    and its output comes back as one stream (stdout) with the terminal's
    ``\r\n`` line ends. ``tty_size`` is its first ``(rows, columns)``;
    :meth:`resize` changes it. ``stdin_open`` (``docker run -i``) keeps a
    container started by :meth:`start` reading an open standard input, as
    :meth:`attach` can feed it, rather than /dev/null.

    ``auto_remove`` (``docker run --rm``) has the monitor of a started
    container remove it once it has exited; it cannot be combined with a
    restart policy.

    ``extra_hosts`` (``--add-host``: ``{"name": "address"}`` or
    ``["name:address"]``, the address ``"host-gateway"`` meaning the host as
    containers reach it) adds lines to /etc/hosts; ``dns``, ``dns_search``
    and ``dns_options`` (``--dns``, ``--dns-search``, ``--dns-option``)
    replace the host's servers, search domains and options in
    /etc/resolv.conf, as docker does.

    Raises:
        ContainerConfigError: the image has no command and none was given,
            the user is not in the image's /etc/passwd, the name is invalid
            or taken, a volume or tmpfs entry is malformed, the network
            does not exist or cannot be used so, the restart policy is not
            one or combined with ``auto_remove``, ``tty`` is asked of an
            OCI executor, a limit is not a number or is outside docker's
            range (``memory`` below 6 MiB, ``cpus`` beyond 0.01 to the CPUs
            available), ``workdir`` is relative, an ``extra_hosts`` entry or
            ``dns`` server is malformed, or names, DNS settings, published
            ports or a hostname are asked of a ``container:`` network.
        RuntimeUnavailable: this machine cannot run containers.
    """

    def __init__(
        self,
        image: Image,
        command: Sequence[str] | str | None = None,
        *,
        entrypoint: Sequence[str] | str | None = None,
        env: Mapping[str, str] | Sequence[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        hostname: str | None = None,
        network: str = "bridge",
        name: str | None = None,
        init: bool = False,
        read_only: bool = False,
        tmpfs: Sequence[TmpfsMount | str] | None = None,
        volumes: Sequence[VolumeSpec] | None = None,
        memory: int = 0,
        cpus: float = 0.0,
        cpu_shares: int = 0,
        pids_limit: int = 0,
        privileged: bool = False,
        cap_add: Sequence[str] = (),
        cap_drop: Sequence[str] = (),
        security_opt: Sequence[str] = (),
        ports: Mapping[int | str, HostPort] | None = None,
        executor: str = "builtin",
        network_aliases: Sequence[str] = (),
        restart: str = "no",
        tty: bool = False,
        stdin_open: bool = False,
        tty_size: tuple[int, int] | None = None,
        auto_remove: bool = False,
        extra_hosts: Mapping[str, str] | Sequence[str] | None = None,
        dns: Sequence[str] = (),
        dns_search: Sequence[str] = (),
        dns_options: Sequence[str] = (),
    ) -> None:
        runtime.require()
        restart_policy = RestartPolicy.parse(restart)
        memory, cpus, cpu_shares, pids_limit = check_limits(
            memory, cpus, cpu_shares, pids_limit
        )
        check_workdir(workdir)
        conflict = conflicts_with_rm(restart_policy)
        if auto_remove and conflict is not None:
            raise conflict
        if executor not in runtime.EXECUTORS:
            raise ContainerConfigError(
                f"unknown executor {executor!r}: use one of "
                f"{', '.join(runtime.EXECUTORS)}"
            )
        if executor != "builtin" and init:
            raise ContainerConfigError(
                f"init=True needs the built-in executor, not {executor}"
            )
        if executor != "builtin" and tty:
            raise ContainerConfigError(
                f"tty=True needs the built-in executor, not {executor}"
            )
        self.image = image
        self.id = secrets.token_hex(32)
        self.config = RunConfig(
            command=command_override(command),
            entrypoint=entrypoint_override(entrypoint),
            env=env_list(env),
            workdir=workdir,
            user=user,
            hostname=hostname or _default_hostname(network, self.id),
            network=network,
        )
        stack = image.layer_stack()
        no_new_privileges, seccomp = security_options(security_opt)
        self._process = attrs.evolve(
            process_spec(image.config.config, self.config, stack),
            capabilities=runtime.capability_set(
                cap_add, cap_drop, privileged=privileged
            ),
            no_new_privileges=no_new_privileges,
            seccomp=seccomp and not privileged,
            terminal=tty,
            terminal_size=tty_size,
        )
        if tty:
            self._process = with_term(self._process)
        self._lower_dirs = tuple(str(path) for path in stack.layer_dirs)
        containers = image.store._directory.containers_dir
        self.path = containers / self.id
        self._sandbox: Sandbox | runtime.OciProcess | None = None
        self._terminals: set[int] = set()
        self._exit_code: int | None = None
        self._state: ContainerState | None = None
        tmpfs_mounts = tmpfs_mounts_of(tmpfs)
        published = parse_ports(ports)
        net.check(
            network, network_aliases, publishes=bool(published), hostname=hostname
        )
        if network == "host" and published:
            # As docker: the host's ports are the container's already.
            logger.info("published ports are discarded on the host network")
            published = ()
        hosts = name_resolution.extra_hosts(extra_hosts)
        name_resolution.check(network, hosts, dns, dns_search, dns_options)
        if any(entry.endswith(":" + name_resolution.HOST_GATEWAY) for entry in hosts):
            # Said now rather than at the first start.
            name_resolution.host_gateway(network)
        resolution = (hosts, tuple(dns), tuple(dns_search), tuple(dns_options))

        containers.mkdir(parents=True, exist_ok=True)
        try:
            self._create(
                containers,
                name,
                volumes,
                published,
                tmpfs_mounts,
                stack,
                init=init,
                read_only=read_only,
                memory=memory,
                cpus=cpus,
                cpu_shares=cpu_shares,
                pids_limit=pids_limit,
                privileged=privileged,
                executor=executor,
                aliases=tuple(network_aliases),
                restart=restart_policy,
                stdin_open=stdin_open,
                auto_remove=auto_remove,
                resolution=resolution,
            )
        except BaseException:
            # Half a container is no container: leave nothing in the store.
            shutil.rmtree(self.path, ignore_errors=True)
            if hasattr(self, "record"):
                net.forget(image.store.path, containers, self.record)
            raise
        logger.info("created container %s from %s", self.short_id, image.short_id)

    def _create(
        self,
        containers: Path,
        name: str | None,
        volumes: Sequence[VolumeSpec] | None,
        published: tuple[tuple[int, str, str, int], ...],
        tmpfs_mounts: tuple[TmpfsMount, ...],
        stack: LayerStack,
        *,
        init: bool,
        read_only: bool,
        memory: int,
        cpus: float,
        cpu_shares: int,
        pids_limit: int,
        privileged: bool,
        executor: str,
        aliases: tuple[str, ...],
        restart: RestartPolicy,
        stdin_open: bool,
        auto_remove: bool,
        resolution: tuple[tuple[str, ...], ...],
    ) -> None:
        image = self.image
        network = self.config.network
        workdir = self.config.workdir
        user = self.config.user
        def gives_up(holder: str) -> bool:
            # Imported here: the listing module imports this one, and only a
            # taken name needs it.
            from layercake._container_listing import free_name

            return free_name(image.store, holder)

        with names_locked(containers):
            self.name = claim_name(containers, name, self.id, gives_up)
            self.path.mkdir()
            # Which image the container uses, so the store refuses to remove it.
            (self.path / "image").write_text(str(image.digest))
            binds = prepare_volumes(
                image.store.path / "volumes",
                self.path / "volumes",
                tuple(volumes or ()),
                tuple(image.config.config.volumes),
                stack,
            )
            self.record = ContainerRecord(
                id=self.id,
                name=self.name,
                created=now(),
                image=str(image.digest),
                image_reference=(image.tags or (image.id,))[0],
                process=self._process,
                lower_dirs=self._lower_dirs,
                hostname=self.config.hostname or self.short_id,
                network=network,
                command=self.config.command,
                entrypoint=self.config.entrypoint,
                env=self.config.env,
                workdir=workdir,
                user=user,
                init=init,
                read_only=read_only,
                tmpfs=tuple((t.target, t.size, t.mode) for t in tmpfs_mounts),
                tmpfs_options=tuple(tmpfs_options(t) for t in tmpfs_mounts),
                binds=tuple((b.source, b.target, b.read_only) for b in binds),
                memory=memory,
                cpus=cpus,
                cpu_shares=cpu_shares,
                pids_limit=pids_limit,
                privileged=privileged,
                ports=published,
                executor=executor,
                network_aliases=aliases,
                restart=restart,
                stdin_open=stdin_open,
                storage_driver=image.store._container_driver(),
                auto_remove=auto_remove,
                extra_hosts=resolution[0],
                dns=resolution[1],
                dns_search=resolution[2],
                dns_options=resolution[3],
            )
            write_record(self.path, self.record)
        net.lease(image.store.path, containers, self.record)

    @classmethod
    def load(cls, store: Store, key: str) -> Container:
        """Find a container of ``store`` by id, name or unique id prefix.

        Raises:
            ContainerError: no container, or more than one, matches ``key``.
        """
        from layercake._container_listing import all_containers

        containers = store._directory.containers_dir
        everyone = all_containers(store)
        found = {c.id: c for c in everyone if c.name == key.lstrip("/")}
        if not found:
            found = {c.id: c for c in everyone if c.id.startswith(key.lower())}
        if len(found) == 1 and key:
            return next(iter(found.values()))
        if len(found) > 1 and key:
            raise ContainerError(
                f"container prefix {key} is ambiguous: {len(found)} containers match"
            )
        raise ContainerError(f"no such container: {key} in {containers}")

    @classmethod
    def _from_record(cls, store: Store, path: Path, record: ContainerRecord) -> Self:
        container = cls.__new__(cls)
        container.image = store._load(Digest.parse(record.image))
        container.id = record.id
        container.name = record.name
        container.record = record
        container.config = RunConfig(
            command=record.command,
            entrypoint=record.entrypoint,
            env=record.env,
            workdir=record.workdir,
            user=record.user,
            hostname=record.hostname,
            network=record.network,
        )
        container._process = record.process
        container._lower_dirs = record.lower_dirs
        container.path = path
        container._sandbox = None
        container._terminals = set()
        container._exit_code = None
        container._state = None
        return container

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
        if self._exit_code is None and self._sandbox is None:
            state = self.state()
            if state.status == "exited":
                self._exit_code = state.exit_code
        return self._exit_code

    @property
    def pid(self) -> int | None:
        """The host pid of the container's PID 1 while it runs, else ``None``."""
        if self._sandbox is not None:
            return self._sandbox.pid if self._exit_code is None else None
        return self._live_pid()

    @property
    def status(self) -> str:
        """``created``, ``running``, ``paused``, ``restarting`` or ``exited``.

        ``restarting``: the restart policy starts the process again once its
        back-off ends, as ``docker inspect`` says it.
        """
        return status_text(self.state())

    def state(self) -> ContainerState:
        """The recorded state, corrected when its monitor process died.

        A container whose monitor died (its host crashed or was killed) is
        killed if anything of it still runs and recorded as exited with 137.

        Raises:
            ContainerError: the container was removed.
        """
        self._ensure_exists()
        if self._state is not None:
            return self._state
        state = read_state(self.path)
        if state.status == "running" and not is_alive(
            state.monitor_pid, state.monitor_start
        ):
            if is_alive(state.pid, state.pid_start):
                _signal(state.pid, signal.SIGKILL)
            state = read_state(self.path)
            if state.status == "running":
                state = attrs.evolve(
                    state,
                    status="exited",
                    restarting=False,
                    exit_code=128 + signal.SIGKILL,
                    finished_at=now(),
                    error="the process that ran the container died"
                    if state.attached
                    else "the container's monitor process died",
                )
                write_state(self.path, state)
        return state

    @contextlib.contextmanager
    def _lifecycle(self) -> Iterator[None]:
        """Hold the container's lifecycle lock (see :mod:`._container_lock`)."""
        try:
            with lifecycle_locked(self.path):
                yield
        except FileNotFoundError:
            if self.path.is_dir():
                raise
            raise ContainerError(
                f"container {self.short_id} was removed", container_id=self.id
            ) from None

    def _ensure_exists(self) -> None:
        if not self.path.is_dir():
            raise ContainerError(
                f"container {self.short_id} was removed", container_id=self.id
            )

    def _cgroup(self, detach: bool) -> tuple[Cgroup | None, tuple[str, ...]]:
        """The run's cgroup, and the warnings of its start (limits, network)."""
        cgroup, warnings = self._limits_cgroup(detach)
        return cgroup, warnings + net.start_warnings(self.image.store.path, self.record)

    def _limits_cgroup(self, detach: bool) -> tuple[Cgroup | None, tuple[str, ...]]:
        record = self.record
        resources = Resources(
            memory=record.memory,
            cpus=record.cpus,
            cpu_shares=record.cpu_shares,
            pids_limit=record.pids_limit,
        )
        limited = resources != Resources()
        if not limited and not detach:
            return None, ()
        cgroup, reason = runtime.create_cgroup(self.id, resources)
        if cgroup is not None:
            # Recorded at once: killed before the run is recorded, this
            # process leaves a cgroup that remove() must still find.
            recorded = attrs.evolve(
                read_state(self.path),
                cgroup_version=cgroup.version,
                cgroup_paths=cgroup.paths,
            )
            write_state(self.path, recorded)
            return cgroup, ()
        if not limited:
            logger.info("container %s runs without a cgroup: %s", self.short_id, reason)
            return None, ()
        logger.warning("container %s: %s", self.short_id, reason)
        return None, (reason,)

    def _network(self) -> tuple[str, str]:
        network = self.config.network
        if network in ("none", "host"):
            return network, ""
        if network.startswith("container:"):
            key = network.removeprefix("container:")
            try:
                pid = Container.load(self.image.store, key).pid
            except ContainerError as error:
                # docker says "No such container" too, not "not running".
                raise ContainerError(
                    f"cannot join the network of container {key}: {error}",
                    container_id=self.id,
                ) from None
            if pid is None:
                raise ContainerError(
                    f"cannot join the network of container {key}: it is not running",
                    container_id=self.id,
                )
            return "none", f"/proc/{pid}/ns/net"
        # A bridge network: a namespace of its own, configured by the hook.
        return "none", ""

    def _spec(
        self,
        cgroup: Cgroup | None = None,
        joined: net.StartNetwork | None = None,
        *,
        volatile: bool = False,
    ) -> SandboxSpec:
        network, namespace = self._network()
        return SandboxSpec(
            rootfs=RootfsSpec(
                lower_dirs=self._lower_dirs,
                upper_dir=str(self.path / "upper"),
                work_dir=str(self.path / "work"),
                mount_point=str(self.path / "rootfs"),
                driver=self.record.storage_driver,  # type: ignore[arg-type]
                volatile=volatile,
            ),
            process=self._process,
            hostname=self.record.hostname,
            network=network,  # type: ignore[arg-type]
            network_namespace=namespace,
            mounts=tuple(BindMount(*bind) for bind in self.record.binds),
            tmpfs=recorded_tmpfs(self.record),
            init=self.record.init,
            read_only=self.record.read_only,
            privileged=self.record.privileged,
            cgroup_procs=cgroup.procs_files if cgroup is not None else (),
            hosts_file=joined.hosts_file if joined is not None else "",
            dns=joined.dns if joined is not None else (),
            user_namespace=joined.user_namespace if joined is not None else "",
            dns_search=joined.dns_search if joined is not None else (),
            dns_options=joined.dns_options if joined is not None else (),
            extra_hosts=joined.extra_hosts if joined is not None else (),
        )

    def _start_spec(
        self, cgroup: Cgroup | None
    ) -> tuple[SandboxSpec, Callable[[int], None] | None]:
        """The spec to start, and the hook that plugs in its network, if any."""
        store = self.image.store
        network = net.prepare_start(store.path, self.path.parent, self.record)
        # A --rm container's layer goes with it: its exit need not wait for
        # overlayfs to sync the store's file system (podman does the same).
        # Only its starts: reading files of a created one mounts it too.
        volatile = self.record.auto_remove and self.record.executor == "builtin"
        return self._spec(cgroup, network, volatile=volatile), network.hook

    def _bind_ports(self) -> Forwarder:
        """Bind the published host ports for a run in this process.

        Raises:
            ContainerError: a host port is taken or its address not the host's.
        """
        try:
            return Forwarder(self.record.ports)
        except OSError as error:
            raise ContainerError(
                f"container {self.short_id} failed to start: "
                f"{error.strerror or error}",
                container_id=self.id,
            ) from None

    def _failed_to_start(self, error: Exception) -> str:
        """``container ID failed to start: REASON``, naming the id once."""
        reason = str(error)
        own = f"container {self.short_id} "
        if reason.startswith(own):
            reason = reason[len(own) :]
        return f"{own}failed to start: {reason}"

    def _serve_ports(self, forwarder: Forwarder, pid: int) -> None:
        if self.record.ports:
            with contextlib.suppress(OSError):
                # An OSError: the container already ended, nothing to reach.
                forwarder.serve(pid)

    def _ensure_not_started(self) -> None:
        self._ensure_exists()
        if self._sandbox is None and self.state().status == "dead":
            raise ContainerError(
                f"container {self.short_id} is dead and cannot be started: "
                f"{self.state().error}; remove it with rm -f",
                container_id=self.id,
            )
        if (
            self._sandbox is not None
            or self._exit_code is not None
            or self.state().status != "created"
        ):
            raise ContainerError(
                f"container {self.short_id} was already started", container_id=self.id
            )

    def _record_end(
        self,
        started_at: str,
        exit_code: int,
        cgroup: Cgroup | None,
        warnings: tuple[str, ...],
    ) -> None:
        self._exit_code = exit_code
        self._state = ContainerState(
            status="exited",
            exit_code=exit_code,
            started_at=started_at,
            finished_at=now(),
            oom_killed=cgroup is not None and cgroup.oom_killed(),
            cgroup_version=cgroup.version if cgroup is not None else 0,
            cgroup_paths=cgroup.paths if cgroup is not None else (),
            warnings=warnings,
        )
        write_state(self.path, self._state)
        net.after_run(self.image.store.path, self.record)

    def _not_started(
        self, error: CommandNotStarted, cgroup: Cgroup | None
    ) -> CommandNotStarted:
        """Record a start whose command could not be executed; the error to raise.

        As docker: the container stays created, its state holding the exit
        code (127 or 126) and the error, and it can be started again.
        """
        if cgroup is not None:
            cgroup.remove()
        net.after_failed_start(self.image.store.path, self.record)
        self._state = None
        failed = ContainerState(exit_code=error.exit_code, error=str(error))
        write_state(self.path, failed)
        return CommandNotStarted(
            f"container {self.short_id} failed to start: {error}",
            command=error.command,
            reason=error.reason,
            exit_code=error.exit_code,
            container_id=self.id,
        )

    def run(
        self, *, stdin: bytes | None = None, timeout: float | None = None
    ) -> RunResult:
        """Run attached: start, wait for the exit, return code and output.

        ``stdin`` is written to the process's standard input (/dev/null when
        None). With ``tty`` all output is in ``stdout``, and ``stdin`` is
        typed into the terminal, which echoes it.

        Published ports are forwarded while it runs.

        Raises:
            ContainerConfigError: ``timeout`` is negative.
            CommandNotStarted: the command could not be executed (exit code
                127 or 126); the container stays created, as docker's.
            ContainerError: already started or removed, failed to start (a
                published host port taken, too), or timed out.
        """
        if timeout is not None and timeout < 0:
            raise ContainerConfigError(f"timeout must not be negative, not {timeout:g}")
        self._ensure_not_started()
        forwarder = self._bind_ports()
        try:
            return self._run_forwarding(forwarder, stdin, timeout)
        finally:
            forwarder.close()

    def _run_forwarding(
        self, forwarder: Forwarder, stdin: bytes | None, timeout: float | None
    ) -> RunResult:
        self._clear_stop_request()
        cgroup, warnings = self._cgroup(detach=False)
        started_at = now()
        spec, hook = self._start_spec(cgroup)
        log = LogWriter(self.path / LOG_FILE)
        running = False

        def starter(
            stdin_fd: int | None, stdout_fd: int | None, stderr_fd: int | None
        ) -> runtime.Supervised:
            nonlocal running
            sandbox = self._start_attached(spec, (stdin_fd, stdout_fd, stderr_fd), hook)
            self._serve_ports(forwarder, sandbox.pid)
            self._record_running(
                sandbox.pid, started_at, cgroup, warnings, forwarder.bound
            )
            running = True
            return sandbox

        try:
            result = runtime.collect(
                starter, stdin, log.feed, timeout, terminal=self._process.terminal
            )
        except CommandNotStarted as error:
            raise self._not_started(error, cgroup) from None
        except BaseException:
            # Recorded so that remove() finds the cgroup to delete, and no
            # other process takes the container for a running one.
            if running or cgroup is not None:
                self._record_end(started_at, 128 + signal.SIGKILL, cgroup, warnings)
            raise
        finally:
            log.close()
        self._record_end(started_at, result.exit_code, cgroup, warnings)
        logger.info("container %s exited with %d", self.short_id, result.exit_code)
        self._restart_in_background(result.exit_code, cgroup, warnings, forwarder)
        return attrs.evolve(result, warnings=warnings)

    def attach(
        self,
        *,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        detach_keys: bytes = b"",
    ) -> int:
        """Run with the given file descriptors and return the exit code.

        ``None`` gives the container /dev/null as stdin and the caller's own
        stdout and stderr, as ``docker run`` does in a terminal. With ``tty``
        the container's output goes to ``stdout`` as it comes and what is
        read from ``stdin`` is written to its terminal, as ``docker run -it``
        does (the caller puts its own terminal in raw mode).

        A container already running under a monitor (:meth:`start`, from
        any process) is attached to instead, as ``docker attach`` does: its
        output from now on goes to ``stdout`` and ``stderr`` (its terminal's
        to ``stdout``), and ``stdin`` is written to it if it was created
        with ``stdin_open`` (as Docker, not otherwise). Typing
        ``detach_keys`` (``b"\x10\x11"`` is Docker's Ctrl-P Ctrl-Q) leaves
        it running and returns -1; otherwise the exit code is returned once
        the run ends.

        Published ports are forwarded while a run started here lasts.

        Raises:
            CommandNotStarted: the command could not be executed (exit code
                127 or 126); the container stays created, as docker's.
            ContainerError: already started here or ended, run attached by
                another process (it has no monitor to attach to), or failed
                to start (a published host port taken, too).
        """
        if self._sandbox is None and self.state().status == "running":
            return self._attach_running(stdin, stdout, stderr, detach_keys)
        self._ensure_not_started()
        forwarder = self._bind_ports()
        try:
            return self._attach_forwarding(forwarder, stdin, stdout, stderr)
        finally:
            forwarder.close()

    def _attach_forwarding(
        self,
        forwarder: Forwarder,
        stdin: int | None,
        stdout: int | None,
        stderr: int | None,
    ) -> int:
        self._clear_stop_request()
        cgroup, warnings = self._cgroup(detach=False)
        started_at = now()
        if self._process.terminal:
            return self._attach_terminal(
                stdin, stdout, cgroup, warnings, started_at, forwarder
            )
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            spec, hook = self._start_spec(cgroup)
            self._sandbox = self._start_attached(spec, (stdin, out_w, err_w), hook)
        except BaseException as error:
            os.close(out_r)
            os.close(err_r)
            if isinstance(error, CommandNotStarted):
                raise self._not_started(error, cgroup) from None
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        self._serve_ports(forwarder, self._sandbox.pid)
        self._record_running(
            self._sandbox.pid, started_at, cgroup, warnings, forwarder.bound
        )
        log = LogWriter(self.path / LOG_FILE)
        try:
            relay_output(
                out_r,
                err_r,
                (1 if stdout is None else stdout, 2 if stderr is None else stderr),
                log,
            )
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): the container goes too, rather
            # than this process waiting for it to end by itself.
            self._sandbox.kill()
            raise
        finally:
            log.close()
            exit_code = self._sandbox.wait()
            self._record_end(started_at, exit_code, cgroup, warnings)
        self._restart_in_background(exit_code, cgroup, warnings, forwarder)
        return exit_code

    def _restart_in_background(
        self,
        exit_code: int,
        cgroup: Cgroup | None,
        warnings: tuple[str, ...],
        forwarder: Forwarder,
    ) -> None:
        """Hand an attached run that the policy restarts to a detached monitor.

        Docker's client returns the first run's exit code while the daemon
        goes on restarting the container: the monitor stands in for it, and
        takes over the published ports.
        """
        policy = self.record.restart
        if not policy.should_restart(exit_code, 0, self._stop_requested()):
            return
        forwarder.close()
        if cgroup is None:
            # Its network warnings are among the first run's already.
            cgroup, more = self._limits_cgroup(detach=True)
            warnings += more
        self._sandbox = None
        self._exit_code = None
        self._state = None
        try:
            self._launch(cgroup, warnings, detach=True, after_exit=exit_code)
        except ContainerError as error:
            logger.warning("container %s not restarted: %s", self.short_id, error)

    def _attach_terminal(
        self,
        stdin: int | None,
        stdout: int | None,
        cgroup: Cgroup | None,
        warnings: tuple[str, ...],
        started_at: str,
        forwarder: Forwarder,
    ) -> int:
        try:
            spec, hook = self._start_spec(cgroup)
            sandbox = self._start_attached(spec, (None, None, None), hook)
        except BaseException as error:
            if isinstance(error, CommandNotStarted):
                raise self._not_started(error, cgroup) from None
            if cgroup is not None:
                cgroup.remove()
            raise
        self._sandbox = sandbox
        master = sandbox.terminal
        assert master is not None
        self._terminals.add(master)
        self._serve_ports(forwarder, sandbox.pid)
        self._record_running(sandbox.pid, started_at, cgroup, warnings, forwarder.bound)
        log = LogWriter(self.path / LOG_FILE)
        from layercake._container_tty import relay_terminal

        try:
            relay_terminal(master, stdin, 1 if stdout is None else stdout, log)
        except BaseException:
            sandbox.kill()
            raise
        finally:
            self._terminals.discard(master)
            log.close()
            exit_code = sandbox.wait()
            self._record_end(started_at, exit_code, cgroup, warnings)
        self._restart_in_background(exit_code, cgroup, warnings, forwarder)
        return exit_code

    def _attach_running(
        self,
        stdin: int | None,
        stdout: int | None,
        stderr: int | None,
        detach_keys: bytes,
    ) -> int:
        from layercake._attach import attach as attach_to_monitor

        outputs = (1 if stdout is None else stdout, 2 if stderr is None else stderr)
        if stdin is not None and not self.record.stdin_open:
            stdin = None
        if attach_to_monitor(self.path, self.id, stdin, outputs, detach_keys):
            return -1
        return self._code_after_run()

    def _code_after_run(self) -> int:
        # The monitor hangs up as the run ends and records the exit just after.
        deadline = time.monotonic() + _STOP_TIMEOUT
        while time.monotonic() < deadline:
            self._state = None
            state = self.state()
            if state.status != "running" or state.restarting:
                return state.exit_code
            time.sleep(_POLL_INTERVAL / 5)
        return self.state().exit_code

    def resize(self, rows: int, columns: int) -> None:
        """Set the window size of the container's terminal, as ``docker resize``.

        The container's foreground processes get SIGWINCH. Terminals of
        :meth:`exec_attach` processes this object is running are resized
        too. A container with a terminal started by :meth:`start` (from any
        process) is resized through its monitor.

        Raises:
            ContainerError: the container has no terminal this process or
                its monitor holds.
            ContainerConfigError: rows or columns are not 0 to 65535.
        """
        if not (0 <= rows <= 0xFFFF and 0 <= columns <= 0xFFFF):
            raise ContainerConfigError(
                f"invalid terminal size {rows}x{columns}: rows and columns must "
                "be between 0 and 65535"
            )
        if not self._terminals:
            if self._sandbox is None and self.record.process.terminal:
                from layercake._attach import resize as resize_through_monitor

                resize_through_monitor(self.path, self.id, rows, columns)
                return
            raise ContainerError(
                f"container {self.short_id} has no terminal this process runs",
                container_id=self.id,
            )
        for master in tuple(self._terminals):
            with contextlib.suppress(OSError):
                runtime.set_terminal_size(master, rows, columns)

    def _start_attached(
        self,
        spec: SandboxSpec,
        fds: tuple[int | None, int | None, int | None],
        hook: Callable[[int], None] | None = None,
    ) -> Sandbox | runtime.OciProcess:
        executor = self.record.executor
        if executor == "builtin":
            # run() and attach() wait in this thread: no relay needed.
            return runtime.start(
                spec,
                stdin=fds[0],
                stdout=fds[1],
                stderr=fds[2],
                direct=True,
                configure_network=hook,
            )
        return runtime.start_oci(
            spec,
            executor,
            stdin=fds[0],
            stdout=fds[1],
            stderr=fds[2],
            configure_network=hook,
        )

    def _record_running(
        self,
        pid: int,
        started_at: str,
        cgroup: Cgroup | None,
        warnings: tuple[str, ...],
        ports: tuple[Published, ...] = (),
    ) -> None:
        # Other processes see the container in list_containers() and can
        # signal it; this process stands in for the monitor.
        me = os.getpid()
        write_state(
            self.path,
            ContainerState(
                status="running",
                pid=pid,
                pid_start=process_start_time(pid) or 0,
                monitor_pid=me,
                monitor_start=_own_start_time(me),
                started_at=started_at,
                cgroup_version=cgroup.version if cgroup is not None else 0,
                cgroup_paths=cgroup.paths if cgroup is not None else (),
                warnings=warnings,
                attached=True,
                ports=ports,
            ),
        )

    def start(self, *, detach: bool = False) -> None:
        """Start in the background under a monitor that records state and logs.

        Without ``detach`` the container dies with this Python process;
        with it, it keeps running after this process exits, and any process
        can find it (:meth:`load`) to wait for, stop or remove it. The
        monitor restarts it as its restart policy says, until it is stopped. With
        ``tty`` the monitor holds the terminal and logs its output as
        stdout; with ``stdin_open`` the process's stdin stays open (it
        waits for input instead of reading end-of-file).

        Raises:
            CommandNotStarted: the command could not be executed (exit code
                127 or 126); the container stays created with that exit code
                and the error in its state, as docker's.
            ContainerError: already started, removed or failed to start.
        """
        with self._lifecycle():
            self._ensure_not_started()
            self._clear_stop_request()
            cgroup, warnings = self._cgroup(detach)
            try:
                self._launch(cgroup, warnings, detach=detach)
            except ContainerError as error:
                if isinstance(error, CommandNotStarted):
                    failure: ContainerError = self._not_started(error, cgroup)
                else:
                    if cgroup is not None:
                        cgroup.remove()
                    failure = ContainerError(
                        self._failed_to_start(error), container_id=self.id
                    )
                if self.record.auto_remove:
                    self._remove(force=True)
                raise failure from None
            logger.info("started container %s", self.short_id)

    def _launch(
        self,
        cgroup: Cgroup | None,
        warnings: tuple[str, ...],
        *,
        detach: bool,
        after_exit: int | None = None,
    ) -> None:
        """Start the container under a monitor process, with its record's settings.

        With ``after_exit`` an attached first run ended with that code and
        the monitor takes over from it (see :func:`layercake._monitor.launch`).
        """
        from layercake._monitor import launch

        spec, hook = self._start_spec(cgroup)
        launch(
            spec,
            self.path,
            detach=detach,
            cgroup=cgroup,
            warnings=warnings,
            ports=self.record.ports,
            executor=self.record.executor,
            configure_network=hook,
            restart=self.record.restart,
            after_exit=after_exit,
            stdin_open=self.record.stdin_open,
            remove=self._remove_ended if self.record.auto_remove else None,
        )

    def wait(self, timeout: float | None = None) -> int:
        """Wait for a started container to exit and return its exit code.

        A container with a restart policy has exited once its monitor
        restarts it no more; the code is its last run's.

        Raises:
            ContainerError: not started, removed, or still running after
                ``timeout``.
        """
        self._ensure_exists()
        if self.exit_code is not None:
            return self._exit_code  # type: ignore[return-value]
        if self._sandbox is not None:
            self._exit_code = self._sandbox.wait(timeout)
            return self._exit_code
        state = self.state()
        if state.status == "created":
            raise ContainerError(
                f"container {self.short_id} is not started", container_id=self.id
            )
        if state.attached:
            return self._wait_attached(state, timeout)
        if not _wait_for_exit(state.monitor_pid, state.monitor_start, timeout):
            raise ContainerTimeout(
                f"container {self.short_id} still running after {timeout:g} seconds",
                timeout=timeout or 0.0,
            )
        state = self.state()
        self._exit_code = state.exit_code
        return state.exit_code

    def _wait_attached(self, state: ContainerState, timeout: float | None) -> int:
        # The process running it records the exit just after PID 1 ends.
        deadline = None if timeout is None else time.monotonic() + timeout
        left = timeout
        while state.status == "running":
            if not _wait_for_exit(state.pid, state.pid_start, left):
                break
            time.sleep(0.002)
            state = self.state()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
        if state.status == "running":
            raise ContainerTimeout(
                f"container {self.short_id} still running after {timeout:g} seconds",
                timeout=timeout or 0.0,
            )
        self._exit_code = state.exit_code
        return state.exit_code

    @overload
    def logs(
        self,
        *,
        stdout: bool = ...,
        stderr: bool = ...,
        follow: Literal[False] = ...,
        since: float | str | None = ...,
        tail: int | None = ...,
        timestamps: bool = ...,
    ) -> bytes: ...

    @overload
    def logs(
        self,
        *,
        stdout: bool = ...,
        stderr: bool = ...,
        follow: Literal[True],
        since: float | str | None = ...,
        tail: int | None = ...,
        timestamps: bool = ...,
    ) -> Iterator[bytes]: ...

    def logs(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        follow: bool = False,
        since: float | str | None = None,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> bytes | Iterator[bytes]:
        """Return what a started container wrote, in the order it wrote it.

        ``since`` (Unix seconds, or a string in any form ``docker logs
        --since`` takes: ``10m``, ``1h30m``, ``1733341000``, an RFC 3339
        time) keeps lines written at or after it; ``tail`` keeps the last
        lines; ``timestamps`` prefixes each line with its time, as ``docker
        logs -t``. With ``follow`` an
        iterator yields each line as it is written until the container ends.

        Raises:
            ContainerConfigError: ``since`` is not a time.
            ContainerError: the container was removed.
        """
        self._ensure_exists()
        streams = {s for s, w in (("stdout", stdout), ("stderr", stderr)) if w}
        floor = since_ns(since)
        lines, offset = read_lines(self.path / LOG_FILE, streams, floor, timestamps)
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        if not follow:
            return b"".join(lines)
        return follow_lines(
            self.path / LOG_FILE,
            lines,
            offset,
            running=lambda: self.state().status == "running",
            streams=streams,
            floor=floor,
            timestamps=timestamps,
        )

    def kill(self, sig: int | str = signal.SIGKILL) -> None:
        """Send a signal to the container's main process (default SIGKILL).

        ``sig`` is a number or a name as ``docker kill --signal`` takes it
        (``SIGUSR1``, ``USR1``, ``10``).

        Works from any process on a started container. SIGKILL and the
        image's stop signal also end the restart policy's restarts, as
        ``docker kill`` does; other signals leave the policy in force.

        Raises:
            ContainerConfigError: ``sig`` is not a signal of this system.
            ContainerError: the container is not running (or is waiting to
                restart and ``sig`` does not stop it), or was removed.
        """
        sig = signal_to_send(sig)
        with self._lifecycle():
            self._ensure_exists()
            if sig in (signal.SIGKILL, self._stop_signal()):
                # Recorded before the signal, so the monitor never restarts what
                # this signal ends.
                self._request_stop()
            if self._sandbox is not None:
                if self._exit_code is not None:
                    raise ContainerError(
                        f"container {self.short_id} is not running",
                        container_id=self.id,
                    )
                self._sandbox.send_signal(sig)
                return
            state = self.state()
            if (
                state.status == "running"
                and state.restarting
                and self._stop_requested()
            ):
                return  # the monitor ends it instead of restarting it
            state = self._live_state(state)
            _signal(state.pid, sig)
            if state.paused:
                # A frozen process acts on a signal only once thawed, as
                # ``docker kill`` and ``docker stop`` of a paused one do.
                from layercake._container_freezer import thaw

                thaw(self, state)

    def _stop_signal(self) -> int:
        return stop_signal_number(self.image.config.config.stop_signal or "SIGTERM")

    def _request_stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / STOP_FILE).touch()

    def _stop_requested(self) -> bool:
        return (self.path / STOP_FILE).exists()

    def _clear_stop_request(self) -> None:
        (self.path / STOP_FILE).unlink(missing_ok=True)

    def _kill_if_running(self, sig: int = signal.SIGKILL) -> None:
        # It may end on its own between a check and the signal.
        try:
            self.kill(sig)
        except ContainerError:
            if not self.path.is_dir():
                raise

    def stop(self, timeout: float = _STOP_TIMEOUT) -> int:
        """Stop as ``docker stop`` does: StopSignal, then SIGKILL after ``timeout``.

        Returns the exit code, or -1 for a container that never started.
        """
        with self._lifecycle():
            if self._sandbox is None and self.state().status == "created":
                return -1
            if self.exit_code is not None:
                return self._exit_code  # type: ignore[return-value]
            self._kill_if_running(self._stop_signal())
            try:
                return self.wait(timeout)
            except ContainerTimeout:
                self._kill_if_running()
                return self.wait()

    def remove(self, *, force: bool = False) -> None:
        """Delete the container, its writable layer, anonymous volumes and logs.

        Raises:
            ContainerError: it still runs and ``force`` is false.
        """
        try:
            with lifecycle_locked(self.path):
                self._remove(force)
        except FileNotFoundError:
            if self.path.exists():
                raise

    def _remove_ended(self) -> None:
        # Called in a process forked from the monitor: what this object
        # remembered of the run is stale.
        self._sandbox = None
        self._exit_code = None
        self._state = None
        self.remove(force=True)

    def _remove(self, force: bool) -> None:
        if self.exit_code is None and self._running():
            if not force:
                raise ContainerError(
                    f"container {self.short_id} is running; stop it or use force",
                    container_id=self.id,
                )
            self._kill_if_running()
            self.wait()
        state = self.state()
        # Also one its state does not name: its starter was killed before
        # recording it, or the state file is lost. Whatever still runs in
        # them is the container's, and goes with it.
        cgroups = [runtime.find_cgroup(self.id)]
        if state.cgroup_paths:
            cgroups.append(open_cgroup(state.cgroup_version, state.cgroup_paths))
        for cgroup in cgroups:
            if cgroup is not None:
                cgroup.kill_all()
                cgroup.remove()
        self.image.store._directory.remove_tree(self.path)
        net.forget(self.image.store.path, self.path.parent, self.record)
        logger.info("removed container %s", self.short_id)

    def host_port(self, port: int | str) -> int:
        """The host port that forwards to the container's ``port``.

        ``port`` is a number (TCP) or ``"53/udp"``; the host address is
        127.0.0.1 unless the port was published on another.

        Raises:
            ContainerError: the port is not published or the container does
                not run.
        """
        number, _, protocol = str(port).partition("/")
        protocol = protocol or "tcp"
        for container_port, kind, _address, host_port in self.state().ports:
            if container_port == int(number) and kind == protocol:
                return host_port
        raise ContainerError(
            f"port {number}/{protocol} of container {self.short_id} is not "
            "published or the container is not running",
            container_id=self.id,
        )

    def stats(self) -> dict[str, dict[str, int | None]]:
        """Resource usage from the container's cgroup, with Docker's API names.

        ``cpu_stats.total_usage`` is CPU time in nanoseconds; memory values
        are bytes (``limit`` None when unlimited); ``pids_stats.current`` the
        number of processes. A container has a cgroup when it was started
        detached or given limits.

        Raises:
            ContainerError: the container has no cgroup.
        """
        state = self.state()
        if not state.cgroup_paths:
            raise ContainerError(
                f"container {self.short_id} has no cgroup to measure: start it "
                "detached or give it a limit (memory, cpus, cpu_shares, pids_limit)",
                container_id=self.id,
            )
        return open_cgroup(state.cgroup_version, state.cgroup_paths).stats()

    def _running(self) -> bool:
        if self._sandbox is not None:
            return self._exit_code is None
        return self.state().status == "running"

    def _live_state(self, state: ContainerState) -> ContainerState:
        """``state``, if its process is running now (not waiting to restart).

        Raises:
            ContainerError: the container is restarting or not running.
        """
        if state.status == "running" and state.restarting:
            raise ContainerError(
                f"container {self.short_id} is restarting, wait until the "
                "container is running",
                container_id=self.id,
            )
        if state.status != "running" or not is_alive(state.pid, state.pid_start):
            raise ContainerError(
                f"container {self.short_id} is not running", container_id=self.id
            )
        return state

    def _running_pid(self) -> int:
        state = self._live_state(self.state())
        if state.paused:
            raise ContainerError(
                f"container {self.short_id} is paused, unpause the container "
                "before exec",
                container_id=self.id,
            )
        return state.pid

    def pause(self) -> None:
        """Freeze every process of the container, as ``docker pause`` does.

        The container needs a cgroup with a freezer: it was started detached
        or with a limit, on cgroup v2 or with the v1 freezer mounted.
        :attr:`status` is ``paused`` until :meth:`unpause`.

        Raises:
            ContainerError: it is not running, is already paused, has no
                usable cgroup freezer, or the kernel did not freeze it.
        """
        from layercake._container_freezer import pause

        pause(self)
        logger.info("paused container %s", self.short_id)

    def unpause(self) -> None:
        """Thaw a paused container, as ``docker unpause`` does.

        Raises:
            ContainerError: it is not running or not paused, or the kernel
                did not thaw it.
        """
        from layercake._container_freezer import unpause

        unpause(self)
        logger.info("unpaused container %s", self.short_id)

    def restart(self, timeout: float = _STOP_TIMEOUT, *, detach: bool = False) -> None:
        """Stop (as :meth:`stop` does, after ``timeout``) and start again.

        The writable layer, volumes and log are kept; the new run appends to
        the log. A container that is not running is just started.
        ``detach`` is as for :meth:`start`.

        An exited container that fails to start stays exited, with the
        last run's exit code and times and the failure in ``State.Error``.

        Raises:
            ContainerError: it failed to start again.
        """
        with self._lifecycle():
            if self.state().status == "running":
                self.stop(timeout)
            old = self._forget_run()
            try:
                self.start(detach=detach)
            except ContainerError as error:
                self._keep_ended(old, error)
                raise

    def _forget_run(self) -> ContainerState:
        """Make an ended container startable again; return its last state."""
        old = self.state()
        if old.cgroup_paths:
            open_cgroup(old.cgroup_version, old.cgroup_paths).remove()
        self._sandbox = None
        self._exit_code = None
        self._state = None
        write_state(self.path, ContainerState())
        return old

    def _keep_ended(self, old: ContainerState, error: ContainerError) -> None:
        """After a failed start again: the last run's state, and why."""
        if old.status == "exited" and self.path.is_dir():
            # As docker: the container stays exited with its last run's
            # state, and the state says why it did not start.
            kept = attrs.evolve(
                old, cgroup_version=0, cgroup_paths=(), error=str(error)
            )
            write_state(self.path, kept)
            self._state = None

    def rename(self, new_name: str) -> None:
        """Give the container another name, unique in the store, as ``docker rename``.

        Raises:
            ContainerConfigError: the name is invalid, taken, or already this
                container's.
        """
        containers = self.path.parent
        with names_locked(containers):
            if new_name.removeprefix("/") == self.name:
                raise ContainerConfigError(
                    "renaming a container with the same name as its current name"
                )
            name = claim_name(containers, new_name, self.id)
            self.record = attrs.evolve(read_record(self.path), name=name)
            write_record(self.path, self.record)
            net.rename(self.image.store.path, containers, self.record, name)
        logger.info(
            "renamed container %s from %s to %s", self.short_id, self.name, name
        )
        self.name = name

    def exec(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | Sequence[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
        tty: bool = False,
        tty_size: tuple[int, int] | None = None,
    ) -> RunResult:
        """Run ``args`` in the running container, as ``docker exec`` does.

        The process joins the container's mount, PID, UTS, IPC and network
        namespaces; it gets the container's environment with ``env`` applied
        over it, the container's user unless ``user`` is given (HOME follows
        the user then, unless set), and the container's working directory
        unless ``workdir`` is given. ``tty`` gives it a terminal of its own
        (the container's next ``/dev/pts``), as ``docker exec -t``: output
        and ``stdin`` then work as in :meth:`run` with ``tty``.

        Raises:
            ContainerConfigError: no command, an unknown user or a bad size.
            CommandNotStarted: the command could not be executed (exit code
                127 or 126), as ``docker exec`` fails.
            ContainerError: the container is not running.
            ContainerTimeout: the process ran longer than ``timeout`` seconds.
        """
        from layercake._container_exec import exec_process

        pid, process, cgroup_procs = exec_process(
            self, args, env, user, workdir, tty, tty_size
        )
        return runtime.run_in(
            pid,
            process,
            stdin=stdin,
            timeout=timeout,
            cgroup_procs=cgroup_procs,
        )

    def exec_attach(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | Sequence[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = False,
        tty_size: tuple[int, int] | None = None,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
    ) -> int:
        """Run ``args`` in the running container with the given descriptors.

        What :meth:`attach` is to :meth:`run`, this is to :meth:`exec`:
        output goes to ``stdout`` and ``stderr`` (the caller's own when
        None) as it comes, ``stdin`` is read as the process reads it
        (/dev/null when None); returns the exit code. With ``tty`` the
        process has its own terminal, as ``docker exec -it``: its output
        goes to ``stdout``, ``stdin`` is written to the terminal, and
        :meth:`resize` changes its size while it runs.

        Raises:
            ContainerConfigError: no command, an unknown user or a bad size.
            CommandNotStarted: the command could not be executed (exit code
                127 or 126), as ``docker exec`` fails.
            ContainerError: the container is not running.
        """
        from layercake._container_exec import exec_attached

        return exec_attached(
            self,
            args,
            env=env,
            user=user,
            workdir=workdir,
            tty=tty,
            tty_size=tty_size,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )

    def _live_pid(self) -> int | None:
        state = self.state()
        if state.status == "running" and is_alive(state.pid, state.pid_start):
            return state.pid
        return None

    def diff(self) -> list[Change]:
        """What the container changed in its image, as ``docker diff`` lists it.

        ``("A", path)`` added, ``("C", path)`` changed, ``("D", path)``
        deleted (an overlay whiteout), in path order. Mount targets the
        runtime had to create, and volume contents, are not changes.

        Raises:
            ContainerError: a running container changed an entry while it
                was listed (the message names it).
        """
        from layercake._container_changes import changes

        return changes(self)

    def wait_for_log(self, pattern: str, *, timeout: float = 30.0) -> re.Match[str]:
        """Wait until the output matches the regular expression; return the match.

        Raises:
            ContainerError: the container exited first (with its code and
                last output in the message).
            ContainerTimeout: no match within ``timeout`` seconds.
        """
        from layercake import _waits as waits

        return waits.wait_for_log(self, pattern, timeout=timeout)

    def wait_for_port(self, port: int, *, timeout: float = 30.0) -> int:
        """Wait until the container listens on a published TCP port; return the
        host port.

        Raises:
            ContainerConfigError: ``timeout`` is negative.
            ContainerError: the port is not published, or the container exited.
            ContainerTimeout: nothing listened within ``timeout``.
        """
        from layercake import _waits as waits

        return waits.wait_for_port(self, port, timeout=timeout)

    def wait_for_http(
        self, port: int, *, path: str = "/", status: int = 200, timeout: float = 30.0
    ) -> int:
        """Wait until ``GET path`` on a published port answers ``status``.

        Returns the host port on 127.0.0.1.

        Raises:
            ContainerError: the port is not published, or the container exited.
            ContainerTimeout: no such answer within ``timeout`` seconds.
        """
        from layercake import _waits as waits

        return waits.wait_for_http(
            self, port, path=path, status=status, timeout=timeout
        )

    def wait_for_command(self, args: Sequence[str], *, timeout: float = 30.0) -> None:
        """Wait until ``args``, run in the container, exits 0.

        Raises:
            ContainerError: the container exited first.
            ContainerTimeout: the command did not succeed within ``timeout``.
        """
        from layercake import _waits as waits

        waits.wait_for_command(self, args, timeout=timeout)

    def wait_for_healthcheck(self, *, timeout: float = 60.0) -> None:
        """Wait until the image's HEALTHCHECK command passes.

        Raises:
            ContainerConfigError: the image has no HEALTHCHECK.
            ContainerError: the container exited first.
            ContainerTimeout: the check did not pass within ``timeout``.
        """
        from layercake import _waits as waits

        waits.wait_for_healthcheck(self, timeout=timeout)

    async def await_exit(
        self, *, timeout: float | None = None, poll_interval: float = 0.01
    ) -> int:
        """:meth:`wait` for asyncio code: polls without blocking the event loop.

        Raises:
            ContainerError: the container was never started.
            ContainerTimeout: it still runs after ``timeout`` seconds.
        """
        import asyncio

        from layercake import _waits as waits

        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := waits.exit_status(self)) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise ContainerTimeout(
                    f"container {self.short_id} still runs after {timeout:g}s",
                    timeout=timeout or 0.0,
                    container_id=self.id,
                )
            await asyncio.sleep(poll_interval)
        return code

    def snapshot(self, *, tag: str | None = None, pause: bool = True) -> Image:
        """Capture the container's files as an image to start fresh copies from.

        Seed a database once, snapshot it, and give each test a new
        container of the snapshot: each starts copy-on-write from the same
        layers. The snapshot is a :meth:`commit` keeping the container's
        run configuration; it costs the time to pack what changed. A
        running container is paused meanwhile unless ``pause`` is false, as
        for :meth:`commit`.

        Raises:
            ContainerError: as for :meth:`commit`.
            StoreError: the layer could not be written.
        """
        return self.commit(tag=tag, message="snapshot", pause=pause)

    def commit(
        self,
        *,
        tag: str | None = None,
        message: str | None = None,
        author: str | None = None,
        command: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        env: Mapping[str, str] | Sequence[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        labels: Mapping[str, str] | None = None,
        pause: bool = True,
    ) -> Image:
        """Make an image of the container's image plus its changes.

        The changes become one layer (none if there are none); the config is
        the image's with the container's overrides (command, entrypoint,
        env, workdir, user) and then the keyword arguments applied, as
        ``docker commit --change`` does. ``tag`` tags the new image.

        A running container is paused (frozen) while its changes are read
        and copied, as ``docker commit`` does, and thawed afterwards; one
        the user paused stays paused. ``pause=False`` copies it as it
        runs: files it changes meanwhile may be caught half-written. Either
        way the copy never follows the container's links out of it.

        Raises:
            ContainerError: it runs and cannot be paused (no cgroup with a
                freezer) while ``pause`` is true, or a changed file could
                not be copied (the message names it).
            StoreError: the layer could not be written.
            InvalidReference: ``tag`` is not a valid reference.
        """
        from layercake._container_changes import commit

        return commit(
            self,
            tag=tag,
            message=message,
            author=author,
            command=command,
            entrypoint=entrypoint,
            env=env,
            workdir=workdir,
            user=user,
            labels=labels,
            pause=pause,
        )

    @overload
    def copy_from(self, path: str) -> bytes: ...

    @overload
    def copy_from(self, path: str, host_dir: str | os.PathLike[str]) -> None: ...

    def copy_from(
        self, path: str, host_dir: str | os.PathLike[str] | None = None
    ) -> bytes | None:
        """Copy ``path`` out of the container, running or not.

        Without ``host_dir``, ``path`` must be a regular file and its bytes
        are returned. With it, the file, link or directory tree is written
        into ``host_dir`` (created when missing) under its own name, links
        as links; nothing is written outside ``host_dir``.

        Raises:
            ContainerError: the path is missing, or not a regular file when
                bytes are asked for.
        """
        from layercake._container_files import copy_from

        target = Path(host_dir) if host_dir is not None else None
        return copy_from(self._spec(), self._live_pid(), path, target)

    def copy_to(self, path: str, source: bytes | str | os.PathLike[str]) -> None:
        """Put ``source`` at ``path`` in the container, running or not.

        ``source`` is the content of a new file (bytes, mode 0644, written
        as ``path``) or a host file, link or directory tree, copied as it is
        (links as links) and owned by root, by ``docker cp``'s rules: into
        ``path`` under its own name when ``path`` is a directory (a tree
        named ``DIR/.`` gives its entries alone), else as ``path`` itself.
        Missing parent directories are created; symbolic links on the way
        resolve inside the container.

        Raises:
            ContainerError: ``source`` is missing or the copy failed: a
                ``path`` ending with ``/`` that is no directory, a tree over
                a file, or a host path ending with ``/`` that is no tree.
        """
        from layercake._container_files import copy_to

        if isinstance(source, bytes):
            copy_to(self._spec(), self._live_pid(), path, source)
            return
        written = os.fspath(source)
        contents = written == "." or written.endswith("/.")
        if written.endswith("/") and not os.path.isdir(written):
            raise ContainerError(
                f"cannot copy {written} into the container: not a directory"
            )
        spec, pid = self._spec(), self._live_pid()
        copy_to(spec, pid, path, Path(written), contents=contents)

    def write_archive(self, path: str, out: BinaryIO) -> None:
        """Write a tar archive of ``path`` in the container to ``out``.

        As ``docker cp CONTAINER:PATH -``: the archive holds ``path`` under
        its own name (its entries alone when ``path`` ends with ``/.``),
        links as links, owners and modes as they are.

        Raises:
            ContainerError: the path is missing or could not be read.
        """
        from layercake._container_files import write_archive

        write_archive(self._spec(), self._live_pid(), path, out)

    def extract_archive(self, path: str, archive: BinaryIO) -> None:
        """Extract the tar archive read from ``archive`` into ``path``.

        As ``docker cp - CONTAINER:PATH``: ``path`` must be a directory in
        the container; entries keep the archive's owners and modes, and
        names and links resolve inside the container's root.

        Raises:
            ContainerError: ``path`` is not a directory, or the archive
                could not be extracted.
        """
        from layercake._container_files import extract_archive

        extract_archive(self._spec(), self._live_pid(), path, archive)

    def bundle(self, path: str | os.PathLike[str]) -> Path:
        """Write the container as an OCI runtime bundle in ``path``; return it.

        ``path/config.json`` follows the OCI runtime specification (process,
        user, cwd, env, hostname, namespaces, capabilities, the mounts,
        masked and read-only paths this runtime uses); ``path/rootfs`` is
        the container's overlay, **mounted**: writes through it land in the
        container's writable layer, and the caller must unmount it
        (``umount path/rootfs``) before removing the container. ``hosts``,
        ``hostname`` and ``resolv.conf`` beside it are bound over ``/etc``.
        ``runc run -b path <id>`` runs it.

        Raises:
            ContainerConfigError: the container needs the built-in runtime
                (``init``) or this process is not root.
            ContainerError: the overlay could not be mounted.
        """
        return runtime.write_bundle(self._spec(), path)

    def export(self, path: str | os.PathLike[str]) -> None:
        """Write the merged file system to ``path`` as a tar archive.

        Raises:
            ContainerError: the archive could not be written.
        """
        from layercake._container_files import export

        export(self._spec(), self._live_pid(), Path(path))

    def inspect(self) -> dict[str, Any]:
        """Describe the container with ``docker inspect``'s field names."""
        from layercake._container_inspect import inspect_document

        return inspect_document(self)


_OWN_START: dict[int, int] = {}


def _own_start_time(pid: int) -> int:
    """This process's kernel start time, read once per process (forks differ)."""
    if pid not in _OWN_START:
        _OWN_START[pid] = process_start_time(pid) or 0
    return _OWN_START[pid]


def _wait_for_exit(pid: int, start: int, timeout: float | None) -> bool:
    """Wait until the process ``pid`` (started at ``start``) is gone."""
    if not is_alive(pid, start):
        return True
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if not is_alive(pid, start):
            return True
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        wait_ms = None if timeout is None else max(0.0, timeout) * 1000
        return bool(poller.poll(wait_ms))
    finally:
        os.close(pidfd)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
