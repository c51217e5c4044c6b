"""The public ``Builder``: runs a Dockerfile's instructions into an ``Image``.

Each stage starts from its base image's state (config and layers). Every
instruction is a step that turns one state into the next: metadata
instructions change only the config and add history, COPY, ADD and RUN add
a layer (unless they change nothing, as BuildKit does). Each step's result
is cached under a key over everything that determines it (see
``_cache_key``), so an unchanged rebuild runs nothing.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import attrs

from layercake import _storage as storage
from layercake import dockerfile as df
from layercake import runtime
from layercake._build_context import BuildContext
from layercake._build_state import BuildState, StateWriter
from layercake._container_files import RUNTIME_TARGETS
from layercake._copy_into import (
    CopyRequest,
    SourceTree,
    check_owner,
    copy_into,
    copy_tree,
    in_mapped_root,
    make_directory,
    parse_chmod,
    parse_chown,
)
from layercake._file_digests import FileDigests
from layercake._image import Image
from layercake._in_thread import in_worker_thread
from layercake._layer_stack import LayerStack
from layercake._remote_source import download
from layercake._run_config import merge_env
from layercake._run_mounts import (
    MountRequest,
    parse_mount,
    prepared_mounts,
    secret_env,
    tmpfs_mounts,
)
from layercake._signals import signal_number
from layercake._stack_context import StackContext
from layercake._step_history import StepHistory, explain_miss
from layercake._store import Store, tag_name
from layercake._users import resolve_user
from layercake.errors import (
    BuildContextError,
    BuildError,
    BuildStepFailed,
    CommandNotStarted,
    ContainerConfigError,
    DockerfileError,
    ImageNotFound,
    InvalidReference,
    RegistryError,
)
from layercake.events import (
    BuildFinished,
    BuildWarning,
    Event,
    EventCallback,
    StepCached,
    StepCacheMiss,
    StepFinished,
    StepOutput,
    StepStarted,
)
from layercake.runtime import (
    DEFAULT_PATH,
    BindMount,
    ProcessSpec,
    RootfsSpec,
    SandboxSpec,
)
from layercake.store import (
    ContainerConfig,
    Healthcheck,
    History,
    Reference,
    host_platform,
)

__all__ = ["Builder"]

logger = logging.getLogger(__name__)

_DEFAULT_SHELL = ("/bin/sh", "-c")
_OUTPUT_TAIL_LINES = 20
_TAIL_CHUNKS = 64
_TAIL_BYTES = 16 * 1024
_BUILD_HOSTNAME = "buildkitsandbox"

PullPolicy = Literal["missing", "always", "never"]
_PROXY_ARGS = tuple(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)


def _go_list(args: Sequence[str]) -> str:
    """Render a list the way Docker writes exec forms into history."""
    return "[" + " ".join(json.dumps(arg) for arg in args) + "]"


def _display(instruction: df.Instruction) -> str:
    return " ".join(line.strip() for line in instruction.original.splitlines())


_PORT = re.compile(r"([0-9]+)(?:-([0-9]+))?(?:/(tcp|udp|sctp))?", re.IGNORECASE)


def _exposed_ports(word: str, instruction: df.Instruction) -> list[str]:
    """The ports an EXPOSE word names (``80``, ``53/udp``, ``8000-8002/tcp``).

    A range stands for each port in it, as Docker writes them.

    Raises:
        DockerfileError: not a port, a range or a protocol Docker knows.
    """
    match = _PORT.fullmatch(word)
    numbers = [int(n) for n in match.groups()[:2] if n] if match else []
    if (
        not match
        or not all(0 < n < 65536 for n in numbers)
        or numbers != sorted(numbers)
    ):
        raise DockerfileError(
            f"invalid containerPort: {word}",
            path=instruction.location.path,
            line=instruction.location.line,
        )
    protocol = (match.group(3) or "tcp").lower()
    return [f"{port}/{protocol}" for port in range(numbers[0], numbers[-1] + 1)]


def _go_value(args: Sequence[str]) -> str:
    """Render a list the way Go's %v does, as BuildKit writes SHELL and VOLUME."""
    return "[" + " ".join(args) + "]"


def _check_signal(value: str, instruction: df.Instruction) -> str:
    """Accept ``SIGTERM``, ``TERM`` or a number, as Docker's STOPSIGNAL does.

    Raises:
        DockerfileError: not a signal this system knows.
    """
    if signal_number(value) is None:
        raise DockerfileError(
            f"invalid signal: {value}",
            path=instruction.location.path,
            line=instruction.location.line,
        )
    return value


def _cache_key(material: Mapping[str, object]) -> str:
    """A step's cache key: sha256 over the parent image, the instruction after
    expansion, the build args it can see, and its sources' digest."""
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = time.gmtime(int(epoch)) if epoch and epoch.isdigit() else time.gmtime()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


@attrs.define
class _Scope:
    """The variables one stage sees: declared build args and the config's env."""

    args: dict[str, str] = attrs.field(factory=dict)
    env: dict[str, str] = attrs.field(factory=dict)

    def variables(self) -> dict[str, str]:
        # ENV wins over an ARG of the same name, as in Docker.
        return {**self.args, **self.env}


def _env_dict(env: Sequence[str]) -> dict[str, str]:
    return {item.partition("=")[0]: item.partition("=")[2] for item in env}


def _platform_args() -> dict[str, str]:
    platform = host_platform()
    name = f"{platform.os}/{platform.architecture}"
    values = {"OS": platform.os, "ARCH": platform.architecture, "PLATFORM": name}
    values["VARIANT"] = platform.variant or ""
    return {
        f"{prefix}{key}": value
        for prefix in ("TARGET", "BUILD")
        for key, value in values.items()
    }


