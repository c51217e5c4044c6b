"""The image and system verbs of the layercake command."""

from __future__ import annotations

import json

import pytest

from layercake.cli import main


@pytest.fixture
def cli(store):
    def run(*args: str) -> int:
        return main(["--store", str(store.path), *args])

    return run


def test_tag_rmi_and_images_filters(cli, busybox, capfd):
    """tag adds a name; rmi of one of two tags only untags, as docker does."""
    assert cli("tag", "busybox", "mybox:1") == 0
    assert cli("images", "-f", "reference=mybox", "--format", "json") == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [(row["Repository"], row["Tag"]) for row in rows] == [("mybox", "1")]
    assert cli("rmi", "mybox:1") == 0
    assert capfd.readouterr().out == "Untagged: mybox:1\n"
    assert cli("images", "-q") == 0
    assert capfd.readouterr().out == busybox.short_id + "\n"


def test_history_lists_instructions_newest_first(cli, busybox, capfd):
    """history shows each instruction with its layer size."""
    assert cli("history", "--no-trunc", "busybox") == 0
    lines = capfd.readouterr().out.splitlines()
    assert lines[0].split() == ["CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert 'CMD ["sh"]' in lines[1] and lines[1].split()[-1] == "0B"
    assert "ADD rootfs.tar / # buildkit" in lines[2]


def test_inspect_of_an_image_uses_dockers_field_names(cli, busybox, capfd):
    """inspect prints a JSON array with Id, RepoTags, Config..."""
    assert cli("inspect", "busybox") == 0
    (details,) = json.loads(capfd.readouterr().out)
    assert (details["Id"], details["RepoTags"]) == (busybox.id, ["busybox:latest"])
    assert details["Config"]["Cmd"] == ["sh"]


def test_inspect_of_an_unknown_name_is_125(cli, store, capfd):
    """An unknown name is one line and exit 125."""
    assert cli("inspect", "nosuch") == 125
    assert capfd.readouterr().err == "layercake: error: no such object: nosuch\n"


def test_save_then_load_into_another_store(cli, busybox, capfd, tmp_path):
    """save -o writes a docker archive that load -i reads elsewhere."""
    archive = tmp_path / "busybox.tar"
    assert cli("save", "--progress", "plain", "-o", str(archive), "busybox") == 0
    err = capfd.readouterr().err
    assert err == f"{busybox.layers[0].digest.hex[:12]}: done (2.13MB)\n"
    other = tmp_path / "other"
    assert main(["--store", str(other), "load", "-i", str(archive)]) == 0
    assert capfd.readouterr().out == "Loaded image: busybox:latest\n"


def test_import_a_rootfs_with_changes(cli, store, busybox_rootfs, capfd):
    """import makes a one-layer image; -c sets its Cmd and Env."""
    assert (
        cli(
            "import",
            "-c",
            'CMD ["sh"]',
            "-c",
            "ENV A=1",
            str(busybox_rootfs),
            "imported:1",
        )
        == 0
    )
    capfd.readouterr()
    assert cli("inspect", "imported:1") == 0
    (details,) = json.loads(capfd.readouterr().out)
    assert details["Config"]["Cmd"] == ["sh"]
    assert details["Config"]["Env"] == ["A=1"]


def test_system_df_prune_verify_info_version(cli, busybox, capfd):
    """The housekeeping verbs answer without error on a healthy store."""
    assert cli("system", "df") == 0
    assert capfd.readouterr().out.splitlines()[0].split() == ["TYPE", "TOTAL", "SIZE"]
    assert cli("system", "prune") == 0
    assert capfd.readouterr().out.endswith("\n")
    assert cli("system", "verify") == 0
    assert capfd.readouterr().out.endswith(": 0 problems\n")
    assert cli("info") == 0
    assert "Overlay file system: yes" in capfd.readouterr().out
    assert cli("version") == 0
    assert capfd.readouterr().out.startswith("layercake 0.1.0\n")


def test_save_to_stdout_and_load_from_stdin(store, busybox, tmp_path):
    """save without -o writes the archive to stdout; load without -i reads stdin."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "layercake.cli"]
    saved = subprocess.run(
        [
            *command,
            "--store",
            str(store.path),
            "save",
            "--progress",
            "plain",
            "busybox",
        ],
        capture_output=True,
        check=True,
    )
    loaded = subprocess.run(
        [*command, "--store", str(tmp_path / "other"), "load"],
        input=saved.stdout,
        capture_output=True,
        check=True,
    )
    assert loaded.stdout == b"Loaded image: busybox:latest\n"


def test_output_cut_short_by_a_closed_pipe_is_not_an_error(store, busybox):
    """images | head: the closed pipe ends the command quietly with 0."""
    import subprocess
    import sys

    result = subprocess.run(
        f"{sys.executable} -m layercake.cli --store {store.path} images "
        "--format json | head -c 1",
        shell=True,
        capture_output=True,
        check=True,
    )
    assert (result.stdout, result.stderr) == (b"{", b"")


def test_json_format_for_scripts(cli, busybox, capfd):
    """history, system df, version, info and volume ls speak JSON on request."""
    assert cli("history", "--format", "json", "busybox") == 0
    first = json.loads(capfd.readouterr().out.splitlines()[0])
    assert (first["CreatedBy"], first["EmptyLayer"], first["Size"]) == (
        'CMD ["sh"]',
        True,
        0,
    )
    assert cli("system", "df", "--format", "json") == 0
    assert json.loads(capfd.readouterr().out)["images"] == 1
    assert cli("version", "--format", "json") == 0
    assert json.loads(capfd.readouterr().out)["Version"] == "0.1.0"
    assert cli("info", "--format", "json") == 0
    assert json.loads(capfd.readouterr().out)["overlay"] is True
    assert cli("volume", "ls", "--format", "json") == 0
    assert capfd.readouterr().out == ""


def test_prune_by_cache_size_and_age(cli, busybox, store, capfd, tmp_path):
    """system prune --cache-max-size 0 drops the build cache and says so."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nENV A=1\n")
    assert cli("build", str(context)) == 0
    capfd.readouterr()
    assert cli("system", "prune", "--cache-older-than", "1h") == 0
    assert "Deleted build cache entries" not in capfd.readouterr().out
    assert cli("system", "prune", "--cache-max-size", "0") == 0
    assert "Deleted build cache entries: " in capfd.readouterr().out
    assert cli("system", "prune", "--cache-older-than", "soon") == 125
    assert capfd.readouterr().err == (
        "layercake: error: invalid duration 'soon': e.g. 30m, 24h or 7d\n"
    )
