"""The typed values a parsed Dockerfile is made of.

Every value is a frozen attrs class. Instruction fields hold the raw text as
written (quotes, escapes and ``$VAR`` references still in); the builder
expands them with :func:`layercake.dockerfile.expand` under its own scoping
rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

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
class From:
    """``FROM [--platform=P] image [AS name]``; ``name`` is lower case."""

    image: str
    name: str | None
    platform: str | None
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="FROM", init=False)


@attrs.frozen
class Arg:
    """One name of an ``ARG`` instruction and its raw default, if any."""

    name: str
    default: str | None
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="ARG", init=False)


@attrs.frozen
class Env:
    """``ENV`` pairs; keys and values raw (quotes still in)."""

    pairs: tuple[tuple[str, str], ...]
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="ENV", init=False)


@attrs.frozen
class Label:
    """``LABEL`` pairs; keys and values raw (quotes still in)."""

    pairs: tuple[tuple[str, str], ...]
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="LABEL", init=False)


@attrs.frozen
class Run:
    """``RUN``: its command, its flags (every flag a tuple, ``--mount`` may
    repeat) and its heredocs in the order they were opened."""

    command: Command
    flags: Mapping[str, tuple[str, ...]] = attrs.field(converter=_tuple_map)
    heredocs: tuple[Heredoc, ...] = ()
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="RUN", init=False)


@attrs.frozen
class Cmd:
    """``CMD``: the default command of the image."""

    command: Command
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="CMD", init=False)


@attrs.frozen
class Entrypoint:
    """``ENTRYPOINT``: the entry point of the image."""

    command: Command
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="ENTRYPOINT", init=False)


@attrs.frozen
class Shell:
    """``SHELL [...]``: the shell used by later shell-form commands."""

    args: tuple[str, ...]
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="SHELL", init=False)


@attrs.frozen
class Copy:
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
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="COPY", init=False)


@attrs.frozen
class Add:
    """``ADD``: like :class:`Copy`, with ADD's own flags."""

    sources: tuple[str, ...]
    dest: str
    flags: Mapping[str, str] = attrs.field(converter=_str_map)
    heredocs: tuple[Heredoc, ...] = ()
    excludes: tuple[str, ...] = ()
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="ADD", init=False)


@attrs.frozen
class Workdir:
    """``WORKDIR path``; the whole rest of the line, raw."""

    path: str
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="WORKDIR", init=False)


@attrs.frozen
class User:
    """``USER user[:group]``; raw."""

    user: str
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="USER", init=False)


@attrs.frozen
class Expose:
    """``EXPOSE``: the whitespace-separated raw port words.

    Each word goes through :func:`expand_words` (as BuildKit does), which may
    turn one word into several.
    """

    ports: tuple[str, ...]
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="EXPOSE", init=False)


@attrs.frozen
class Volume:
    """``VOLUME``: raw paths, from the JSON list or split on whitespace."""

    paths: tuple[str, ...]
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="VOLUME", init=False)


@attrs.frozen
class StopSignal:
    """``STOPSIGNAL signal``; raw."""

    signal: str
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="STOPSIGNAL", init=False)


@attrs.frozen
class Maintainer:
    """``MAINTAINER name`` (deprecated, still accepted)."""

    name: str
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="MAINTAINER", init=False)


@attrs.frozen
class OnBuild:
    """``ONBUILD trigger``: the raw text of the inner instruction.

    :func:`layercake.dockerfile.parse_instruction` turns ``trigger`` into an
    instruction when a child image is built.
    """

    trigger: str
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="ONBUILD", init=False)


@attrs.frozen
class Healthcheck:
    """``HEALTHCHECK``: ``command`` is ``None`` for ``NONE``; flags raw."""

    command: Command | None
    flags: Mapping[str, str] = attrs.field(converter=_str_map)
    location: Location = attrs.field(kw_only=True)
    original: str = attrs.field(kw_only=True, default="")
    keyword: str = attrs.field(default="HEALTHCHECK", init=False)


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
