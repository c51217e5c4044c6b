"""Container verbs: run, create, start, stop, kill, rm, ps, logs, exec, cp,
commit, diff, export, port."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from layercake._signals import signal_number
from layercake._sizes import parse_size
from layercake.cli._format import age, table
from layercake.errors import ContainerError, LayercakeError

if TYPE_CHECKING:
    from layercake import Container, Store
    from layercake._ports import HostPort, OneHostPort

__all__ = ["register"]


def _bytes(text: str) -> int:
    size = parse_size(text)
    if size is None:
        raise LayercakeError(
            f"invalid size {text!r}: expected a number with b, k, m or g"
        )
    return size


def _volume(text: str) -> tuple[str, str] | tuple[str, str, str]:
    parts = text.split(":")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    if len(parts) == 3 and all(parts[:2]):
        return parts[0], parts[1], parts[2]
    raise LayercakeError(f"invalid volume {text!r}: expected SOURCE:TARGET[:ro|rw]")


def _ports(items: list[str]) -> dict[int | str, HostPort]:
    # docker run -p [IP:]HOST:CONTAINER[/udp]; the address is 127.0.0.1
    # unless one is named (docker's is 0.0.0.0: every interface).
    import ipaddress

    # One container port may be published on several host ports.
    ports: dict[int | str, list[OneHostPort]] = {}
    for item in items:
        published, _, container = item.rpartition(":")
        address, _, host = published.rpartition(":")
        number, _, protocol = container.partition("/")
        if (
            not number.isdigit()
            or protocol not in ("", "tcp", "udp")
            or not (host.isdigit() or host == "")
        ):
            raise LayercakeError(
                f"invalid port {item!r}: expected [IP:]HOST:CONTAINER[/tcp|/udp]"
            )
        if address:
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                raise LayercakeError(
                    f"invalid port {item!r}: {address!r} is not an IPv4 address"
                ) from None
        ports.setdefault(container, []).append(
            (address or "127.0.0.1", int(host) if host else 0)
        )
    return {container: hosts for container, hosts in ports.items()}


def _env(args: argparse.Namespace) -> list[str]:
    env: list[str] = []
    for path in args.env_file:
        for line in Path(path).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                env.append(line)
    return env + list(args.env)


def _create(args: argparse.Namespace) -> Container:
    import layercake
    from layercake.cli._terminal import window_size

    store = layercake.Store(args.store)
    if args.network == "host" and args.publish:
        sys.stderr.write(
            "WARNING: Published ports are discarded when using host network mode\n"
        )
    return layercake.Container(
        store.image(args.image),
        args.command or None,
        entrypoint=args.entrypoint,
        env=_env(args),
        workdir=args.workdir,
        user=args.user,
        hostname=args.hostname,
        network=args.network,
        name=args.name,
        init=args.init,
        read_only=args.read_only,
        tmpfs=args.tmpfs,
        volumes=[_volume(volume) for volume in args.volume],
        memory=_bytes(args.memory) if args.memory else 0,
        cpus=args.cpus,
        cpu_shares=args.cpu_shares,
        pids_limit=args.pids_limit,
        privileged=args.privileged,
        cap_add=args.cap_add,
        cap_drop=args.cap_drop,
        security_opt=args.security_opt,
        ports=_ports(args.publish),
        executor=args.runtime,
        network_aliases=args.network_alias,
        restart=args.restart,
        tty=args.tty,
        stdin_open=args.interactive,
        tty_size=window_size() if args.tty else None,
        auto_remove=args.rm,
        extra_hosts=args.add_host,
        dns=args.dns,
        dns_search=args.dns_search,
        dns_options=args.dns_option,
    )


def run(args: argparse.Namespace) -> int:
    """Create and start a container; attached, return its exit code.

    Attached with a restart policy, the first run's exit code is returned
    and the container goes on restarting in the background, as with docker.
    """
    from layercake.cli._terminal import check_input, raw_terminal

    _check_rm(args)
    if not args.detach:
        check_input(args.interactive, args.tty)
    container = _create(args)
    if args.detach:
        container.start(detach=True)
        _print_warnings(container)
        sys.stdout.write(container.id + "\n")
        return 0
    try:
        stdin = sys.stdin.fileno() if args.interactive else None
        raw = args.tty and stdin is not None
        with _signals_forwarded(container), raw_terminal(raw, container.resize):
            return container.attach(stdin=stdin)
    finally:
        # Attached, the warnings are read once the run ended: the container
        # had the terminal until then.
        # OSError: the terminal hung up, and the container still goes.
        with suppress(LayercakeError, OSError):
            _print_warnings(container)
        if args.rm:
            container.remove(force=True)


def _check_rm(args: argparse.Namespace) -> None:
    """Refuse ``--rm`` with a restart policy, as docker does."""
    from layercake._restart_policy import RestartPolicy, conflicts_with_rm

    conflict = conflicts_with_rm(RestartPolicy.parse(args.restart))
    if args.rm and conflict is not None:
        raise conflict


def _print_warnings(container: Container) -> None:
    """Write each warning of the container's runs to stderr, as docker does."""
    for text in dict.fromkeys(container.state().warnings):
        sys.stderr.write(f"WARNING: {text}\n")


