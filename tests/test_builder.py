"""Tests of building Dockerfiles into images: layers, config, history, cache."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

import layercake
from layercake.errors import (
    BuildContextError,
    BuildStepFailed,
    DockerfileError,
    DockerfileSyntaxError,
    InvalidReference,
)
from layercake.events import BuildWarning, StepCached, StepStarted

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def layer_names(layer: layercake.Layer) -> list[str]:
    with layer.open() as blob, tarfile.open(fileobj=blob) as tar:
        return [member.name for member in tar.getmembers()]


@pytest.fixture
def build(store, write_context):
    """Return a function that builds a context and returns (image, events)."""

    def run(store, directory: Path, dockerfile: str, **files: str):
        events: list = []
        context = write_context(directory, dockerfile, **files)
        image = layercake.Builder(store).build(context, on_event=events.append)
        return image, events

    return run


def test_busybox_base_has_one_layer_and_the_history_of_each_instruction(busybox):
    """FROM scratch + ADD rootfs.tar + CMD gives one layer and two history entries."""
    assert len(busybox.layers) == 1
    assert busybox.layers[0].media_type == "application/vnd.oci.image.layer.v1.tar"
    assert busybox.config.config.cmd == ("sh",)
    assert busybox.config.config.env == (PATH_ENV,)
    assert [(h.created_by, h.empty_layer) for h in busybox.history] == [
        ("ADD rootfs.tar / # buildkit", False),
        ('CMD ["sh"]', True),
    ]
    assert busybox.tags == ("busybox:latest",)


def test_add_of_a_local_tar_extracts_it_into_the_layer(busybox):
    """The rootfs tarball's entries land in the layer, not the tarball itself."""
    names = layer_names(busybox.layers[0])
    assert "bin/busybox" in names
    assert "etc/passwd" in names
    assert "rootfs.tar" not in names


def test_metadata_instructions_change_only_the_config(busybox, store, tmp_path, build):
    """ENV, LABEL, WORKDIR of an existing dir, USER, EXPOSE, ENTRYPOINT: no layer."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\n"
        'ENV A=1 B="two words"\n'
        "LABEL org.example.team=core\n"
        "WORKDIR /home\n"
        "WORKDIR app\n"
        "USER app\n"
        "EXPOSE 8080 53/udp\n"
        'ENTRYPOINT ["/bin/echo"]\n',
    )
    config = image.config.config
    assert [layer.digest for layer in image.layers] == [
        layer.digest for layer in busybox.layers
    ]
    assert config.env == (PATH_ENV, "A=1", "B=two words")
    assert config.labels == {"org.example.team": "core"}
    assert config.working_dir == "/home/app"
    assert config.user == "app"
    assert dict(config.exposed_ports) == {"53/udp": {}, "8080/tcp": {}}
    assert config.entrypoint == ("/bin/echo",)
    assert config.cmd is None
    assert [h.created_by for h in image.history[2:]] == [
        "ENV A=1 B=two words",
        "LABEL org.example.team=core",
        "WORKDIR /home",
        "WORKDIR /home/app",
        "USER app",
        "EXPOSE map[53/udp:{} 8080/tcp:{}]",
        'ENTRYPOINT ["/bin/echo"]',
    ]
    assert all(h.empty_layer for h in image.history[2:])


def test_rebuild_of_an_unchanged_context_is_all_cached(busybox, store, tmp_path, build):
    """A second build runs nothing, reports every step cached, same image id."""
    dockerfile = 'FROM busybox\nENV A=1\nCOPY a.txt /a.txt\nCMD ["cat", "/a.txt"]\n'
    first, _ = build(store, tmp_path / "ctx", dockerfile, **{"a.txt": "A\n"})
    second, events = build(store, tmp_path / "ctx", dockerfile, **{"a.txt": "A\n"})
    assert second.id == first.id
    assert [e.step for e in events if isinstance(e, StepCached)] == [2, 3, 4]
    assert [e.instruction for e in events if isinstance(e, StepStarted)] == [
        "FROM busybox",
        "ENV A=1",
        "COPY a.txt /a.txt",
        'CMD ["cat", "/a.txt"]',
    ]


def test_changing_a_copied_file_rebuilds_from_that_step(
    busybox, store, tmp_path, build
):
    """Steps before the changed COPY hit the cache; it and later ones run."""
    dockerfile = 'FROM busybox\nENV A=1\nCOPY a.txt /a.txt\nCMD ["cat", "/a.txt"]\n'
    build(store, tmp_path / "ctx", dockerfile, **{"a.txt": "A\n"})
    image, events = build(store, tmp_path / "ctx", dockerfile, **{"a.txt": "changed\n"})
    assert [e.step for e in events if isinstance(e, StepCached)] == [2]
    with image.layers[-1].open() as blob, tarfile.open(fileobj=blob) as tar:
        assert tar.extractfile("a.txt").read() == b"changed\n"


def test_touching_a_file_without_changing_it_keeps_the_cache(
    busybox, store, tmp_path, build
):
    """Modification times are not part of the cache key."""
    dockerfile = "FROM busybox\nCOPY a.txt /a.txt\n"
    first, _ = build(store, tmp_path / "ctx", dockerfile, **{"a.txt": "A\n"})
    (tmp_path / "ctx/a.txt").touch()
    second, events = build(store, tmp_path / "ctx", dockerfile)
    assert second.id == first.id
    assert [e.step for e in events if isinstance(e, StepCached)] == [2]


def test_copy_into_a_directory_keeps_names_and_creates_parents(
    busybox, store, tmp_path, build
):
    """COPY of two files to a dir ending in '/' puts both there, owned by root."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nCOPY a.txt b.txt /opt/app/\n",
        **{"a.txt": "A\n", "b.txt": "B\n"},
    )
    with image.layers[-1].open() as blob, tarfile.open(fileobj=blob) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["opt", "opt/app", "opt/app/a.txt", "opt/app/b.txt"]
        assert (members["opt/app/a.txt"].uid, members["opt/app/a.txt"].gid) == (0, 0)
        assert tar.extractfile("opt/app/b.txt").read() == b"B\n"


