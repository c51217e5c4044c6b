"""The typed values a parsed Dockerfile is made of.

Every value is a frozen attrs class. Instruction fields hold the raw text as
written (quotes, escapes and ``$VAR`` references still in); the builder
expands them with :func:`layercake.dockerfile.expand` under its own scoping
rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar, TypeVar

import attrs

from layercake.errors import DockerfileError

__all__ = [
    "KEYWORDS",
    "Add",
    "Arg",
    "Cmd",
    "Command",
    "Copy",
    "Dockerfile",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "FrozenMap",
    "Healthcheck",
    "Heredoc",
    "Instruction",
    "Label",
    "Location",
    "Maintainer",
    "OnBuild",
    "Run",
    "Shell",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
]

V = TypeVar("V")

KEYWORDS = (
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)
"""Every instruction keyword the Dockerfile reference defines, upper case."""


class FrozenMap(Mapping[str, V]):
    """An immutable, hashable mapping with a stable (insertion) order.

    Used for flags and directives so that instructions stay hashable values.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, V] | None = None) -> None:
        self._items: dict[str, V] = dict(items or {})

    def __getitem__(self, key: str) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


def _str_map(value: Mapping[str, str]) -> FrozenMap[str]:
    return value if isinstance(value, FrozenMap) else FrozenMap(value)


def _tuple_map(value: Mapping[str, tuple[str, ...]]) -> FrozenMap[tuple[str, ...]]:
    return value if isinstance(value, FrozenMap) else FrozenMap(value)


@attrs.frozen
class Location:
    """Where an instruction is in its Dockerfile.

    ``line`` is the 1-based line of the keyword, ``end_line`` the last physical
    line the instruction uses (continuations and heredoc bodies included) and
    ``column`` the 1-based column of the keyword.
    """

    path: str | None
    line: int
    end_line: int
    column: int = 1


@attrs.frozen
class Command:
    """A command in shell form or exec (JSON) form.

    Shell form: ``args == (text,)`` and ``shell`` is true; ``text`` has the
    continuation lines joined, exactly as it is handed to the shell. Exec
    form: ``args`` is the JSON list and ``shell`` is false. An instruction
    written with no command at all (``CMD`` alone) is the empty exec form.
    """

    args: tuple[str, ...]
    shell: bool


@attrs.frozen
class Heredoc:
    """A here-document attached to RUN, COPY or ADD.

    ``name`` is the delimiter with its quotes removed (for COPY/ADD it is also
    the file name the content is written to), ``content`` the body lines each
    ending in ``\\n`` (leading tabs already removed when ``chomp``),
    ``expand`` is false when the delimiter was quoted (no ``$`` expansion of
    the body) and ``chomp`` is true for the ``<<-`` form.
    """

    name: str
    content: str
    expand: bool
    chomp: bool


@attrs.frozen
class _Node:
    """What every instruction has: where it is and its text as written."""

    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")


@attrs.frozen
class From(_Node):
    """``FROM [--platform=P] image [AS name]``; ``name`` is lower case."""

    image: str
    name: str | None
    platform: str | None
    keyword: ClassVar[str] = "FROM"


@attrs.frozen
class Arg(_Node):
    """One name of an ``ARG`` instruction and its raw default, if any."""

    name: str
    default: str | None
    keyword: ClassVar[str] = "ARG"


@attrs.frozen
class Env(_Node):
    """``ENV`` pairs; keys and values raw (quotes still in)."""

    pairs: tuple[tuple[str, str], ...]
    keyword: ClassVar[str] = "ENV"


@attrs.frozen
class Label(_Node):
    """``LABEL`` pairs; keys and values raw (quotes still in)."""

    pairs: tuple[tuple[str, str], ...]
    keyword: ClassVar[str] = "LABEL"


@attrs.frozen
class Run(_Node):
    """``RUN``: its command, its flags (every flag a tuple, ``--mount`` may
    repeat) and its heredocs in the order they were opened."""

    command: Command
    flags: Mapping[str, tuple[str, ...]] = attrs.field(converter=_tuple_map)
    heredocs: tuple[Heredoc, ...] = ()
    keyword: ClassVar[str] = "RUN"


@attrs.frozen
class Cmd(_Node):
    """``CMD``: the default command of the image."""

    command: Command
    keyword: ClassVar[str] = "CMD"


@attrs.frozen
class Entrypoint(_Node):
    """``ENTRYPOINT``: the entry point of the image."""

    command: Command
    keyword: ClassVar[str] = "ENTRYPOINT"


@attrs.frozen
class Shell(_Node):
    """``SHELL [...]``: the shell used by later shell-form commands."""

    args: tuple[str, ...]
    keyword: ClassVar[str] = "SHELL"