@contextmanager
def _signals_forwarded(container: Container) -> Iterator[None]:
    """Pass SIGINT, SIGTERM and SIGHUP on to the container, as docker run does.

    The container decides what they mean; a second SIGINT or SIGTERM kills
    it, so a container that ignores them cannot hold the terminal forever.
    A SIGHUP because the caller's terminal hung up (its window closed) ends
    the container after a short grace: nothing can reach it any more.
    """
    from layercake.cli._terminal import terminal_hung_up

    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        repeated = received.count(signum) > 1 and signum != signal.SIGHUP
        with suppress(LayercakeError):
            container.kill(signal.SIGKILL if repeated else signum)
        if signum == signal.SIGHUP and terminal_hung_up():
            threading.Timer(_HANGUP_GRACE, kill_if_running, (container,)).start()

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in watched}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# Seconds a container whose terminal hung up has to end on its SIGHUP before
# it is killed (a shell as PID 1 ignores SIGHUP).
_HANGUP_GRACE = 2.0


def kill_if_running(container: Container) -> None:
    """SIGKILL the container unless it has already ended."""
    with suppress(LayercakeError):
        container.kill(signal.SIGKILL)


def create(args: argparse.Namespace) -> int:
    """Create a container without starting it; print its id and any warnings."""
    _check_rm(args)
    container = _create(args)
    _print_warnings(container)
    sys.stdout.write(container.id + "\n")
    return 0


def _load(store: Store, key: str) -> Container:
    return store.container(key)


def _for_each(args: argparse.Namespace, action: Callable[[Container], object]) -> int:
    """Apply ``action`` to each named container, printing each name as docker
    does; a failure is reported and the next name still handled, and then
    the exit code is 1, as docker's."""
    import layercake
    from layercake.cli._each import for_each

    store = layercake.Store(args.store)
    return for_each(
        args.containers, lambda key: action(_load(store, key)), debug=args.debug
    )


def _start(container: Container) -> None:
    # A stopped container starts again, with the same writable layer, as
    # docker start does. Under the lock, so that no stop or start from
    # another process comes between the look at its status and the start.
    with container._lifecycle():
        state = container.state()
        if state.status == "running" and not state.paused:
            return  # docker start of a running container does nothing
        if container.status == "exited":
            container.restart(detach=True)
        else:
            container.start(detach=True)
    _print_warnings(container)


def start(args: argparse.Namespace) -> int:
    """Start created or stopped containers in the background; with
    ``--attach``, one container in the foreground, returning its exit code."""
    if not args.attach:
        return _for_each(args, _start)
    if len(args.containers) > 1:
        raise LayercakeError("you cannot start and attach multiple containers at once")
    try:
        return _start_attached(args)
    except LayercakeError as error:
        if args.debug:
            raise
        # As start without --attach, and docker's: a failed start exits 1.
        sys.stdout.flush()
        sys.stderr.write(f"layercake: error: {error}\n")
        return 1