def test_copy_of_a_directory_copies_its_contents(busybox, store, tmp_path, build):
    """A source directory's contents, not the directory, land at the destination."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nCOPY src /app\n",
        **{"src__main.py": "print()\n", "src__pkg__mod.py": "x = 1\n"},
    )
    assert layer_names(image.layers[-1]) == [
        "app",
        "app/main.py",
        "app/pkg",
        "app/pkg/mod.py",
    ]


def test_copy_chown_and_chmod_set_owner_and_mode(busybox, store, tmp_path, build):
    """--chown by name resolves in the image's passwd; --chmod sets the mode."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nCOPY --chown=app:app --chmod=640 a.txt /home/app/a.txt\n",
        **{"a.txt": "A\n"},
    )
    with image.layers[-1].open() as blob, tarfile.open(fileobj=blob) as tar:
        member = tar.getmember("home/app/a.txt")
        assert (member.uid, member.gid, member.mode) == (1000, 1000, 0o640)
        # The parent already exists in busybox: its metadata is kept as is.
        home = tar.getmember("home/app")
        assert (home.uid, home.gid, home.mode) == (1000, 1000, 0o755)


def test_dockerignore_keeps_files_out_of_the_build(busybox, store, tmp_path, build):
    """An ignored file is neither copied nor part of the cache key."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nCOPY . /app/\n",
        **{".dockerignore": "*.log\n", "keep.txt": "k\n", "debug.log": "noise\n"},
    )
    assert layer_names(image.layers[-1]) == [
        "app",
        "app/.dockerignore",
        "app/Dockerfile",
        "app/keep.txt",
    ]


def test_copy_missing_source_names_the_source_and_context(
    busybox, store, tmp_path, write_context
):
    """A COPY of a file the context lacks fails naming it; nothing is tagged."""
    context = write_context(tmp_path / "ctx", "FROM busybox\nCOPY nope.txt /\n")
    with pytest.raises(BuildContextError) as caught:
        layercake.Builder(store).build(context, tag="broken:latest")
    assert caught.value.reason == (
        f"COPY source 'nope.txt' not found in the build context {context}"
    )
    assert (caught.value.step, caught.value.instruction) == (2, "COPY nope.txt /")
    assert store.images() == [busybox]


def test_copy_from_outside_the_context_is_refused(
    busybox, store, tmp_path, write_context
):
    """A source that climbs out of the context with '..' is refused."""
    context = write_context(tmp_path / "ctx", "FROM busybox\nCOPY ../secret /\n")
    (tmp_path / "secret").write_text("no\n")
    with pytest.raises(BuildContextError) as caught:
        layercake.Builder(store).build(context)
    assert caught.value.reason == (
        "COPY source '../secret' is outside the build context"
    )


def test_several_sources_need_a_directory_destination(
    busybox, store, tmp_path, write_context
):
    """COPY a b /dest (no trailing slash) is an error, as in Docker."""
    context = write_context(
        tmp_path / "ctx", "FROM busybox\nCOPY a b /dest\n", a="1", b="2"
    )
    with pytest.raises(BuildContextError) as caught:
        layercake.Builder(store).build(context)
    assert caught.value.reason == (
        "COPY with more than one source needs a destination that is a "
        "directory ending in '/': '/dest'"
    )


def test_from_an_image_not_in_the_store_names_the_reference(
    store, tmp_path, write_context
):
    """FROM of an unknown image fails with the reference, file and line."""
    context = write_context(tmp_path / "ctx", "# base\nFROM nosuch:1.0\n")
    with pytest.raises(DockerfileError) as caught:
        layercake.Builder(store).build(context, pull="never")
    error = caught.value
    assert (error.reason, error.path, error.line) == (
        "base image not found in the store: nosuch:1.0",
        str(context / "Dockerfile"),
        2,
    )


def test_unknown_instruction_names_the_file_and_line(store, tmp_path, write_context):
    """A misspelt instruction is a syntax error at its line."""
    context = write_context(tmp_path / "ctx", "FROM scratch\nCOPPY a /\n")
    with pytest.raises(DockerfileSyntaxError) as caught:
        layercake.Builder(store).build(context)
    assert (caught.value.path, caught.value.line) == (str(context / "Dockerfile"), 2)
    assert "COPPY" in caught.value.reason


def test_invalid_tag_is_refused_before_anything_is_built(
    store, tmp_path, write_context
):
    """A tag that is not a valid reference fails at once."""
    context = write_context(tmp_path / "ctx", "FROM scratch\n")
    with pytest.raises(InvalidReference):
        layercake.Builder(store).build(context, tag="Bad Name!")


def test_build_args_expand_in_from_and_in_the_stage(
    busybox, store, tmp_path, write_context
):
    """Global ARGs feed FROM; a stage ARG takes --build-arg over its default."""
    context = write_context(
        tmp_path / "ctx",
        "ARG BASE=nosuch\nFROM ${BASE}\nARG GREETING=hello\nENV MSG=${GREETING}-x\n",
    )
    image = layercake.Builder(store).build(
        context, build_args={"BASE": "busybox", "GREETING": "hi"}
    )
    assert image.config.config.env == (PATH_ENV, "MSG=hi-x")


def test_target_builds_only_the_stages_it_needs(
    busybox, store, tmp_path, write_context
):
    """--target stops at a stage; a later stage FROM an earlier one reuses it."""
    context = write_context(
        tmp_path / "ctx",
        "FROM busybox AS base\nENV STAGE=base\n"
        "FROM base AS final\nENV STAGE=final\n"
        "FROM nosuch AS unused\n",
    )
    image = layercake.Builder(store).build(context, target="final")
    assert image.config.config.env == (PATH_ENV, "STAGE=final")


@pytest.mark.usefixtures("container_runtime")
def test_run_step_adds_a_layer_with_only_its_changes(busybox, store, tmp_path, build):
    """RUN's writes become one layer holding just the new file."""
    image, _ = build(store, tmp_path / "ctx", "FROM busybox\nRUN echo hi > /hello\n")
    assert len(image.layers) == 2
    assert layer_names(image.layers[-1]) == ["hello"]
    assert image.history[-1].created_by == "RUN /bin/sh -c echo hi > /hello # buildkit"
    assert image.run(["cat", "/hello"]).stdout == b"hi\n"


