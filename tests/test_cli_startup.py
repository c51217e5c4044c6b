"""Tests of how the layercake command starts: which verbs and modules it loads."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from layercake import cli


def _verbs(parser: argparse.ArgumentParser) -> list[str]:
    (action,) = (
        action
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    return list(action.choices)


@pytest.mark.parametrize("module", sorted(cli.VERBS))
def test_each_verb_module_registers_exactly_the_verbs_listed_for_it(module):
    """VERBS names, for each module, the verbs its register() adds, in order."""
    assert _verbs(cli._parser((module,))) == list(cli.VERBS[module])


def test_the_full_parser_has_every_verb_in_the_listed_order():
    """Without a known verb the parser has every verb, grouped by module."""
    expected = [verb for verbs in cli.VERBS.values() for verb in verbs]
    assert _verbs(cli._parser()) == expected


@pytest.mark.parametrize(
    ("argv", "groups"),
    [
        (["run", "--rm", "busybox", "true"], ("layercake.cli._containers",)),
        (["--store", "/s", "--debug", "build", "."], ("layercake.cli._build",)),
        (["--store=/s", "images"], ("layercake.cli._images",)),
        (["volume", "ls"], ("layercake.cli._volumes",)),
        (["--help"], tuple(cli.VERBS)),
        (["--sto", "/s", "run", "x"], tuple(cli.VERBS)),
        (["nonsense"], tuple(cli.VERBS)),
        ([], tuple(cli.VERBS)),
    ],
)
def test_a_known_verb_loads_only_its_module_and_anything_else_loads_all(argv, groups):
    """A verb after full global options picks its module; help or doubt picks all."""
    assert cli._groups_for(argv) == groups


def _subparser(parser: argparse.ArgumentParser, verb: str) -> argparse.ArgumentParser:
    (action,) = (
        action
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    return action.choices[verb]


def _options(parser: argparse.ArgumentParser) -> list[tuple[object, ...]]:
    return [
        (tuple(a.option_strings), a.dest, a.nargs, a.default, a.help)
        for a in parser._actions
    ]


def test_a_command_line_naming_its_verb_gets_a_parser_of_that_verb_alone():
    """`layercake run ...` builds the run verb's parser and no other."""
    argv = ["--store", "/s", "run", "--rm", "busybox", "true"]
    parser = cli._parser(cli._groups_for(argv), cli._verb_of(argv))
    assert _verbs(parser) == ["run"]
    assert parser.parse_args(argv).rm is True


@pytest.mark.parametrize(
    ("module", "verb"),
    [(module, verb) for module, verbs in cli.VERBS.items() for verb in verbs],
)
def test_a_verb_registered_alone_takes_the_options_it_takes_among_all(module, verb):
    """Each verb's parser alone has exactly the options of the full parser's."""
    alone = _subparser(cli._parser((module,), verb), verb)
    full = _subparser(cli._parser(), verb)
    assert _options(alone) == _options(full)
    assert alone.format_help() == full.format_help()


def test_parsing_a_run_command_line_loads_no_builder_or_image_verbs():
    """`layercake run` imports neither the builder nor the other verbs' modules."""
    code = (
        "import sys; from layercake import cli; "
        "argv = ['run', '--rm', 'busybox', 'true']; "
        "cli._parser(cli._groups_for(argv), cli._verb_of(argv)).parse_args(argv); "
        "print(sorted(m for m in sys.modules if m.startswith('layercake')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[0] == str(
        [
            "layercake",
            "layercake._signals",
            "layercake._sizes",
            "layercake.cli",
            "layercake.cli._containers",
            "layercake.cli._format",
            "layercake.errors",
        ]
    )