def _start_attached(args: argparse.Namespace) -> int:
    """Run one container here with the caller's output, as ``docker start -a``.

    A running container is attached to; a created or exited one runs in
    this process, as an attached ``run`` does, so no output is missed.
    """
    import layercake
    from layercake.cli._terminal import check_input, raw_terminal

    container = _load(layercake.Store(args.store), args.containers[0])
    # As docker: input reaches only a container created with -i.
    wanted = args.interactive and container.record.stdin_open
    stdin = sys.stdin.fileno() if wanted else None
    terminal = container.record.process.terminal
    check_input(args.interactive, terminal)
    with container._lifecycle():
        status = container.status
        old = container._forget_run() if status == "exited" else None
    try:
        with (
            _signals_forwarded(container),
            raw_terminal(terminal and stdin is not None, container.resize),
        ):
            return container.attach(stdin=stdin)
    except ContainerError as error:
        if old is not None:
            container._keep_ended(old, error)
        raise
    finally:
        with suppress(LayercakeError, OSError):
            _print_warnings(container)
        # A run of this process is this process's to remove; a monitor
        # removes what it ran.
        if container.record.auto_remove and status != "running":
            with suppress(LayercakeError):
                container.remove(force=True)


def stop(args: argparse.Namespace) -> int:
    """Stop running containers: StopSignal, then SIGKILL after -t seconds."""
    return _for_each(args, lambda container: container.stop(timeout=args.time))


def kill(args: argparse.Namespace) -> int:
    """Send a signal (default SIGKILL) to running containers."""
    number = signal_number(args.signal)
    if number is None:
        raise LayercakeError(f"kill: invalid signal {args.signal!r}")
    return _for_each(args, lambda container: container.kill(number))


def pause(args: argparse.Namespace) -> int:
    """Freeze every process of running containers."""
    return _for_each(args, lambda container: container.pause())


def unpause(args: argparse.Namespace) -> int:
    """Thaw paused containers."""
    return _for_each(args, lambda container: container.unpause())


def restart(args: argparse.Namespace) -> int:
    """Stop (if running) and start containers again, in the background."""
    return _for_each(
        args, lambda container: container.restart(timeout=args.time, detach=True)
    )


def rename(args: argparse.Namespace) -> int:
    """Give a container a new name."""
    import layercake

    _load(layercake.Store(args.store), args.container).rename(args.name)
    return 0


def remove(args: argparse.Namespace) -> int:
    """Remove containers (running ones only with -f)."""
    return _for_each(args, lambda container: container.remove(force=args.force))


def _status(container: Container) -> str:
    state = container.state()
    if state.restarting and state.status == "running":
        return f"Restarting ({state.exit_code}) {age(state.finished_at)}"
    if state.status == "running":
        up = f"Up {age(state.started_at).removesuffix(' ago')}"
        return f"{up} (Paused)" if state.paused else up
    if state.status == "exited":
        return f"Exited ({state.exit_code}) {age(state.finished_at)}"
    if state.status == "dead":
        return "Dead"
    return "Created"


def ps(args: argparse.Namespace) -> int:
    """List containers: running ones, or all with -a."""
    import layercake

    containers = layercake.Store(args.store).containers(all=args.all)
    if args.quiet:
        for container in containers:
            sys.stdout.write(container.short_id + "\n")
        return 0
    if args.format == "json":
        for container in containers:
            sys.stdout.write(json.dumps(container.inspect()) + "\n")
        return 0
    rows = []
    for container in containers:
        record = container.record
        command = shlex.join(
            (record.entrypoint or ()) + (record.command or ())
        ) or shlex.join(container.image.config.config.cmd or ())
        state = container.state()
        ports = ", ".join(
            f"{address}:{host}->{inner}/{protocol}"
            for inner, protocol, address, host in (
                state.ports if state.status == "running" else ()
            )
        )
        rows.append(
            (
                container.short_id,
                record.image_reference,
                json.dumps(command[:20]),
                age(record.created),
                _status(container),
                ports,
                container.name,
            )
        )
    table(
        ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"),
        rows,
    )
    return 0