@pytest.mark.usefixtures("container_runtime")
def test_run_deleting_a_file_writes_a_whiteout(busybox, store, tmp_path, build):
    """A file removed by RUN appears as an OCI whiteout in the layer."""
    image, _ = build(store, tmp_path / "ctx", "FROM busybox\nRUN rm /etc/group\n")
    assert layer_names(image.layers[-1]) == ["etc", "etc/.wh.group"]
    # hostname, hosts and resolv.conf are the runtime's mounts, as in Docker.
    result = image.run(["ls", "/etc"])
    assert result.stdout == b"hostname\nhosts\npasswd\nresolv.conf\n"


@pytest.mark.usefixtures("container_runtime")
def test_run_that_changes_nothing_adds_no_layer(busybox, store, tmp_path, build):
    """An empty diff adds history marked empty_layer and no layer, as BuildKit."""
    image, _ = build(store, tmp_path / "ctx", "FROM busybox\nRUN true\n")
    assert len(image.layers) == 1
    assert image.history[-1].empty_layer is True


@pytest.mark.usefixtures("container_runtime")
def test_run_sees_build_args_and_env_and_user(busybox, store, tmp_path, build):
    """RUN gets ARG values as env (ENV wins), and runs as the USER set."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nARG WHO=world\nENV PLACE=here\nUSER app\n"
        'RUN echo "$WHO $PLACE $(id -u)" > /tmp/out\n',
    )
    assert image.run(["cat", "/tmp/out"]).stdout == b"world here 1000\n"
    assert image.history[-1].created_by == (
        'RUN |1 WHO=world /bin/sh -c echo "$WHO $PLACE $(id -u)" > /tmp/out # buildkit'
    )


@pytest.mark.usefixtures("container_runtime")
def test_failing_run_reports_step_command_code_and_output_and_tags_nothing(
    busybox, store, tmp_path, write_context
):
    """A RUN exiting non-zero raises BuildStepFailed; the tag is not written."""
    context = write_context(
        tmp_path / "ctx",
        "FROM busybox\nRUN echo first; echo oops >&2; exit 3\n",
    )
    with pytest.raises(BuildStepFailed) as caught:
        layercake.Builder(store).build(context, tag="broken:latest")
    error = caught.value
    assert (error.step, error.exit_code, error.output_tail) == (2, 3, "first\noops")
    assert str(error) == (
        "step 2 (RUN echo first; echo oops >&2; exit 3): the command returned "
        "a non-zero code: 3\nfirst\noops"
    )
    assert [image.tags for image in store.images()] == [("busybox:latest",)]


@pytest.mark.usefixtures("container_runtime")
def test_run_of_a_missing_program_fails_the_step_with_127_and_the_reason(
    busybox, store, tmp_path, write_context
):
    """RUN in exec form of a program not in PATH fails its step with 127."""
    context = write_context(tmp_path / "ctx", 'FROM busybox\nRUN ["nosuchcmd"]\n')
    with pytest.raises(BuildStepFailed) as caught:
        layercake.Builder(store).build(context, tag="broken:latest")
    assert (caught.value.exit_code, str(caught.value)) == (
        127,
        'step 2 (RUN ["nosuchcmd"]): the command returned a non-zero code: 127\n'
        'exec: "nosuchcmd": executable file not found in $PATH',
    )


def test_dockerfile_given_as_text_builds_without_a_context(store):
    """Builder.build(None, text=...) builds a Dockerfile string."""
    image = layercake.Builder(store).build(
        None, text="FROM scratch\nLABEL a=b\n", tag="labels:1"
    )
    assert image.config.config.labels == {"a": "b"}
    assert store.image("labels:1") == image


def test_output_of_a_layer_blob_is_a_valid_tar(busybox):
    """Layer blobs are plain tar streams any tool can read."""
    with busybox.layers[0].open() as blob:
        data = blob.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getmember("bin/sh").islnk()


@pytest.mark.usefixtures("container_runtime")
def test_run_heredoc_runs_as_a_shell_script(busybox, store, tmp_path, build):
    """RUN <<EOF runs the heredoc's lines with the shell, as one script."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nRUN <<EOF\necho one > /out\necho two >> /out\nEOF\n",
    )
    assert image.run(["cat", "/out"]).stdout == b"one\ntwo\n"