class _StageBuild:
    """The execution of one stage's instructions, step by step."""

    def __init__(
        self,
        build: _Build,
        stage: df.Stage,
        state: BuildState,
    ) -> None:
        self.build = build
        self.stage = stage
        self.state = state
        self.scope = _Scope(env=_env_dict(state.config.config.env))
        self.cmd_set = False
        self.current: df.Instruction = stage.base

    @property
    def config(self) -> ContainerConfig:
        return self.state.config.config

    def expand(self, word: str, instruction: df.Instruction) -> str:
        try:
            return df.expand(
                word,
                self.scope.variables(),
                escape=self.build.dockerfile.escape,
                location=instruction.location,
            )
        except RecursionError:
            raise DockerfileError(
                "variable references are nested too deeply",
                path=instruction.location.path,
                line=instruction.location.line,
            ) from None

    def run_all(self) -> BuildState:
        self.run_triggers()
        for instruction in self.stage.instructions:
            self.build.step += 1
            with self.build.step_errors(instruction):
                self.state = self.run_one(instruction)
        return self.state

    def run_triggers(self) -> None:
        """Run the base image's ONBUILD triggers, as part of the FROM step.

        The new image does not inherit them, as in Docker.
        """
        triggers = self.config.on_build
        if not triggers:
            return
        self.state = self.build.writer.replace_config(
            self.state, attrs.evolve(self.config, on_build=())
        )
        for trigger in triggers:
            instruction = df.parse_instruction(
                trigger,
                escape=self.build.dockerfile.escape,
                location=self.stage.base.location,
            )
            with self.build.step_errors(instruction):
                self.state = self.run_one(instruction)

    def run_one(self, instruction: df.Instruction) -> BuildState:
        self.current = instruction
        step = self.build.step
        started = time.monotonic()
        self.build.emit(
            StepStarted(step, self.build.total, _display(instruction), self.stage.name)
        )
        handler = getattr(self, f"do_{type(instruction).__name__.lower()}", None)
        if handler is None:
            raise BuildError(
                f"{instruction.keyword} is not supported yet",
                step=step,
                instruction=_display(instruction),
            )
        state: BuildState
        cached: bool
        state, cached = handler(instruction)
        self.build.emit(
            StepFinished(step, time.monotonic() - started, cached, state.image_id)
        )
        return state

    # -- the cache ---------------------------------------------------------

    def visible_args(self) -> dict[str, str]:
        return dict(sorted(self.scope.args.items()))

    def cached_or(
        self, description: str, extra: str, make: Callable[[], BuildState]
    ) -> tuple[BuildState, bool]:
        """Return the cached state for this step, or make and cache it."""
        material = self.build.cache_material(
            self.state, description, self.visible_args(), extra
        )
        key = _cache_key(material)
        slot = StepHistory.slot(
            self.build.dockerfile.path,
            self.stage.index,
            self.current.location.line,
            self.current.original,
        )
        history = self.build.step_history
        if not self.build.no_cache:
            hit = self.build.writer.cached(key)
            if hit is not None:
                history.record(slot, material)
                self.build.emit(StepCached(self.build.step, key))
                logger.info("step %d cached: %s", self.build.step, description)
                return hit, True
        reason = (
            "the build was asked not to use the cache"
            if self.build.no_cache
            else explain_miss(history.last(slot), material)
        )
        self.build.emit(StepCacheMiss(self.build.step, key, reason))
        logger.info("step %d not cached: %s", self.build.step, reason)
        state = make()
        self.build.writer.remember(key, state)
        history.record(slot, material)
        return state, False

    def commit_config(
        self, description: str, created_by: str, **changes: Any
    ) -> tuple[BuildState, bool]:
        def make() -> BuildState:
            config = attrs.evolve(self.config, **changes)
            history = History(
                created=_created(), created_by=created_by, empty_layer=True
            )
            return self.build.writer.derive(self.state, config, history, layer=None)

        return self.cached_or(description, "", make)

    # -- metadata instructions -----------------------------------------------

    def do_env(self, instruction: df.Env) -> tuple[BuildState, bool]:
        pairs = [
            (self.expand(key, instruction), self.expand(raw, instruction))
            for key, raw in instruction.pairs
        ]
        new = tuple(f"{key}={value}" for key, value in pairs)
        self.scope.env.update(pairs)
        text = " ".join(new)
        return self.commit_config(
            f"ENV {text}", f"ENV {text}", env=merge_env(self.config.env, new)
        )

    def do_label(self, instruction: df.Label) -> tuple[BuildState, bool]:
        pairs = {
            self.expand(key, instruction): self.expand(raw, instruction)
            for key, raw in instruction.pairs
        }
        text = " ".join(f"{key}={value}" for key, value in pairs.items())
        labels = {**self.config.labels, **pairs}
        return self.commit_config(f"LABEL {text}", f"LABEL {text}", labels=labels)

    def do_maintainer(self, instruction: df.Maintainer) -> tuple[BuildState, bool]:
        text = f"MAINTAINER {instruction.name}"

        def make() -> BuildState:
            history = History(created=_created(), created_by=text, empty_layer=True)
            image = attrs.evolve(self.state.config, author=instruction.name)
            return self.build.writer.derive(
                self.state, self.config, history, layer=None, image=image
            )

        return self.cached_or(text, "", make)

    def do_workdir(self, instruction: df.Workdir) -> tuple[BuildState, bool]:
        path = self.expand(instruction.path, instruction)
        if not path.startswith("/"):
            path = os.path.join(self.config.working_dir or "/", path)
        path = os.path.normpath(path)
        text = f"WORKDIR {path}"

        def make() -> BuildState:
            # Like BuildKit, WORKDIR creates a missing directory, owned by the
            # current USER; one that exists only changes the config.
            config = attrs.evolve(self.config, working_dir=path)
            history = History(created=_created(), created_by=text, empty_layer=True)
            stack = self.build.writer.layer_stack(self.state)
            if stack.is_dir(stack.resolve(path)):
                return self.build.writer.derive(self.state, config, history, layer=None)
            user = resolve_user(self.config.user, stack)
            owner = (user.uid, user.gid)
            check_owner(
                owner, self.id_map(), f"WORKDIR {path} owned by {owner[0]}:{owner[1]}"
            )
            history = attrs.evolve(history, empty_layer=False)
            return self.staged_layer(
                "workdir-",
                lambda staging: make_directory(staging, stack, path, owner),
                lambda staging: self.build.writer.derive(
                    self.state, config, history, layer=staging
                ),
            )

        return self.cached_or(text, "", make)

    def do_user(self, instruction: df.User) -> tuple[BuildState, bool]:
        user = self.expand(instruction.user, instruction)
        return self.commit_config(f"USER {user}", f"USER {user}", user=user)

    def do_expose(self, instruction: df.Expose) -> tuple[BuildState, bool]:
        ports = dict(self.config.exposed_ports)
        for raw in instruction.ports:
            for word in df.expand_words(
                raw, self.scope.variables(), escape=self.build.dockerfile.escape
            ):
                for port in _exposed_ports(word, instruction):
                    ports[port] = {}
        shown = " ".join(f"{port}:{{}}" for port in sorted(ports))
        return self.commit_config(
            f"EXPOSE {sorted(ports)}", f"EXPOSE map[{shown}]", exposed_ports=ports
        )

    def do_volume(self, instruction: df.Volume) -> tuple[BuildState, bool]:
        volumes = dict(self.config.volumes)
        paths = [self.expand(raw, instruction) for raw in instruction.paths]
        if "" in paths:
            raise DockerfileError(
                "VOLUME specified can not be an empty string",
                path=instruction.location.path,
                line=instruction.location.line,
            )
        for path in paths:
            volumes[path] = {}
        text = f"VOLUME {_go_value(paths)}"
        return self.commit_config(text, text, volumes=volumes)

    def do_stopsignal(self, instruction: df.StopSignal) -> tuple[BuildState, bool]:
        value = _check_signal(self.expand(instruction.signal, instruction), instruction)
        text = f"STOPSIGNAL {value}"
        return self.commit_config(text, text, stop_signal=value)

    def do_shell(self, instruction: df.Shell) -> tuple[BuildState, bool]:
        text = f"SHELL {_go_value(instruction.args)}"
        return self.commit_config(text, text, shell=tuple(instruction.args))

    def command_args(self, command: df.Command) -> tuple[str, ...]:
        if command.shell:
            return tuple(self.config.shell or _DEFAULT_SHELL) + command.args
        return command.args

    def do_cmd(self, instruction: df.Cmd) -> tuple[BuildState, bool]:
        args = self.command_args(instruction.command)
        self.cmd_set = True
        text = f"CMD {_go_list(args)}"
        return self.commit_config(text, text, cmd=args)

    def do_entrypoint(self, instruction: df.Entrypoint) -> tuple[BuildState, bool]:
        args = self.command_args(instruction.command)
        text = f"ENTRYPOINT {_go_list(args)}"
        # An ENTRYPOINT resets a Cmd inherited from the base image, but not
        # one this stage set before it.
        cmd = self.config.cmd if self.cmd_set else None
        return self.commit_config(text, text, entrypoint=args, cmd=cmd)

    def do_healthcheck(self, instruction: df.Healthcheck) -> tuple[BuildState, bool]:
        command = instruction.command
        if command is None:
            check = Healthcheck(test=("NONE",))
            text = "HEALTHCHECK NONE"
            return self.commit_config(text, text, healthcheck=check)
        test = (
            ("CMD-SHELL",) + command.args if command.shell else ("CMD",) + command.args
        )
        flags = instruction.flags
        nanoseconds = {
            name: round(df.parse_duration(flags[flag]) * 1e9) if flag in flags else 0
            for name, flag in (
                ("interval", "interval"),
                ("timeout", "timeout"),
                ("start_period", "start-period"),
                ("start_interval", "start-interval"),
            )
        }
        check = Healthcheck(
            test=test, retries=int(flags.get("retries", "0")), **nanoseconds
        )
        text = f"HEALTHCHECK {_go_list(test)} {sorted(nanoseconds.items())}"
        return self.commit_config(
            text, f"HEALTHCHECK {_go_list(test)}", healthcheck=check
        )

    def do_onbuild(self, instruction: df.OnBuild) -> tuple[BuildState, bool]:
        trigger = instruction.trigger
        text = f"ONBUILD {trigger}"
        return self.commit_config(
            text, text, on_build=tuple(self.config.on_build) + (trigger,)
        )

    def do_arg(self, instruction: df.Arg) -> tuple[BuildState, bool]:
        name = instruction.name
        given = self.build.build_args.get(name)
        if given is not None:
            value: str | None = given
            self.build.used_args.add(name)
        elif instruction.default is not None:
            value = self.expand(instruction.default, instruction)
        else:
            value = self.build.global_scope.get(
                name, self.build.platform_args.get(name)
            )
        if value is not None:
            self.scope.args[name] = value
        text = f"ARG {name}" + (f"={value}" if value is not None else "")
        # The value is in the args the cache key sees (the scope now has it),
        # so a changed --build-arg is reported as such, not as a new line.
        default = instruction.default or ""
        return self.commit_config(f"ARG {name}={default}", text)

    # -- filesystem instructions ---------------------------------------------

    def do_copy(self, instruction: df.Copy) -> tuple[BuildState, bool]:
        return self.copy_or_add(instruction, "COPY")

    def do_add(self, instruction: df.Add) -> tuple[BuildState, bool]:
        return self.copy_or_add(instruction, "ADD")

    def copy_flags(self, instruction: df.Copy | df.Add, keyword: str) -> dict[str, str]:
        """The expanded flags of a COPY or ADD, refusing those not supported."""
        allowed = {"chown", "chmod", "link"}
        allowed |= {"from"} if keyword == "COPY" else {"checksum"}
        flags = {
            name: self.expand(value, instruction)
            for name, value in instruction.flags.items()
        }
        for flag in flags:
            if flag not in allowed:
                raise BuildError(
                    f"{keyword} --{flag} is not supported yet",
                    step=self.build.step,
                    instruction=_display(instruction),
                )
        return flags

    def copy_or_add(
        self, instruction: df.Copy | df.Add, keyword: str
    ) -> tuple[BuildState, bool]:
        flags = self.copy_flags(instruction, keyword)
        words = [self.expand(raw, instruction) for raw in instruction.sources]
        remote = [word for word in words if "://" in word]
        if remote and keyword == "COPY":
            raise BuildError(f"COPY cannot fetch URLs ({remote[0]}); use ADD")
        if "checksum" in flags and len(remote) != len(words):
            raise BuildError("ADD --checksum needs every source to be an http(s) URL")
        dest = self.expand(instruction.dest, instruction)
        if not dest.startswith("/"):
            trailing = "/" if dest.endswith("/") or dest in (".", "./") else ""
            dest = os.path.join(self.config.working_dir or "/", dest)
            dest = os.path.normpath(dest) + trailing

        tree = (
            self.source_tree(flags["from"]) if "from" in flags else self.build.context
        )
        sources: list[tuple[SourceTree, str]] = [
            (tree, relative)
            for word in words
            if "://" not in word
            for relative in tree.resolve(word, keyword=keyword)
        ]
        with ExitStack() as temporary:
            for extra in (
                self.heredoc_context(instruction),
                self.downloads(remote, flags.get("checksum")),
            ):
                if extra.root is not None:
                    temporary.callback(shutil.rmtree, extra.root, ignore_errors=True)
                    sources.extend(
                        (extra, name) for name in sorted(os.listdir(extra.root))
                    )
            digest = "".join(tree.digest([relative]) for tree, relative in sources)
            names = words + [f"<<{doc.name}" for doc in instruction.heredocs]
            description = f"{keyword} {' '.join(names)} {dest} {sorted(flags.items())}"
            request = CopyRequest(
                keyword=keyword,
                sources=tuple(sources),
                dest=dest,
                mode=parse_chmod(flags["chmod"]) if "chmod" in flags else None,
                extract_archives=keyword == "ADD",
            )
            return self.cached_or(
                description, digest, lambda: self.copy_step(instruction, request, flags)
            )

    def copy_step(
        self, instruction: df.Copy | df.Add, request: CopyRequest, flags: dict[str, str]
    ) -> BuildState:
        """Stage what a COPY or ADD adds and commit it as a layer."""
        stack = self.build.writer.layer_stack(self.state)
        if "chown" in flags:
            owner = parse_chown(flags["chown"], stack)
            what = f"{request.keyword} --chown={flags['chown']}"
            check_owner(owner, self.id_map(), what)
            request = attrs.evolve(request, owner=owner)
        created_by = f"{_display(instruction)} # buildkit"
        history = History(created=_created(), created_by=created_by)
        return self.staged_layer(
            "copy-",
            lambda staging: copy_into(request, staging, stack),
            lambda staging: self.build.writer.derive(
                self.state, self.config, history, layer=staging
            ),
        )

    def id_map(self) -> runtime.IdMap | None:
        """The ids an unprivileged builder can give files (None as root)."""
        return None if os.geteuid() == 0 else runtime.id_map()

    def staged_layer(
        self,
        prefix: str,
        fill: Callable[[Path], None],
        commit: Callable[[Path], BuildState],
    ) -> BuildState:
        """Fill a staging directory with a step's files and commit it.

        An unprivileged builder with subordinate ids fills it as mapped
        root, so files get the owners the image names (the store then packs
        them as mapped root too); the directory is removed afterwards.
        """
        directory = self.build.store._directory
        staging = directory.tmp_dir(prefix)
        try:
            if directory.mapped_root is None:
                fill(staging)
            else:
                in_mapped_root(directory.mapped_root, lambda: fill(staging))
            return commit(staging)
        finally:
            directory.remove_tree(staging)

    def downloads(self, urls: list[str], checksum: str | None) -> BuildContext:
        """A temporary context holding the files ADD fetches from ``urls``."""
        if not urls:
            return BuildContext(None)
        directory = self.build.store._directory.tmp_dir("download-")
        try:
            for url in urls:
                download(url, directory, checksum=checksum)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return BuildContext(directory, extractable=False)

    def source_tree(self, name: str) -> BuildContext | StackContext:
        """The files ``COPY --from=name`` reads: a built stage, or an image."""
        state = self.build.built.get(name.lower())
        if state is None:
            state = self.build.writer.load(self.build.find_image(name).digest)
        stack = self.build.writer.layer_stack(state)
        return StackContext(stack, name, state.image_id)

    def heredoc_context(self, instruction: df.Copy | df.Add) -> BuildContext:
        """A temporary context holding the instruction's heredocs as files."""
        if not instruction.heredocs:
            return BuildContext(None)
        directory = self.build.store._directory.tmp_dir("heredoc-")
        for doc in instruction.heredocs:
            content = self.expand_heredoc(doc, instruction)
            path = directory / doc.name
            path.write_text(content, encoding="utf-8")
            os.chmod(path, 0o644)
            # A fixed time keeps the layer's bytes the same from build to build.
            os.utime(path, (0, 0))
        return BuildContext(directory)

    def expand_heredoc(self, doc: df.Heredoc, instruction: df.Instruction) -> str:
        if not doc.expand:
            return doc.content
        return df.expand_heredoc(
            doc.content,
            self.scope.variables(),
            escape=self.build.dockerfile.escape,
            location=instruction.location,
        )

    def run_args(self, instruction: df.Run) -> tuple[tuple[str, ...], str | None]:
        """The argv of a RUN, and a script to mount when it is a bare heredoc.

        As in BuildKit: ``RUN <<EOF`` runs the heredoc as a shell script, or
        executes it directly when it starts with ``#!``; a heredoc inside a
        longer command line goes to the shell with the command, which feeds
        it to the command's stdin.
        """
        command = instruction.command
        if not instruction.heredocs or not command.shell:
            return self.command_args(command), None
        first = instruction.heredocs[0]
        text = command.args[0].strip()
        bare = (
            len(instruction.heredocs) == 1
            and text.lstrip("<-").strip("'\"") == first.name
            and text.startswith("<<")
        )
        if bare and first.content.startswith("#!"):
            return (f"/dev/pipes/{first.name}",), first.content
        if bare:
            return tuple(self.config.shell or _DEFAULT_SHELL) + (first.content,), None
        script = (
            text
            + "\n"
            + "".join(f"{doc.content}{doc.name}\n" for doc in instruction.heredocs)
        )
        return tuple(self.config.shell or _DEFAULT_SHELL) + (script,), None

    def do_run(self, instruction: df.Run) -> tuple[BuildState, bool]:
        for flag in instruction.flags:
            if flag not in ("mount", "network"):
                raise BuildError(
                    f"RUN --{flag} is not supported",
                    step=self.build.step,
                    instruction=_display(instruction),
                )
        network = self.run_network(instruction)
        mounts = [
            parse_mount(self.expand(value, instruction))
            for value in instruction.flags.get("mount", ())
        ]
        args, script = self.run_args(instruction)
        build_env = [
            f"{name}={value}"
            for name, value in self.scope.args.items()
            if name not in self.scope.env
        ]
        prefix = f"|{len(build_env)} {' '.join(build_env)} " if build_env else ""
        created_by = f"RUN {prefix}{' '.join(args)} # buildkit"
        build_env += self.proxy_env()
        description = json.dumps(
            ["RUN", list(args), script, network, [m.describe() for m in mounts]]
        )
        sources = "".join(self.mount_digest(mount) for mount in mounts)

        def make() -> BuildState:
            return self.execute(
                instruction, args, script, build_env, created_by, network, mounts
            )

        return self.cached_or(description, sources, make)

    def proxy_env(self) -> list[str]:
        """Docker's predefined proxy ARGs given with --build-arg.

        RUN sees them without an ARG line; like BuildKit, they stay out of
        the history and the cache key, since they hold no build input.
        """
        env = []
        for name in _PROXY_ARGS:
            value = self.build.build_args.get(name)
            if value is not None and name not in self.scope.args:
                self.build.used_args.add(name)
                env.append(f"{name}={value}")
        return env

    def run_network(self, instruction: df.Run) -> Literal["none", "host"]:
        values = instruction.flags.get("network", ("default",))
        value = self.expand(values[-1], instruction)
        if value not in ("default", "none", "host"):
            raise BuildError(
                f"RUN --network={value} is not supported (default, none or host)",
                step=self.build.step,
                instruction=_display(instruction),
            )
        # "default" has the network, as BuildKit's sandbox does.
        return "none" if value == "none" else "host"

    def mount_digest(self, mount: MountRequest) -> str:
        """What of a mount's source the cache key must cover."""
        if mount.type != "bind":
            return ""
        tree = self.mount_tree(mount)
        relative = tree.resolve(mount.options.get("source", "/"), keyword="RUN")
        return tree.digest(relative)

    def mount_tree(self, mount: MountRequest) -> BuildContext | StackContext:
        source = mount.options.get("from")
        return self.source_tree(source) if source else self.build.context

    def mount_source(self, mount: MountRequest, scratch: Path) -> Path:
        """A host path holding a bind mount's source, as the build sees it."""
        tree = self.mount_tree(mount)
        (relative,) = tree.resolve(mount.options.get("source", "/"), keyword="RUN")
        if isinstance(tree, BuildContext) and not tree.ignore.rules:
            return tree.path(relative)
        # A merged image view or a filtered context has no single host
        # directory: give the step a copy of what it would see.
        copy = (
            scratch
            / f"source-{hashlib.sha256(mount.describe().encode()).hexdigest()[:12]}"
        )
        copy.mkdir()
        path = tree.path(relative)
        if path.is_dir() and not path.is_symlink():
            copy_tree(tree, relative, copy)
            return copy
        return path

    def execute(
        self,
        instruction: df.Run,
        args: tuple[str, ...],
        script: str | None,
        build_env: list[str],
        created_by: str,
        network: Literal["none", "host"],
        mount_requests: list[MountRequest],
    ) -> BuildState:
        runtime.require()
        stack = self.build.writer.layer_stack(self.state)
        try:
            user = resolve_user(self.config.user, stack)
        except ContainerConfigError as error:
            raise BuildError(
                str(error), step=self.build.step, instruction=_display(instruction)
            ) from None
        env = merge_env(build_env, self.config.env)
        secrets = secret_env(mount_requests, self.build.secrets)
        env = merge_env(env, [f"{name}={value}" for name, value in secrets.items()])
        if not any(item.startswith("PATH=") for item in env):
            env = (f"PATH={DEFAULT_PATH}",) + env
        container = self.build.store._directory.tmp_dir("run-")
        mounts: tuple[BindMount, ...] = ()
        if script is not None:
            (container / "script").write_text(script, encoding="utf-8")
            os.chmod(container / "script", 0o755)
            mounts = (BindMount(str(container / "script"), args[0], read_only=True),)
        scratch = container / "mounts"
        scratch.mkdir()
        driver = self.build.store._container_driver()
        # Only the tail is kept, for the error message: the whole output of a
        # chatty step must not live in memory (events carry it as it comes).
        output: collections.deque[bytes] = collections.deque(maxlen=_TAIL_CHUNKS)

        def on_output(stream: Literal["stdout", "stderr"], data: bytes) -> None:
            output.append(data)
            self.build.emit(StepOutput(self.build.step, stream, data))

        try:
            with prepared_mounts(
                mount_requests,
                scratch=scratch,
                cache_root=self.build.store.path / "cache-mounts",
                source_path=lambda request: self.mount_source(request, scratch),
                secrets=self.build.secrets,
            ) as extra:
                spec = SandboxSpec(
                    rootfs=RootfsSpec(
                        lower_dirs=tuple(str(path) for path in stack.layer_dirs),
                        upper_dir=str(container / "upper"),
                        work_dir=str(container / "work"),
                        mount_point=str(container / "rootfs"),
                        driver=driver,  # type: ignore[arg-type]
                    ),
                    process=ProcessSpec(
                        args=args,
                        env=env,
                        cwd=self.config.working_dir or "/",
                        uid=user.uid,
                        gid=user.gid,
                        additional_gids=user.additional_gids,
                    ),
                    hostname=_BUILD_HOSTNAME,
                    network=network,
                    mounts=mounts + extra,
                    tmpfs=tmpfs_mounts(mount_requests),
                )
                try:
                    result = runtime.run(spec, on_output=on_output)
                except CommandNotStarted as error:
                    raise BuildStepFailed(
                        step=self.build.step,
                        instruction=_display(instruction),
                        exit_code=error.exit_code,
                        output_tail=str(error),
                    ) from None
            if result.exit_code != 0:
                last = b"".join(output)[-_TAIL_BYTES:]
                tail = last.decode("utf-8", "replace").splitlines()
                raise BuildStepFailed(
                    step=self.build.step,
                    instruction=_display(instruction),
                    exit_code=result.exit_code,
                    output_tail="\n".join(tail[-_OUTPUT_TAIL_LINES:]),
                )
            layer = container / "upper"
            if driver == "copy":
                layer = self._copied_changes(container, stack)
            history = History(created=_created(), created_by=created_by)
            return self.build.writer.derive(
                self.state, self.config, history, layer=layer
            )
        finally:
            self.build.store._directory.remove_tree(container)

    def _copied_changes(self, container: Path, stack: LayerStack) -> Path:
        """The changes of a step run with the copy driver, staged as a layer."""
        mapped_root = self.build.store._directory.mapped_root
        found = storage.changes(container, "copy", stack, RUNTIME_TARGETS, mapped_root)
        layer = container / "layer"
        layer.mkdir()
        storage.stage_changes(container, layer, found, mapped_root)
        return layer


