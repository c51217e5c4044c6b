"""layercake's Dockerfile front end: text in, typed instructions out.

:func:`parse` follows the Dockerfile reference as BuildKit implements it:
parser directives (``# syntax=``, ``# escape=``, ``# check=``), comments,
line continuations with the active escape character, JSON (exec) and shell
forms, per-instruction ``--flags``, heredocs and build stages. It does no
I/O beyond reading the file it is given, and expands nothing: instruction
fields hold raw text, which the builder passes to :func:`expand` (one word)
or :func:`expand_words` (split into words) with the variables in scope.

Arguments are split the way BuildKit splits them before expansion: COPY,
ADD, VOLUME and EXPOSE shell-form arguments on spaces and tabs (quotes do
not group; use the JSON form for paths with spaces), ARG/ENV/LABEL on
unquoted whitespace with the quotes kept. Each COPY/ADD/VOLUME item is then
one :func:`expand` word; each EXPOSE item goes through :func:`expand_words`.

Heredocs: ``RUN``, ``COPY`` and ``ADD`` in shell form may open here-documents
(``<<EOF``, ``<<-EOF`` which strips leading tabs, ``<<'EOF'``/``<<"EOF"``
whose body is not expanded; several on one line are read one after the
other). They are in the instruction's ``heredocs`` field, a tuple of
:class:`Heredoc` in the order they were opened (empty by default).
``Run.command`` keeps the line as written (``<<EOF`` included); COPY/ADD
leave heredoc markers out of ``sources`` and the builder writes each
heredoc's ``content`` to a file named ``name``. Bodies use ``\\n`` line
ends whatever the file used.

Locations: ``line`` is the keyword's 1-based line, ``end_line`` the last
physical line of the instruction (heredoc terminator included), ``column``
the keyword's column. ``original`` is the instruction's source from the
keyword to ``end_line``, as written.
"""

from __future__ import annotations

from layercake.dockerfile._dump import dump
from layercake.dockerfile._durations import parse_duration
from layercake.dockerfile._instructions import (
    KEYWORDS,
    Add,
    Arg,
    Cmd,
    Command,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    FrozenMap,
    Healthcheck,
    Heredoc,
    Instruction,
    Label,
    Location,
    Maintainer,
    OnBuild,
    Run,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from layercake.dockerfile._parse import parse, parse_instruction
from layercake.dockerfile._shell import expand, expand_heredoc, expand_words

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
    "dump",
    "expand",
    "expand_heredoc",
    "expand_words",
    "parse",
    "parse_duration",
    "parse_instruction",
]