@pytest.mark.usefixtures("container_runtime")
def test_run_heredoc_with_a_shebang_is_executed_directly(
    busybox, store, tmp_path, build
):
    """A heredoc starting with #! runs with that interpreter."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        'FROM busybox\nRUN <<EOF\n#!/bin/awk -f\nBEGIN { print 6 * 7 > "/out" }\nEOF\n',
    )
    assert image.run(["cat", "/out"]).stdout == b"42\n"


@pytest.mark.usefixtures("container_runtime")
def test_heredoc_fed_to_a_command_is_its_stdin(busybox, store, tmp_path, build):
    """`RUN cmd <<EOF` hands the heredoc to the command's standard input."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nRUN tr a-z A-Z <<EOF > /out\nshout\nEOF\n",
    )
    assert image.run(["cat", "/out"]).stdout == b"SHOUT\n"


def test_copy_heredoc_writes_a_file_with_variables_expanded(
    busybox, store, tmp_path, build
):
    """COPY <<EOF expands ARG/ENV values but keeps quotes; <<'EOF' keeps $."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nENV WHO=world\n"
        'COPY <<EOF /greeting\nhello "$WHO"\nEOF\n'
        "COPY <<'EOF' /raw\nhello $WHO\nEOF\n",
    )
    with image.layers[-2].open() as blob, tarfile.open(fileobj=blob) as tar:
        assert tar.extractfile("greeting").read() == b'hello "world"\n'
        assert tar.getmember("greeting").mode == 0o644
    with image.layers[-1].open() as blob, tarfile.open(fileobj=blob) as tar:
        assert tar.extractfile("raw").read() == b"hello $WHO\n"


@pytest.mark.usefixtures("container_runtime")
def test_onbuild_triggers_run_in_the_child_build_and_are_not_inherited(
    busybox, store, tmp_path, build, write_context
):
    """ONBUILD instructions run when another image builds FROM this one."""
    parent = write_context(
        tmp_path / "parent",
        "FROM busybox\nONBUILD ENV TRIGGERED=yes\nONBUILD RUN echo ran > /trigger\n",
    )
    layercake.Builder(store).build(parent, tag="parent")
    child, _ = build(store, tmp_path / "child", "FROM parent\nLABEL child=1\n")
    assert child.config.config.on_build == ()
    assert "TRIGGERED=yes" in child.config.config.env
    assert child.run(["cat", "/trigger"]).stdout == b"ran\n"


def test_workdir_creates_a_missing_directory_owned_by_the_user(
    busybox, store, tmp_path, build
):
    """A new WORKDIR is a layer with the directory; an existing one is not."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nUSER app\nWORKDIR /srv/app\nWORKDIR /tmp\n",
    )
    assert len(image.layers) == 2
    with image.layers[-1].open() as blob, tarfile.open(fileobj=blob) as tar:
        members = {m.name: (m.uid, m.gid, m.mode) for m in tar.getmembers()}
    assert members == {"srv": (0, 0, 0o755), "srv/app": (1000, 1000, 0o755)}
    assert [h.empty_layer for h in image.history[-2:]] == [False, True]