class _Build:
    """One call of ``Builder.build``: the parsed file, options and progress."""

    def __init__(
        self,
        store: Store,
        dockerfile: df.Dockerfile,
        context: BuildContext,
        build_args: Mapping[str, str],
        no_cache: bool,
        on_event: EventCallback | None,
    ) -> None:
        self.store = store
        self.dockerfile = dockerfile
        self.context = context
        self.build_args = dict(build_args)
        self.no_cache = no_cache
        self.on_event = on_event
        self.secrets: dict[str, Path] = {}
        self.step_history = StepHistory(store.path / "cache" / "steps.sqlite")
        self.pull: PullPolicy = "missing"
        self.writer = StateWriter(store._directory)
        self.platform_args = _platform_args()
        self.global_scope: dict[str, str] = {}
        self.used_args: set[str] = set()
        # Finished stages by lower-case name and by index, for FROM and --from.
        self.built: dict[str, BuildState] = {}
        self.step = 0
        self.total = 0

    def emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def step_errors(self, instruction: df.Instruction) -> _StepErrors:
        return _StepErrors(self, instruction)

    def cache_material(
        self, parent: BuildState, description: str, args: dict[str, str], extra: str
    ) -> dict[str, object]:
        """What a step's cache key is made of (see :func:`_cache_key`)."""
        return {
            "parent": str(parent.config_digest),
            "instruction": description,
            "args": args,
            "sources": extra,
        }

    def resolve_globals(self) -> None:
        variables = dict(self.platform_args)
        for arg in self.dockerfile.global_args:
            if arg.name in self.build_args:
                value: str | None = self.build_args[arg.name]
                self.used_args.add(arg.name)
            elif arg.default is not None:
                value = df.expand(
                    arg.default,
                    variables,
                    escape=self.dockerfile.escape,
                    location=arg.location,
                )
            else:
                value = None
            if value is not None:
                variables[arg.name] = value
                self.global_scope[arg.name] = value
        self.from_variables = variables

    def find_image(self, name: str) -> Image:
        try:
            return self.store.image(name)
        except ImageNotFound:
            raise BuildError(
                f"image not found in the store: {name}", step=self.step
            ) from None

    def check_platform(self, base: df.From) -> None:
        """Refuse ``FROM --platform`` for another platform than this machine's."""
        if base.platform is None:
            return
        wanted = df.expand(
            base.platform,
            self.from_variables,
            escape=self.dockerfile.escape,
            location=base.location,
        )
        here = self.platform_args["TARGETPLATFORM"]
        if wanted not in (here, self.platform_args["TARGETOS"]):
            raise DockerfileError(
                f"FROM --platform={wanted}: building for another platform than "
                f"this machine's ({here}) is not supported",
                path=base.location.path,
                line=base.location.line,
            )

    def base_state(self, stage: df.Stage) -> BuildState:
        base = stage.base
        name = df.expand(
            base.image,
            self.from_variables,
            escape=self.dockerfile.escape,
            location=base.location,
        )
        self.check_platform(base)
        if not name:
            raise DockerfileError(
                f"base name ({base.image}) should not be blank",
                path=base.location.path,
                line=base.location.line,
            )
        if name.lower() == "scratch":
            return self.writer.scratch()
        if name.lower() in self.built:
            return self.built[name.lower()]
        try:
            Reference.parse(name)
        except InvalidReference as error:
            raise DockerfileError(
                f"invalid base image reference {name!r}: {error.reason}",
                path=base.location.path,
                line=base.location.line,
            ) from None
        return self.writer.load(self.base_image(name, base).digest)

    def base_image(self, name: str, base: df.From) -> Image:
        """The image FROM names: from the store, or pulled as ``pull`` says."""
        image = None
        if self.pull != "always":
            try:
                image = self.store.image(name)
            except ImageNotFound:
                if self.pull == "never":
                    raise DockerfileError(
                        f"base image not found in the store: {name}",
                        path=base.location.path,
                        line=base.location.line,
                    ) from None
        if image is not None:
            return image
        from layercake.store import _registry as registry

        try:
            descriptor = registry.pull(self.store._directory, name)
        except RegistryError as error:
            raise DockerfileError(
                f"base image {name} is not in the store and pulling it failed: {error}",
                path=base.location.path,
                line=base.location.line,
            ) from None
        return self.store._load(descriptor.digest)


