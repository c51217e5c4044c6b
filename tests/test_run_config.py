"""Tests of Docker's Entrypoint/Cmd/Env rules for a container's process."""

from pathlib import Path

import pytest

from layercake._layer_stack import LayerStack
from layercake._run_config import RunConfig, argv, merge_env, process_spec
from layercake.errors import ContainerConfigError
from layercake.store import ContainerConfig

IMAGE = ContainerConfig(entrypoint=("/entry",), cmd=("default",), env=("A=1",))


def test_command_replaces_cmd_and_keeps_entrypoint():
    """A command overrides Cmd only."""
    assert argv(IMAGE, RunConfig(command=("x",))) == ("/entry", "x")


def test_entrypoint_override_drops_the_image_cmd():
    """--entrypoint discards the image's Cmd, as docker run does."""
    assert argv(IMAGE, RunConfig(entrypoint=("/other",))) == ("/other",)


def test_empty_entrypoint_override_runs_the_command_alone():
    """--entrypoint '' clears the Entrypoint."""
    assert argv(IMAGE, RunConfig(entrypoint=(), command=("ls",))) == ("ls",)


def test_no_command_anywhere_is_a_clear_error():
    """An image with no Entrypoint or Cmd and no command cannot run."""
    with pytest.raises(ContainerConfigError) as caught:
        argv(ContainerConfig(), RunConfig())
    assert str(caught.value) == (
        "no command specified: the image has no Entrypoint or Cmd and none was given"
    )


def test_merge_env_replaces_by_name_and_keeps_order():
    """Overrides replace variables of the same name in place."""
    assert merge_env(["A=1", "B=2"], ["B=3", "C=4"]) == ("A=1", "B=3", "C=4")


def test_process_spec_adds_path_and_home(tmp_path: Path):
    """PATH and HOME are set when the image does not set them."""
    spec = process_spec(IMAGE, RunConfig(), LayerStack((tmp_path,)))
    assert spec.env == (
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "A=1",
        "HOME=/",
    )
    assert (spec.args, spec.cwd, spec.uid, spec.gid) == (
        ("/entry", "default"),
        "/",
        0,
        0,
    )