def test_healthcheck_lands_in_the_config_as_docker_writes_it(
    busybox, store, tmp_path, build
):
    """HEALTHCHECK options become nanoseconds; shell form is CMD-SHELL."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\n"
        "HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD wget -q -O- x || exit 1\n",
    )
    check = image.config.config.healthcheck
    assert (check.test, check.interval, check.timeout, check.retries) == (
        ("CMD-SHELL", "wget -q -O- x || exit 1"),
        90_000_000_000,
        500_000_000,
        3,
    )


def test_healthcheck_none_disables_the_base_check(busybox, store, tmp_path, build):
    """HEALTHCHECK NONE writes Test ["NONE"]."""
    image, _ = build(store, tmp_path / "ctx", "FROM busybox\nHEALTHCHECK NONE\n")
    assert image.config.config.healthcheck.test == ("NONE",)


def test_stopsignal_volume_shell_and_maintainer(busybox, store, tmp_path, build):
    """The remaining metadata instructions land in the config."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nSTOPSIGNAL SIGINT\nVOLUME /data /logs\n"
        'SHELL ["/bin/sh", "-ec"]\nCMD echo hi\nMAINTAINER someone@example.org\n',
    )
    assert [h.created_by for h in image.history[2:5]] == [
        "STOPSIGNAL SIGINT",
        "VOLUME [/data /logs]",
        "SHELL [/bin/sh -ec]",
    ]
    config = image.config.config
    assert config.stop_signal == "SIGINT"
    assert dict(config.volumes) == {"/data": {}, "/logs": {}}
    assert config.shell == ("/bin/sh", "-ec")
    assert config.cmd == ("/bin/sh", "-ec", "echo hi")
    assert image.config.author == "someone@example.org"


def test_copy_from_an_earlier_stage_by_name_and_index(busybox, store, tmp_path, build):
    """COPY --from reads files of a built stage, by its name or its index."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox AS tools\nCOPY a.txt /opt/a.txt\nCOPY b /opt/b\n"
        "FROM scratch\nCOPY --from=tools /opt/a.txt /a.txt\n"
        "COPY --from=0 /opt/b/ /b/\n",
        **{"a.txt": "A\n", "b__inner.txt": "inner\n"},
    )
    assert len(image.layers) == 2
    assert layer_names(image.layers[0]) == ["a.txt"]
    assert layer_names(image.layers[1]) == ["b", "b/inner.txt"]


def test_copy_from_an_image_in_the_store(busybox, store, tmp_path, build):
    """COPY --from=busybox takes a file from that image's layers."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM scratch\nCOPY --from=busybox /etc/passwd /passwd\n",
    )
    with image.layers[0].open() as blob, tarfile.open(fileobj=blob) as tar:
        assert tar.extractfile("passwd").read().startswith(b"root:x:0:0:")


def test_copy_from_a_missing_path_names_the_stage(
    busybox, store, tmp_path, write_context
):
    """A --from source the stage lacks is a clear error."""
    context = write_context(
        tmp_path / "ctx",
        "FROM busybox AS one\nFROM scratch\nCOPY --from=one /nope /\n",
    )
    with pytest.raises(BuildContextError) as caught:
        layercake.Builder(store).build(context)
    assert caught.value.reason == "COPY --from=one source '/nope' not found in one"


@pytest.mark.usefixtures("container_runtime")
def test_copy_from_a_stage_sees_deletions_made_by_its_run(
    busybox, store, tmp_path, build
):
    """Files a stage's RUN deleted are not copied (whiteouts are honoured)."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox AS trimmed\nRUN rm /etc/group\n"
        "FROM scratch\nCOPY --from=trimmed /etc /etc\n",
    )
    assert layer_names(image.layers[0]) == ["etc", "etc/passwd"]


def test_from_platform_of_this_machine_builds_and_another_is_refused(
    busybox, store, tmp_path, write_context
):
    """--platform=$BUILDPLATFORM works; a foreign platform is a clear error."""
    ok = write_context(tmp_path / "ok", "FROM --platform=$BUILDPLATFORM busybox\n")
    assert layercake.Builder(store).build(ok).id == busybox.id
    other = write_context(tmp_path / "no", "FROM --platform=linux/s390x busybox\n")
    with pytest.raises(DockerfileError) as caught:
        layercake.Builder(store).build(other)
    assert caught.value.reason.startswith(
        "FROM --platform=linux/s390x: building for another platform than this "
        "machine's (linux/"
    )


@pytest.mark.usefixtures("container_runtime")
def test_run_mount_bind_reads_the_context_without_copying_it(
    busybox, store, tmp_path, build
):
    """A bind mount of the context is readable and not part of the layer."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\nRUN --mount=type=bind,source=data,target=/mnt cat /mnt/x > /out\n",
        data__x="from context\n",
    )
    assert layer_names(image.layers[-1]) == ["out"]
    assert image.run(["cat", "/out"]).stdout == b"from context\n"