class _StepErrors:
    """Attach the step and instruction to errors that escape a step."""

    def __init__(self, build: _Build, instruction: df.Instruction) -> None:
        self.build = build
        self.instruction = instruction

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, BuildError) and exc.step is None:
            exc.step = self.build.step
            exc.instruction = _display(self.instruction)


def _unused_arg_message(name: str) -> str:
    return f"build argument {name!r} was given but no ARG declares it"


def check_build_args(
    dockerfile: df.Dockerfile, build_args: Mapping[str, str]
) -> list[str]:
    """Warnings about ``build_args`` no ARG of ``dockerfile`` declares.

    What ``build --check`` reports before any build; a build reports the
    same for the stages it runs.
    """
    declared = {arg.name for arg in dockerfile.global_args}
    for stage in dockerfile.stages:
        declared |= {i.name for i in stage.instructions if isinstance(i, df.Arg)}
    return [
        _unused_arg_message(name)
        for name in sorted(build_args)
        if name not in declared and name not in _PROXY_ARGS
    ]


def _needed_stages(dockerfile: df.Dockerfile, target: df.Stage) -> list[df.Stage]:
    """The stages ``target`` needs, dependencies first, ending with ``target``.

    FROM may name an earlier stage; COPY --from may name any stage, earlier
    or later, as BuildKit resolves them once all stages are known. Stages
    nothing needs are left out.

    Raises:
        DockerfileError: stages that depend on each other in a circle.
    """
    by_name = {stage.name.lower(): stage for stage in dockerfile.stages if stage.name}
    by_name.update({str(stage.index): stage for stage in dockerfile.stages})

    def dependencies(stage: df.Stage) -> list[df.Stage]:
        found = []
        base = by_name.get(stage.base.image.lower())
        if base is not None and base.index < stage.index:
            found.append(base)
        for instruction in stage.instructions:
            if isinstance(instruction, df.Copy) and "from" in instruction.flags:
                source = by_name.get(instruction.flags["from"].lower())
                if source is not None and source is not stage:
                    found.append(source)
        return found

    order: list[df.Stage] = []
    visiting: set[int] = set()

    def visit(stage: df.Stage) -> None:
        if stage in order:
            return
        if stage.index in visiting:
            raise DockerfileError(
                f"circular dependency detected on stage: {stage.name or stage.index}",
                path=dockerfile.path,
                line=stage.base.location.line,
            )
        visiting.add(stage.index)
        for dependency in dependencies(stage):
            visit(dependency)
        visiting.discard(stage.index)
        order.append(stage)

    visit(target)
    return order