def _tail(text: str) -> int | None:
    # docker logs --tail: "all" or a negative number shows every line.
    try:
        count = None if text == "all" else int(text)
    except ValueError:
        raise LayercakeError(
            f"invalid value {text!r} for --tail: expected a number or all"
        ) from None
    return None if count is None or count < 0 else count


def logs(args: argparse.Namespace) -> int:
    """Print what a container wrote, its stderr on stderr; -f follows until
    it ends."""
    import layercake
    from layercake._log_times import parse_log_time
    from layercake.cli._log_output import print_logs

    tail = _tail(args.tail)
    since = None if args.since is None else parse_log_time(args.since)
    container = _load(layercake.Store(args.store), args.container)
    print_logs(
        container,
        tail=tail,
        since_ns=since,
        timestamps=args.timestamps,
        follow=args.follow,
    )
    return 0


def exec_(args: argparse.Namespace) -> int:
    """Run a command in a running container; return its exit code."""
    import layercake
    from layercake.cli._terminal import check_input, raw_terminal, window_size

    check_input(args.interactive, args.tty)
    container = _load(layercake.Store(args.store), args.container)
    stdin = 0 if args.interactive else None
    sys.stdout.flush()
    with raw_terminal(args.tty and stdin is not None, container.resize):
        return container.exec_attach(
            args.command,
            env=args.env or None,
            user=args.user,
            workdir=args.workdir,
            tty=args.tty,
            tty_size=window_size() if args.tty else None,
            stdin=stdin,
        )


def attach(args: argparse.Namespace) -> int:
    """Attach to a running container: its output, and its terminal or stdin.

    Without a terminal, signals this command receives go to the container
    (``--sig-proxy``, the default), as docker attach passes them on.
    """
    import layercake
    from layercake.cli._terminal import (
        check_input,
        detach_keys,
        raw_terminal,
        window_size,
    )

    keys = detach_keys(args.detach_keys)
    container = _load(layercake.Store(args.store), args.container)
    if container.status != "running":
        raise LayercakeError("You cannot attach to a stopped container, start it first")
    terminal = container.record.process.terminal
    use_stdin = not args.no_stdin and container.record.stdin_open
    if use_stdin:
        check_input(True, terminal)
    size = window_size() if terminal else None
    if size is not None:
        container.resize(*size)
    sys.stdout.flush()
    proxy = args.sig_proxy and not terminal
    with (
        _signals_proxied(container, proxy),
        raw_terminal(terminal and use_stdin, container.resize),
    ):
        code = container.attach(stdin=0 if use_stdin else None, detach_keys=keys)
    if code == -1:
        # As docker: the container goes on; the client says why it stopped.
        sys.stderr.write("read escape sequence\n")
        return 1
    return code


# What attach passes on to the container; docker passes on every signal but
# those its own runtime uses, of which these are the ones a user sends.
_PROXIED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