@pytest.mark.usefixtures("container_runtime")
def test_run_mount_cache_keeps_files_between_builds(busybox, store, tmp_path, build):
    """A cache mount's content survives into the next build, not into layers."""
    step = "RUN --mount=type=cache,target=/cache sh -c 'echo x >> /cache/log; wc -l < /cache/log > /count'\n"
    build(store, tmp_path / "one", "FROM busybox\n" + step)
    image, _ = build(store, tmp_path / "two", "FROM busybox\nENV N=2\n" + step)
    assert image.run(["cat", "/count"]).stdout == b"2\n"
    assert layer_names(image.layers[-1]) == ["count"]


@pytest.mark.usefixtures("container_runtime")
def test_run_mount_secret_is_readable_and_never_stored(
    busybox, store, tmp_path, write_context
):
    """A secret is mounted at /run/secrets/ID and leaves no trace in the image."""
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    context = write_context(
        tmp_path / "ctx",
        "FROM busybox\nRUN --mount=type=secret,id=token wc -c < /run/secrets/token > /n\n",
    )
    image = layercake.Builder(store).build(context, secrets={"token": secret})
    assert image.run(["cat", "/n"]).stdout == b"6\n"
    assert layer_names(image.layers[-1]) == ["n"]


@pytest.mark.usefixtures("container_runtime")
def test_run_mount_tmpfs_and_network_none(busybox, store, tmp_path, build):
    """A tmpfs mount is empty and thrown away; --network=none has only lo."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM busybox\n"
        "RUN --mount=type=tmpfs,target=/scratch,size=1m --network=none "
        "sh -c 'echo hi > /scratch/f; ls /sys/class/net > /nets; "
        "df -k /scratch | tail -1 > /size'\n",
    )
    assert layer_names(image.layers[-1]) == ["nets", "size"]
    assert image.run(["cat", "/nets"]).stdout == b"lo\n"
    assert image.run(["cat", "/size"]).stdout.split()[:2] == [b"tmpfs", b"1024"]


def test_run_mount_of_an_unknown_type_is_refused(
    busybox, store, tmp_path, write_context
):
    """--mount=type=ssh is not supported and says so."""
    context = write_context(
        tmp_path / "ctx", "FROM busybox\nRUN --mount=type=ssh true\n"
    )
    with pytest.raises(layercake.BuildError) as caught:
        layercake.Builder(store).build(context)
    assert caught.value.reason == (
        "invalid RUN --mount=type=ssh: mount type 'ssh' is not supported "
        "(bind, cache, tmpfs, secret)"
    )


def test_add_url_fetches_the_file_with_mode_0600_and_no_extraction(
    busybox, store, tmp_path, build, http_server, busybox_rootfs
):
    """ADD of an http URL downloads it as is; an archive stays an archive."""
    root, url = http_server
    (root / "notes.txt").write_text("remote notes\n")
    (root / "rootfs.tar").write_bytes(busybox_rootfs.read_bytes())
    image, _ = build(
        store,
        tmp_path / "ctx",
        f"FROM busybox\nADD {url}/notes.txt {url}/rootfs.tar /downloads/\n",
    )
    with image.layers[-1].open() as blob, tarfile.open(fileobj=blob) as tar:
        notes = tar.getmember("downloads/notes.txt")
        assert (notes.mode, notes.uid) == (0o600, 0)
        assert tar.extractfile(notes).read() == b"remote notes\n"
        assert (
            tar.getmember("downloads/rootfs.tar").size == busybox_rootfs.stat().st_size
        )


def test_add_url_with_a_wrong_checksum_is_refused(
    busybox, store, tmp_path, write_context, http_server
):
    """--checksum must match the downloaded body."""
    root, url = http_server
    (root / "f").write_text("body\n")
    wrong = "sha256:" + "0" * 64
    context = write_context(
        tmp_path / "ctx", f"FROM busybox\nADD --checksum={wrong} {url}/f /f\n"
    )
    with pytest.raises(layercake.BuildError) as caught:
        layercake.Builder(store).build(context)
    actual = "sha256:" + hashlib.sha256(b"body\n").hexdigest()
    assert caught.value.reason == (
        f"ADD {url}/f: checksum mismatch: expected {wrong}, got {actual}"
    )
    assert list((store.path / "tmp").iterdir()) == []


def test_add_url_that_answers_404_names_the_status(
    busybox, store, tmp_path, write_context, http_server
):
    """A failed download is a build error with the URL and the status."""
    _, url = http_server
    context = write_context(tmp_path / "ctx", f"FROM busybox\nADD {url}/missing /m\n")
    with pytest.raises(layercake.BuildError) as caught:
        layercake.Builder(store).build(context)
    assert (
        caught.value.reason
        == f"ADD {url}/missing: the server answered 404 File not found"
    )


def test_changed_remote_file_invalidates_the_cache(
    busybox, store, tmp_path, build, http_server
):
    """The cache keys on the fetched bytes, not the URL."""
    root, url = http_server
    (root / "v").write_text("1\n")
    dockerfile = f"FROM busybox\nADD {url}/v /v\n"
    first, _ = build(store, tmp_path / "ctx", dockerfile)
    (root / "v").write_text("2\n")
    second, events = build(store, tmp_path / "ctx", dockerfile)
    assert second.id != first.id
    assert [e for e in events if isinstance(e, StepCached)] == []


def test_links_in_a_source_path_stay_inside_the_context(
    busybox, store, tmp_path, build
):
    """A directory link pointing at / resolves to the context root, not the host."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "etc").mkdir()
    (context / "etc/hostname").write_text("from the context\n")
    os.symlink("/", context / "root-link")
    os.symlink("../../..", context / "up-link")
    image, _ = build(
        store,
        context,
        "FROM busybox\nCOPY root-link/etc/hostname up-link/etc/hostname /got/\n",
    )
    with image.layers[-1].open() as blob, tarfile.open(fileobj=blob) as tar:
        assert tar.extractfile("got/hostname").read() == b"from the context\n"