class Builder:
    """Builds Dockerfiles into images in a store, with a build cache.

    Args:
        store: where base images are found and results are written.
        on_event: called with every :mod:`layercake.events` event of every
            build, unless a build is given its own callback.
    """

    def __init__(self, store: Store, *, on_event: EventCallback | None = None) -> None:
        self.store = store
        self.on_event = on_event

    def build(
        self,
        context: str | os.PathLike[str] | None,
        *,
        dockerfile: str | os.PathLike[str] | None = None,
        text: str | None = None,
        tag: str | Sequence[str] | None = None,
        build_args: Mapping[str, str] | None = None,
        target: str | None = None,
        no_cache: bool = False,
        secrets: Mapping[str, str | os.PathLike[str]] | None = None,
        pull: PullPolicy = "missing",
        on_event: EventCallback | None = None,
    ) -> Image:
        """Build an image and tag it; return it.

        Args:
            context: the build context directory, or ``None`` for none.
            dockerfile: the Dockerfile's path; relative paths are taken in
                ``context``. Default: ``Dockerfile`` in the context.
            text: the Dockerfile's text, instead of a file.
            tag: one or more names to tag the result with.
            build_args: values for ``ARG`` instructions (``--build-arg``).
            target: the stage to build; default the last one.
            no_cache: run every step even when the cache has its result.
            secrets: files for ``RUN --mount=type=secret``, by id.
            pull: when to pull a FROM image from its registry: only when the
                store lacks it (``"missing"``, Docker's default), every time
                (``"always"``, ``--pull``), or never (``"never"``).
            on_event: receives this build's events.

        Raises:
            DockerfileError: the Dockerfile cannot be parsed, or names a base
                image the store lacks and cannot pull (with file and line).
            BuildContextError: a COPY or ADD source is missing or outside the
                context.
            BuildStepFailed: a RUN command exited non-zero; nothing is tagged.
            InvalidReference: a tag is not a valid image reference.
            RuntimeUnavailable: a RUN step needs a runtime this machine lacks.
        """
        started = time.monotonic()
        tags = [tag] if isinstance(tag, str) else list(tag or [])
        stored_tags = [tag_name(name) for name in tags]
        root = Path(context) if context is not None else None
        parsed = self._parse(root, dockerfile, text)
        digests = FileDigests(self.store.path / "cache" / "file-digests.sqlite")
        build = _Build(
            self.store,
            parsed,
            BuildContext(root, digests=digests),
            build_args or {},
            no_cache,
            on_event or self.on_event,
        )
        build.secrets = {name: Path(path) for name, path in (secrets or {}).items()}
        build.pull = pull
        try:
            state = self._run_stages(build, target)
        finally:
            digests.close()
            build.step_history.close()
        self._warn_unused_args(build)

        image = self.store._load(state.manifest_digest)
        for name in tags:
            image.tag(name)
        if not tags:
            # An untagged result is still an image (dangling, as in Docker),
            # so prune keeps it until it is removed or the tag moves on.
            self.store._directory.add_untagged(image.descriptor)
        build.emit(
            BuildFinished(image.id, tuple(stored_tags), time.monotonic() - started)
        )
        logger.info("built %s in %.2fs", image.short_id, time.monotonic() - started)
        return image

    abuild = in_worker_thread(
        build,
        """:meth:`build` without blocking the event loop.

        The build runs in a worker thread; events reach ``on_event`` from that
        thread. Takes the same arguments and raises the same errors.
        """,
    )

    def _parse(
        self,
        root: Path | None,
        dockerfile: str | os.PathLike[str] | None,
        text: str | None,
    ) -> df.Dockerfile:
        if root is not None and not root.is_dir():
            reason = "is not a directory" if root.exists() else "does not exist"
            raise BuildContextError(
                f"unable to prepare the build context: {root} {reason}",
                source=str(root),
            )
        if text is not None:
            return df.parse(text, path=str(dockerfile) if dockerfile else None)
        path = Path(dockerfile) if dockerfile is not None else Path("Dockerfile")
        if not path.is_absolute() and root is not None:
            path = root / path
        if path.is_dir():
            raise BuildError(f"cannot read Dockerfile: {path} is a directory")
        if not path.is_file():
            raise BuildError(f"cannot read Dockerfile: {path} does not exist")
        return df.parse(path)

    def _run_stages(self, build: _Build, target: str | None) -> BuildState:
        parsed = build.dockerfile
        if not parsed.stages:
            raise DockerfileError(
                "the Dockerfile has no FROM instruction", path=parsed.path
            )
        last = parsed.stage(target) if target is not None else parsed.stages[-1]
        stages = _needed_stages(parsed, last)
        build.total = sum(len(stage.instructions) + 1 for stage in stages)
        build.resolve_globals()

        state: BuildState | None = None
        for stage in stages:
            build.step += 1
            started = time.monotonic()
            build.emit(
                StepStarted(build.step, build.total, _display(stage.base), stage.name)
            )
            with build.step_errors(stage.base):
                base = build.base_state(stage)
            build.emit(
                StepFinished(
                    build.step, time.monotonic() - started, False, base.image_id
                )
            )
            state = _StageBuild(build, stage, base).run_all()
            if stage.name:
                build.built[stage.name.lower()] = state
            build.built[str(stage.index)] = state
        assert state is not None
        return state

    def _warn_unused_args(self, build: _Build) -> None:
        for name in sorted(set(build.build_args) - build.used_args):
            message = _unused_arg_message(name)
            logger.warning(message)
            build.emit(BuildWarning(message))