@contextmanager
def _signals_proxied(container: Container, proxy: bool) -> Iterator[None]:
    """While attached, send the signals this process gets to the container."""
    if not proxy:
        yield
        return

    def forward(signum: int, frame: object) -> None:
        with suppress(LayercakeError):
            container.kill(signum)

    previous = {signum: signal.signal(signum, forward) for signum in _PROXIED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _copy_out(container: Container, path: str, written: str) -> None:
    """docker cp out: a tar on stdout for ``-``; into DEST if it is a
    directory; else as DEST itself (a tree's entries when SRC ends ``/.``)."""
    if written == "-":
        sys.stdout.flush()
        container.write_archive(path, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    dest = Path(written)
    if dest.is_dir():
        container.copy_from(path, dest)
        return
    if not dest.parent.is_dir():
        raise LayercakeError(f"cp: {dest.parent} is not a directory")
    staging = Path(tempfile.mkdtemp(prefix=".layercake-cp-", dir=dest.parent))
    try:
        if path.endswith("/.") or not path.rstrip("/"):
            # SRC/. names the tree's entries: they fill the new DEST.
            copied = staging / "entries"
            container.copy_from(path, copied)
        else:
            container.copy_from(path, staging)
            (copied,) = staging.iterdir()
        is_tree = stat.S_ISDIR(copied.lstat().st_mode)
        if written.endswith("/") and not is_tree:
            if os.path.lexists(dest):
                raise LayercakeError(f"cp: {written} is not a directory")
            raise LayercakeError(f"cp: destination directory {written} does not exist")
        if is_tree and os.path.lexists(dest):
            raise LayercakeError(
                f"cp: cannot overwrite non-directory {written} with a directory"
            )
        if os.path.lexists(dest):
            dest.unlink()
        copied.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def copy(args: argparse.Namespace) -> int:
    """Copy between a container and the host: ``cp CONTAINER:PATH HOSTPATH``
    or ``cp HOSTPATH CONTAINER:PATH``, with ``-`` for a tar stream on
    stdout or stdin, by ``docker cp``'s rules."""
    import layercake

    store = layercake.Store(args.store)
    source_key, source_sep, source_path = args.source.partition(":")
    dest_key, dest_sep, dest_path = args.dest.partition(":")
    if source_sep and not dest_sep and not args.source.startswith("/"):
        _copy_out(_load(store, source_key), source_path, args.dest)
    elif dest_sep and not source_sep and not args.dest.startswith("/"):
        container = _load(store, dest_key)
        if args.source == "-":
            container.extract_archive(dest_path, sys.stdin.buffer)
        else:
            container.copy_to(dest_path, args.source)
    else:
        raise LayercakeError(
            "cp: exactly one of SOURCE and DEST must be CONTAINER:PATH"
        )
    return 0


def commit(args: argparse.Namespace) -> int:
    """Make an image of a container's changes; print its id."""
    import layercake

    container = _load(layercake.Store(args.store), args.container)
    image = container.commit(
        tag=args.repository,
        message=args.message,
        author=args.author,
        pause=args.pause,
    )
    sys.stdout.write(image.id + "\n")
    return 0


def diff(args: argparse.Namespace) -> int:
    """List paths added (A), changed (C) and deleted (D) in a container."""
    import layercake

    container = _load(layercake.Store(args.store), args.container)
    for kind, path in container.diff():
        sys.stdout.write(f"{kind} {path}\n")
    return 0


def export(args: argparse.Namespace) -> int:
    """Write a container's file system as a tar archive."""
    import layercake
    from layercake.cli._files import output_path

    store = layercake.Store(args.store)
    container = _load(store, args.container)
    with output_path(args.output, store, "export") as path:
        container.export(path)
    return 0


def port(args: argparse.Namespace) -> int:
    """Print where container ports are published: one, or all of them."""
    import layercake

    container = _load(layercake.Store(args.store), args.container)
    published = container.state().ports
    if args.port is not None:
        number, _, protocol = args.port.partition("/")
        container.host_port(args.port)
        published = tuple(
            p for p in published if (str(p[0]), p[1]) == (number, protocol or "tcp")
        )
        for _inner, _protocol, address, host in published:
            sys.stdout.write(f"{address}:{host}\n")
        return 0
    for inner, protocol, address, host in published:
        sys.stdout.write(f"{inner}/{protocol} -> {address}:{host}\n")
    return 0


def _container_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    parser.add_argument("--name", help="a name to find the container by")
    parser.add_argument(
        "--rm", action="store_true", help="remove the container on exit"
    )
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--env-file", action="append", default=[], metavar="FILE")
    parser.add_argument("-w", "--workdir")
    parser.add_argument("-u", "--user")
    parser.add_argument("--entrypoint")
    parser.add_argument("--hostname")
    parser.add_argument(
        "-i", "--interactive", action="store_true", help="keep stdin open"
    )
    parser.add_argument(
        "-t", "--tty", action="store_true", help="allocate a pseudo terminal"
    )
    parser.add_argument(
        "--network",
        default="bridge",
        help="bridge (default), none, host, container:NAME or a network's name",
    )
    parser.add_argument(
        "--network-alias",
        action="append",
        default=[],
        metavar="ALIAS",
        help="another name the container has on its user-defined network",
    )
    parser.add_argument(
        "--add-host",
        action="append",
        default=[],
        metavar="NAME:IP",
        help="add a line to /etc/hosts (IP host-gateway: the host)",
    )
    parser.add_argument(
        "--dns", action="append", default=[], metavar="IP", help="a DNS server"
    )
    parser.add_argument(
        "--dns-search",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="a DNS search domain ('.': none)",
    )
    parser.add_argument(
        "--dns-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="a resolv.conf option (ndots:2, ...)",
    )
    parser.add_argument(
        "-v", "--volume", action="append", default=[], metavar="SOURCE:TARGET[:ro]"
    )
    parser.add_argument(
        "--tmpfs", action="append", default=[], metavar="PATH[:OPTIONS]"
    )
    parser.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:]HOST:CONTAINER[/udp]",
    )
    parser.add_argument("--init", action="store_true", help="run an init as PID 1")
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("-m", "--memory", help="memory limit, e.g. 256m")
    parser.add_argument("--cpus", type=float, default=0.0)
    parser.add_argument("--cpu-shares", type=int, default=0)
    parser.add_argument("--pids-limit", type=int, default=0)
    parser.add_argument("--privileged", action="store_true")
    parser.add_argument("--cap-add", action="append", default=[])
    parser.add_argument("--cap-drop", action="append", default=[])
    parser.add_argument("--security-opt", action="append", default=[])
    parser.add_argument(
        "--restart",
        default="no",
        metavar="POLICY",
        help="no (default), always, unless-stopped, on-failure[:MAX]",
    )
    parser.add_argument(
        "--runtime",
        choices=("builtin", "runc", "crun"),
        default="builtin",
        help="the OCI runtime that runs the container",
    )