def test_a_link_source_is_followed_inside_the_context(
    busybox, store, tmp_path, build, write_context
):
    """A source that is a link copies what it points at, scoped to the context.

    A link inside a copied directory stays a link.
    """
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "a.txt").write_text("A\n")
    os.symlink("a.txt", context / "inlink")
    (context / "dir").mkdir()
    os.symlink("../a.txt", context / "dir/link")
    image, _ = build(store, context, "FROM busybox\nCOPY inlink /w\nCOPY dir /d\n")
    with image.layers[-2].open() as blob, tarfile.open(fileobj=blob) as tar:
        assert tar.extractfile("w").read() == b"A\n"
    with image.layers[-1].open() as blob, tarfile.open(fileobj=blob) as tar:
        link = tar.getmember("d/link")
        assert (link.issym(), link.linkname) == (True, "../a.txt")


def test_a_link_source_pointing_at_a_host_path_is_not_found(
    busybox, store, tmp_path, write_context
):
    """/etc/shadow through a link means the context's etc/shadow: missing here."""
    context = write_context(tmp_path / "ctx", "FROM busybox\nCOPY shadow /x/\n")
    os.symlink("/etc/shadow", context / "shadow")
    with pytest.raises(BuildContextError) as caught:
        layercake.Builder(store).build(context)
    assert caught.value.reason == (
        f"COPY source 'shadow' not found in the build context {context}"
    )


@pytest.mark.usefixtures("container_runtime")
def test_proxy_build_args_reach_run_but_not_history_or_cache(
    busybox, store, tmp_path, write_context
):
    """HTTP_PROXY needs no ARG line and does not change the cache key."""
    context = write_context(
        tmp_path / "ctx", 'FROM busybox\nRUN echo "$HTTP_PROXY" > /p\n'
    )
    first = layercake.Builder(store).build(
        context, build_args={"HTTP_PROXY": "http://proxy.invalid:3128"}
    )
    assert first.run(["cat", "/p"]).stdout == b"http://proxy.invalid:3128\n"
    assert (
        first.history[-1].created_by
        == 'RUN /bin/sh -c echo "$HTTP_PROXY" > /p # buildkit'
    )
    events = []
    second = layercake.Builder(store).build(
        context,
        build_args={"HTTP_PROXY": "http://other.invalid:8080"},
        on_event=events.append,
    )
    assert second.id == first.id
    assert [e.step for e in events if isinstance(e, StepCached)] == [2]


def test_undeclared_build_arg_is_reported_as_a_warning(
    busybox, store, tmp_path, write_context
):
    """A --build-arg no ARG declares gives a BuildWarning event."""
    context = write_context(tmp_path / "ctx", "FROM busybox\nARG USED\n")
    events = []
    layercake.Builder(store).build(
        context, build_args={"USED": "1", "TYPO": "2"}, on_event=events.append
    )
    warnings = [e.message for e in events if isinstance(e, BuildWarning)]
    assert warnings == ["build argument 'TYPO' was given but no ARG declares it"]


def test_abuild_builds_without_blocking_the_event_loop(busybox, store):
    """Builder.abuild awaits a build while other tasks keep running."""
    import asyncio

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        image = await layercake.Builder(store).abuild(
            None, text="FROM busybox\nLABEL async=yes\n"
        )
        task.cancel()
        return image, ticks

    image, ticks = asyncio.run(main())
    assert image.config.config.labels == {"async": "yes"}
    assert ticks > 0


