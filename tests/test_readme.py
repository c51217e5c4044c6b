"""The README's two commands are the ones CI and users really run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, re.DOTALL)
    return [line for block in blocks for line in block.strip().splitlines()]


def test_readme_has_exactly_two_setup_commands():
    """One command runs the main job, one runs the test suite."""
    commands = readme_commands()
    assert len(commands) == 2
    assert "examples/demo.sh" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_with_the_runtime_required():
    """.ci/run calls exactly the README's test command."""
    ci = (ROOT / ".ci/run").read_text()
    assert readme_commands()[1] in ci.splitlines()
    assert "LAYERCAKE_REQUIRE_RUNTIME=1" in readme_commands()[1]