def register(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], only: str | None = None
) -> None:
    """Add the container verbs, or only the verb ``only``.

    A command line that names its verb needs no other: skipping the other
    verbs' parsers saves their construction at every start.
    """
    if only in (None, "run"):
        parser = verbs.add_parser("run", help="run a command in a new container")
        _container_options(parser)
        parser.add_argument(
            "-d",
            "--detach",
            action="store_true",
            help="run in the background; print the id",
        )
        parser.set_defaults(handler=run)

    if only in (None, "create"):
        parser = verbs.add_parser(
            "create", help="create a container without starting it"
        )
        _container_options(parser)
        parser.set_defaults(handler=create)

    for name, handler, text in (
        ("start", start, "start created containers"),
        ("rm", remove, "remove containers"),
        ("stop", stop, "stop running containers"),
        ("restart", restart, "restart containers"),
        ("kill", kill, "send a signal to running containers"),
        ("pause", pause, "freeze running containers"),
        ("unpause", unpause, "thaw paused containers"),
    ):
        if only not in (None, name):
            continue
        parser = verbs.add_parser(name, help=text)
        parser.add_argument("containers", nargs="+", metavar="CONTAINER")
        parser.set_defaults(handler=handler)
        if name == "rm":
            parser.add_argument("-f", "--force", action="store_true")
            parser.add_argument(
                "-v",
                "--volumes",
                action="store_true",
                help="anonymous volumes go with the container even without -v",
            )
        if name in ("stop", "restart"):
            parser.add_argument("-t", "--time", type=float, default=10.0)
        if name == "start":
            parser.add_argument(
                "-a",
                "--attach",
                action="store_true",
                help="run in the foreground with its output; exit with its code",
            )
            parser.add_argument(
                "-i", "--interactive", action="store_true", help="attach stdin too"
            )
        if name == "kill":
            parser.add_argument("-s", "--signal", default="KILL")

    if only in (None, "rename"):
        parser = verbs.add_parser("rename", help="rename a container")
        parser.add_argument("container")
        parser.add_argument("name")
        parser.set_defaults(handler=rename)

    if only in (None, "ps"):
        parser = verbs.add_parser("ps", help="list containers")
        parser.add_argument(
            "-a", "--all", action="store_true", help="also stopped ones"
        )
        parser.add_argument("-q", "--quiet", action="store_true", help="only ids")
        parser.add_argument("--format", choices=("table", "json"), default="table")
        parser.set_defaults(handler=ps)

    if only in (None, "logs"):
        parser = verbs.add_parser("logs", help="print a container's output")
        parser.add_argument("container")
        parser.add_argument("-f", "--follow", action="store_true")
        parser.add_argument("-t", "--timestamps", action="store_true")
        parser.add_argument(
            "-n", "--tail", default="all", help="the last N lines only (default: all)"
        )
        parser.add_argument(
            "--since",
            help="lines written since a time: 10m, 1h30m, Unix seconds or RFC 3339",
        )
        parser.set_defaults(handler=logs)

    if only in (None, "exec"):
        parser = verbs.add_parser("exec", help="run a command in a running container")
        parser.add_argument("container")
        parser.add_argument("command", nargs=argparse.REMAINDER)
        parser.add_argument("-e", "--env", action="append", default=[])
        parser.add_argument("-u", "--user")
        parser.add_argument("-w", "--workdir")
        parser.add_argument(
            "-i", "--interactive", action="store_true", help="keep stdin open"
        )
        parser.add_argument(
            "-t", "--tty", action="store_true", help="allocate a pseudo terminal"
        )
        parser.set_defaults(handler=exec_)

    if only in (None, "attach"):
        parser = verbs.add_parser(
            "attach",
            help="attach to a running container's output, terminal or stdin",
        )
        parser.add_argument("container")
        parser.add_argument(
            "--detach-keys",
            default="ctrl-p,ctrl-q",
            help="keys that detach and leave the container running",
        )
        parser.add_argument(
            "--no-stdin", action="store_true", help="do not attach stdin"
        )
        # Docker spells it --sig-proxy=false: see commit's --pause.
        parser.add_argument(
            "--sig-proxy",
            "--sig-proxy=true",
            dest="sig_proxy",
            action="store_true",
            default=True,
            help="pass signals on to a container without a terminal (the default)",
        )
        parser.add_argument(
            "--sig-proxy=false",
            dest="sig_proxy",
            action="store_false",
            help="do not pass signals on",
        )
        parser.set_defaults(handler=attach)

    if only in (None, "cp"):
        parser = verbs.add_parser(
            "cp", help="copy files between a container and the host"
        )
        parser.add_argument("source")
        parser.add_argument("dest")
        parser.set_defaults(handler=copy)

    if only in (None, "commit"):
        parser = verbs.add_parser(
            "commit", help="make an image of a container's changes"
        )
        parser.add_argument("container")
        parser.add_argument("repository", nargs="?")
        parser.add_argument("-m", "--message")
        parser.add_argument("-a", "--author")
        # Docker spells the switch --pause=false; a flag taking an optional
        # value would swallow the container's name after -p, so each spelling
        # is an option of its own.
        parser.add_argument(
            "-p",
            "--pause",
            "--pause=true",
            dest="pause",
            action="store_true",
            default=True,
            help="pause a running container while committing it (the default)",
        )
        parser.add_argument(
            "--pause=false",
            "--no-pause",
            dest="pause",
            action="store_false",
            help="commit a running container without pausing it",
        )
        parser.set_defaults(handler=commit)

    if only in (None, "diff"):
        parser = verbs.add_parser("diff", help="list a container's changed paths")
        parser.add_argument("container")
        parser.set_defaults(handler=diff)

    if only in (None, "export"):
        parser = verbs.add_parser(
            "export", help="write a container's files as a tarball"
        )
        parser.add_argument("container")
        parser.add_argument("-o", "--output")
        parser.set_defaults(handler=export)

    if only in (None, "port"):
        parser = verbs.add_parser(
            "port", help="show where a container port is published"
        )
        parser.add_argument("container")
        parser.add_argument("port", nargs="?")
        parser.set_defaults(handler=port)
