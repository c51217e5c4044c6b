"""Tests of Docker's User value resolution against an image's files."""

from pathlib import Path

import pytest

from layercake._layer_stack import LayerStack
from layercake._users import ResolvedUser, resolve_user
from layercake.errors import ContainerConfigError

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:app\napp:x:1000:\n"


@pytest.fixture
def stack(tmp_path: Path) -> LayerStack:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    return LayerStack((tmp_path,))


def test_empty_user_is_root_with_home_from_passwd(stack):
    """No User means root, with root's home directory."""
    assert resolve_user("", stack) == ResolvedUser(0, 0, (), "/root")


def test_name_gives_its_ids_and_supplementary_groups(stack):
    """A name takes uid, gid and home from passwd and groups it is a member of."""
    assert resolve_user("app", stack) == ResolvedUser(1000, 1000, (50,), "/home/app")


def test_uid_not_in_passwd_runs_with_gid_zero_and_home_root(stack):
    """A numeric uid unknown to the image is used as is, as Docker does."""
    assert resolve_user("4242", stack) == ResolvedUser(4242, 0, (), "/")


def test_name_and_group_name(stack):
    """`name:group` looks both up; no supplementary groups are added."""
    assert resolve_user("app:staff", stack) == ResolvedUser(1000, 50, (), "/home/app")


def test_unknown_user_name_is_a_clear_error(stack):
    """A name missing from passwd raises an error naming it."""
    with pytest.raises(ContainerConfigError) as caught:
        resolve_user("nobody", stack)
    assert str(caught.value) == (
        "unable to find user nobody: no matching entries in passwd file"
    )


def test_unknown_group_name_is_a_clear_error(stack):
    """A group name missing from the group file raises an error naming it."""
    with pytest.raises(ContainerConfigError) as caught:
        resolve_user("app:wheel", stack)
    assert str(caught.value) == (
        "unable to find group wheel: no matching entries in group file"
    )