def test_a_missed_step_says_why_it_was_not_cached(
    busybox, store, tmp_path, write_context
):
    """StepCacheMiss names what changed since the step was last built."""
    from layercake.events import StepCacheMiss

    context = write_context(
        tmp_path / "ctx",
        "FROM busybox\nARG V=1\nCOPY a.txt /a\nLABEL v=$V\n",
        **{"a.txt": "one\n"},
    )

    def reasons(**options):
        events = []
        layercake.Builder(store).build(context, on_event=events.append, **options)
        return {e.step: e.reason for e in events if isinstance(e, StepCacheMiss)}

    assert reasons() == {
        2: "this step has not been built before",
        3: "this step has not been built before",
        4: "this step has not been built before",
    }
    assert reasons() == {}
    (context / "a.txt").write_text("two\n")
    assert reasons() == {
        3: "the files it reads changed",
        4: "an earlier step changed, so this step starts from a new image",
    }
    assert reasons(build_args={"V": "2"}) == {
        2: "build arguments changed: V",
        3: "an earlier step changed, so this step starts from a new image",
        4: "an earlier step changed, so this step starts from a new image",
    }
    assert reasons(no_cache=True)[2] == "the build was asked not to use the cache"


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ("COPY a.txt /etc/passwd/x", "/etc/passwd"),
        ("COPY dir /etc/passwd", "/etc/passwd"),
        ("COPY a.txt /etc/group/", "/etc/group"),
    ],
)
def test_copy_through_an_existing_file_is_refused(
    busybox, store, tmp_path, write_context, line, path
):
    """A destination whose path crosses a file of the image is an error."""
    context = write_context(
        tmp_path / "ctx", f"FROM busybox\n{line}\n", **{"a.txt": "A", "dir__f": "F"}
    )
    with pytest.raises(BuildContextError) as caught:
        layercake.Builder(store).build(context)
    assert caught.value.reason == (
        f"COPY cannot copy to {path}: it is not a directory in the image"
    )


def test_run_mount_with_an_unknown_key_is_refused(
    busybox, store, tmp_path, write_context
):
    """A key the mount type does not take fails, naming it, as in BuildKit."""
    context = write_context(
        tmp_path / "ctx",
        "FROM busybox\nRUN --mount=type=cache,target=/c,bogus=1 true\n",
    )
    with pytest.raises(layercake.BuildError) as caught:
        layercake.Builder(store).build(context)
    assert caught.value.reason == (
        "invalid RUN --mount=type=cache,target=/c,bogus=1: unexpected key 'bogus' "
        "for a cache mount"
    )


@pytest.mark.usefixtures("container_runtime")
def test_run_mount_secret_as_an_environment_variable(
    busybox, store, tmp_path, write_context
):
    """env= puts the secret in a variable for that RUN only."""
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    context = write_context(
        tmp_path / "ctx",
        "FROM busybox\nRUN --mount=type=secret,id=tok,env=TOK sh -c 'echo \"$TOK\" > /t'\n",
    )
    image = layercake.Builder(store).build(context, secrets={"tok": secret})
    assert image.run(["cat", "/t"]).stdout == b"s3cret\n"
    assert "TOK=s3cret" not in image.config.config.env


def test_copy_from_a_later_stage_builds_it_first(busybox, store, tmp_path, build):
    """COPY --from may name a stage defined further down, as in BuildKit."""
    image, _ = build(
        store,
        tmp_path / "ctx",
        "FROM scratch AS final\nCOPY --from=maker /made /made\n"
        "FROM busybox AS maker\nCOPY made /made\n"
        "FROM final\n",
        made="built\n",
    )
    assert layer_names(image.layers[-1]) == ["made"]


def test_stages_that_need_each_other_are_a_clear_error(
    busybox, store, tmp_path, write_context
):
    """A circle of COPY --from between stages is refused, naming a stage."""
    context = write_context(
        tmp_path / "ctx",
        "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n",
    )
    with pytest.raises(DockerfileError) as caught:
        layercake.Builder(store).build(context)
    assert caught.value.reason == "circular dependency detected on stage: b"


def test_expose_range_env_quoted_key_and_bad_values(
    busybox, store, tmp_path, build, write_context
):
    """EXPOSE ranges expand; quoted ENV keys lose their quotes; bad values fail."""
    image, _ = build(
        store, tmp_path / "ok", 'FROM busybox\nEXPOSE 8000-8002/udp\nENV "Q"="q v"\n'
    )
    assert sorted(image.config.config.exposed_ports) == [
        "8000/udp",
        "8001/udp",
        "8002/udp",
    ]
    assert image.config.config.env[-1] == "Q=q v"

    for line, reason in (
        ("STOPSIGNAL FOO", "invalid signal: FOO"),
        ('VOLUME /a ""', "VOLUME specified can not be an empty string"),
        ("EXPOSE 9000-8000", "invalid containerPort: 9000-8000"),
        (
            "LABEL a=" + "${X:-" * 2000 + "x" + "}" * 2000,
            "variable references are nested too deeply",
        ),
    ):
        context = write_context(tmp_path / "bad", f"FROM busybox\n{line}\n")
        with pytest.raises(DockerfileError) as caught:
            layercake.Builder(store).build(context)
        assert (caught.value.reason, caught.value.line) == (reason, 2)


def test_a_socket_in_the_context_is_skipped(busybox, store, tmp_path, build):
    """Like Docker, COPY leaves sockets out rather than failing."""
    import socket

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "keep").write_text("k")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(context / "sock"))
    try:
        image, _ = build(store, context, "FROM busybox\nCOPY . /app/\n")
    finally:
        server.close()
    assert layer_names(image.layers[-1]) == ["app", "app/Dockerfile", "app/keep"]