@attrs.frozen
class Copy(_Node):
    """``COPY``: raw source paths (heredoc markers excluded), raw destination,
    flags by name without ``--`` (booleans as ``"true"``/``"false"``).

    ``--exclude`` may repeat: ``excludes`` holds every pattern in order and
    ``flags["exclude"]`` the same patterns joined by ``\\n``. Heredoc sources
    are in ``heredocs``.
    """

    sources: tuple[str, ...]
    dest: str
    flags: Mapping[str, str] = attrs.field(converter=_str_map)
    heredocs: tuple[Heredoc, ...] = ()
    excludes: tuple[str, ...] = ()
    keyword: ClassVar[str] = "COPY"


@attrs.frozen
class Add(_Node):
    """``ADD``: like :class:`Copy`, with ADD's own flags."""

    sources: tuple[str, ...]
    dest: str
    flags: Mapping[str, str] = attrs.field(converter=_str_map)
    heredocs: tuple[Heredoc, ...] = ()
    excludes: tuple[str, ...] = ()
    keyword: ClassVar[str] = "ADD"


@attrs.frozen
class Workdir(_Node):
    """``WORKDIR path``; the whole rest of the line, raw."""

    path: str
    keyword: ClassVar[str] = "WORKDIR"


@attrs.frozen
class User(_Node):
    """``USER user[:group]``; raw."""

    user: str
    keyword: ClassVar[str] = "USER"


@attrs.frozen
class Expose(_Node):
    """``EXPOSE``: the whitespace-separated raw port words.

    Each word goes through :func:`expand_words` (as BuildKit does), which may
    turn one word into several.
    """

    ports: tuple[str, ...]
    keyword: ClassVar[str] = "EXPOSE"


@attrs.frozen
class Volume(_Node):
    """``VOLUME``: raw paths, from the JSON list or split on whitespace."""

    paths: tuple[str, ...]
    keyword: ClassVar[str] = "VOLUME"


@attrs.frozen
class StopSignal(_Node):
    """``STOPSIGNAL signal``; raw."""

    signal: str
    keyword: ClassVar[str] = "STOPSIGNAL"


@attrs.frozen
class Maintainer(_Node):
    """``MAINTAINER name`` (deprecated, still accepted)."""

    name: str
    keyword: ClassVar[str] = "MAINTAINER"


@attrs.frozen
class OnBuild(_Node):
    """``ONBUILD trigger``: the raw text of the inner instruction.

    :func:`layercake.dockerfile.parse_instruction` turns ``trigger`` into an
    instruction when a child image is built.
    """

    trigger: str
    keyword: ClassVar[str] = "ONBUILD"


@attrs.frozen
class Healthcheck(_Node):
    """``HEALTHCHECK``: ``command`` is ``None`` for ``NONE``; flags raw."""

    command: Command | None
    flags: Mapping[str, str] = attrs.field(converter=_str_map)
    keyword: ClassVar[str] = "HEALTHCHECK"


Instruction = (
    Add
    | Arg
    | Cmd
    | Copy
    | Entrypoint
    | Env
    | Expose
    | From
    | Healthcheck
    | Label
    | Maintainer
    | OnBuild
    | Run
    | Shell
    | StopSignal
    | User
    | Volume
    | Workdir
)
"""Any one instruction of a stage."""


@attrs.frozen
class Stage:
    """One build stage: its ``FROM`` and the instructions that follow it."""

    index: int
    name: str | None
    base: From
    instructions: tuple[Instruction, ...]


@attrs.frozen
class Dockerfile:
    """A parsed Dockerfile.

    ``directives`` maps lower-case directive names (``syntax``, ``escape``,
    ``check``) to their values; ``escape`` is the active escape character;
    ``global_args`` are the ARGs before the first FROM.
    """

    path: str | None
    directives: Mapping[str, str] = attrs.field(converter=_str_map)
    escape: str = "\\"
    global_args: tuple[Arg, ...] = ()
    stages: tuple[Stage, ...] = ()

    def stage(self, name_or_index: str | int) -> Stage:
        """Return the stage with this name (case-insensitive) or 0-based index.

        Raises:
            DockerfileError: no stage has that name or index.
        """
        if isinstance(name_or_index, int):
            if 0 <= name_or_index < len(self.stages):
                return self.stages[name_or_index]
            raise DockerfileError(
                f"no stage with index {name_or_index} "
                f"(the dockerfile has {len(self.stages)})",
                path=self.path,
            )
        wanted = name_or_index.lower()
        for stage in self.stages:
            if stage.name == wanted:
                return stage
        raise DockerfileError(f"no stage named {name_or_index!r}", path=self.path)
