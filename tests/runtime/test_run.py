"""run(): exit codes, output, isolation and process settings, end to end."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from layercake.errors import (
    CommandNotStarted,
    ContainerConfigError,
    ContainerTimeout,
)
from layercake.runtime import DEFAULT_PATH, SandboxSpec, run

MakeSpec = Callable[..., SandboxSpec]


def test_echo_prints_to_stdout_and_exits_zero(make_spec: MakeSpec) -> None:
    """`echo hi` gives exactly its line on stdout, nothing on stderr, exit 0."""
    result = run(make_spec("echo", "hi"))

    assert (result.exit_code, result.stdout, result.stderr) == (0, b"hi\n", b"")


def test_exit_code_of_the_process_is_returned(make_spec: MakeSpec) -> None:
    """`sh -c "exit 3"` ends the run with exit code 3."""
    assert run(make_spec("sh", "-c", "exit 3")).exit_code == 3


def test_stderr_is_captured_apart_from_stdout(make_spec: MakeSpec) -> None:
    """What the process writes to stderr comes back in RunResult.stderr only."""
    result = run(make_spec("sh", "-c", "echo out; echo err >&2"))

    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")


def test_process_is_pid_one(make_spec: MakeSpec) -> None:
    """The command is PID 1 of its own PID namespace."""
    assert run(make_spec("sh", "-c", "echo $$")).stdout == b"1\n"


def test_only_container_processes_are_visible(make_spec: MakeSpec) -> None:
    """/proc inside lists only the container's own processes."""
    result = run(make_spec("sh", "-c", "ls -d /proc/[0-9]*"))

    assert result.stdout == b"/proc/1\n"


def test_hostname_is_set(make_spec: MakeSpec) -> None:
    """The UTS namespace carries the spec's hostname, also in /etc/hostname."""
    spec = make_spec("sh", "-c", "hostname; cat /etc/hostname", hostname="box")

    assert run(spec).stdout == b"box\nbox\n"


def test_etc_hosts_names_localhost_and_the_hostname(make_spec: MakeSpec) -> None:
    """/etc/hosts maps localhost and the hostname to the loopback address."""
    result = run(make_spec("cat", "/etc/hosts", hostname="box"))

    assert result.stdout == (
        b"127.0.0.1\tlocalhost\n"
        b"::1\tlocalhost ip6-localhost ip6-loopback\n"
        b"127.0.0.1\tbox\n"
    )


def test_network_none_has_only_loopback_and_it_is_up(make_spec: MakeSpec) -> None:
    """With network "none" the only interface is lo, and it is up."""
    result = run(
        make_spec(
            "sh",
            "-c",
            "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags",
        )
    )

    assert result.stdout == b"lo\nunknown\n0x9\n"


def test_network_none_lists_only_lo_in_proc_net_dev(make_spec: MakeSpec) -> None:
    """/proc/net/dev of a "none" container names lo and nothing else."""
    result = run(make_spec("sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1"))

    assert result.stdout == b"    lo\n"


def test_network_host_sees_the_host_interfaces(make_spec: MakeSpec) -> None:
    """With network "host" the container is in the host's network namespace."""
    # The namespace itself, not a listing of /sys/class/net: other containers'
    # veth pairs come and go on the host while this runs.
    result = run(make_spec("readlink", "/proc/self/ns/net", network="host"))

    assert result.stdout.decode() == os.readlink("/proc/self/ns/net") + "\n"


def test_process_runs_as_the_given_user(make_spec: MakeSpec, root_user: None) -> None:
    """uid 1000 and gid 1000 are what `id` reports, named from /etc/passwd."""
    result = run(make_spec("id", uid=1000, gid=1000))

    assert result.stdout == b"uid=1000(app) gid=1000(app)\n"


def test_additional_groups_are_set(make_spec: MakeSpec, root_user: None) -> None:
    """additional_gids become the process's supplementary groups."""
    result = run(make_spec("id", "-G", uid=1000, gid=1000, additional_gids=(1000, 5)))

    assert result.stdout == b"1000 5\n"


def test_missing_working_directory_is_created_owned_by_root(
    make_spec: MakeSpec, rootfs_upper: Path, root_user: None
) -> None:
    """A missing cwd is created (root, 0755), entered, and kept in the upper dir."""
    result = run(make_spec("pwd", cwd="/srv/app", uid=1000, gid=1000))

    info = (rootfs_upper / "srv" / "app").stat()
    assert result.stdout == b"/srv/app\n"
    assert (info.st_uid, info.st_gid, oct(info.st_mode & 0o7777)) == (0, 0, "0o755")


def test_environment_is_passed_with_docker_default_path(make_spec: MakeSpec) -> None:
    """env entries reach the process and PATH defaults to Docker's."""
    result = run(make_spec("env", env=("GREETING=hello world", "EMPTY=")))

    assert sorted(result.stdout.decode().splitlines()) == [
        "EMPTY=",
        "GREETING=hello world",
        f"PATH={DEFAULT_PATH}",
    ]


def test_command_is_looked_up_in_the_given_path(make_spec: MakeSpec) -> None:
    """args[0] without a slash is searched in the PATH of env, not the host's."""
    spec = make_spec("echo", "found", env=("PATH=/nowhere:/bin",))

    assert run(spec).stdout == b"found\n"


def test_environment_entry_without_equals_is_refused(make_spec: MakeSpec) -> None:
    """An env entry that is not KEY=VALUE raises ContainerConfigError."""
    with pytest.raises(ContainerConfigError) as caught:
        run(make_spec("true", env=("JUSTKEY",)))

    assert str(caught.value) == (
        "environment entry 'JUSTKEY' is not of the form KEY=VALUE"
    )


def test_stdin_bytes_reach_the_process(make_spec: MakeSpec) -> None:
    """Bytes given as stdin are what the process reads."""
    assert run(make_spec("cat"), stdin=b"one\ntwo\n").stdout == b"one\ntwo\n"


def test_large_stdin_and_stdout_do_not_deadlock(make_spec: MakeSpec) -> None:
    """A megabyte in and out flows without the pipes blocking each other."""
    data = bytes(range(256)) * 4096

    assert run(make_spec("cat"), stdin=data, timeout=30).stdout == data


def test_stdin_defaults_to_dev_null(make_spec: MakeSpec) -> None:
    """Without stdin the process reads end of file at once."""
    assert run(make_spec("wc", "-c")).stdout == b"0\n"


def test_output_chunks_are_passed_to_the_callback(make_spec: MakeSpec) -> None:
    """on_output receives every chunk of both streams, named by stream."""
    seen: list[tuple[str, bytes]] = []

    result = run(
        make_spec("sh", "-c", "echo a; sleep 0.1; echo b >&2"),
        on_output=lambda stream, chunk: seen.append((stream, chunk)),
    )

    assert seen == [("stdout", b"a\n"), ("stderr", b"b\n")]
    assert (result.stdout, result.stderr) == (b"a\n", b"b\n")


def test_timeout_kills_the_container_and_raises(make_spec: MakeSpec) -> None:
    """A run past its timeout is killed, with its children, and raises."""
    started = time.monotonic()

    with pytest.raises(ContainerTimeout) as caught:
        run(make_spec("sh", "-c", "sleep 30 & sleep 30"), timeout=0.3)

    assert time.monotonic() - started < 5
    assert str(caught.value) == "container timed out after 0.3 seconds and was killed"
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.timeout == 0.3


def _not_started(spec: SandboxSpec) -> tuple[type, str, str, str, int, list[str]]:
    with pytest.raises(CommandNotStarted) as caught:
        run(spec)
    error = caught.value
    upper = spec.rootfs.upper_dir
    return (
        type(error),
        str(error),
        error.command,
        error.reason,
        error.exit_code,
        sorted(os.listdir(upper)),
    )


def test_command_not_found_fails_the_start_with_dockers_message(
    make_spec: MakeSpec,
) -> None:
    """An unknown command raises at start with runc's text and exit code 127,
    and leaves no mount target behind in the upper directory."""
    assert _not_started(make_spec("foo")) == (
        CommandNotStarted,
        'exec: "foo": executable file not found in $PATH',
        "foo",
        "executable file not found in $PATH",
        127,
        [],
    )


def test_command_not_found_under_init_fails_the_start(make_spec: MakeSpec) -> None:
    """With the init as PID 1, the command's failed exec still fails the start."""
    assert _not_started(make_spec("foo", init=True))[1:5] == (
        'exec: "foo": executable file not found in $PATH',
        "foo",
        "executable file not found in $PATH",
        127,
    )


def test_missing_absolute_command_fails_the_start_with_127(
    make_spec: MakeSpec,
) -> None:
    """A command path that does not exist raises with exit code 127."""
    assert _not_started(make_spec("/bin/nope"))[1:5] == (
        'exec: "/bin/nope": no such file or directory',
        "/bin/nope",
        "no such file or directory",
        127,
    )


def test_command_that_is_not_executable_fails_the_start_with_126(
    make_spec: MakeSpec,
) -> None:
    """A file without an x bit raises with exit code 126 and says why."""
    assert _not_started(make_spec("/etc/passwd"))[1:5] == (
        'exec: "/etc/passwd": permission denied',
        "/etc/passwd",
        "permission denied",
        126,
    )


def test_directory_as_command_fails_the_start_with_126(make_spec: MakeSpec) -> None:
    """A directory named as the command raises with exit code 126, as runc."""
    assert _not_started(make_spec("/etc"))[1:5] == (
        'exec: "/etc": is a directory',
        "/etc",
        "is a directory",
        126,
    )


def test_script_with_a_missing_interpreter_fails_the_start_with_126(
    make_spec: MakeSpec,
) -> None:
    """A script whose #! interpreter is missing raises with exit code 126."""
    spec = make_spec("/bin/script")
    os.makedirs(f"{spec.rootfs.upper_dir}/bin")
    with open(f"{spec.rootfs.upper_dir}/bin/script", "w") as script:
        script.write("#!/bin/nowhere\n")
    os.chmod(f"{spec.rootfs.upper_dir}/bin/script", 0o755)

    assert _not_started(spec)[1:5] == (
        'exec: "/bin/script": bad interpreter: no such file or directory',
        "/bin/script",
        "bad interpreter: no such file or directory",
        126,
    )


def test_file_that_is_no_program_fails_the_start_with_126(
    make_spec: MakeSpec,
) -> None:
    """An executable file the kernel cannot run raises with exit code 126."""
    spec = make_spec("/junk")
    os.makedirs(spec.rootfs.upper_dir)
    with open(f"{spec.rootfs.upper_dir}/junk", "wb") as junk:
        junk.write(b"\x7fELF\x00\x00junk")
    os.chmod(f"{spec.rootfs.upper_dir}/junk", 0o755)

    assert _not_started(spec)[1:5] == (
        'exec: "/junk": exec format error',
        "/junk",
        "exec format error",
        126,
    )


def test_sigpipe_has_its_default_action(make_spec: MakeSpec) -> None:
    """SIGPIPE is not inherited as ignored from Python: `yes | head` ends quietly."""
    result = run(make_spec("sh", "-c", "yes | head -n 1"))

    assert (result.exit_code, result.stdout, result.stderr) == (0, b"y\n", b"")


def test_root_keeps_only_dockers_default_capabilities(make_spec: MakeSpec) -> None:
    """Root in the container has Docker's default bounding set, not everything."""
    result = run(make_spec("sh", "-c", "grep CapBnd /proc/self/status"))

    assert result.stdout == b"CapBnd:\t00000000a80425fb\n"


def test_sys_is_read_only(make_spec: MakeSpec) -> None:
    """/sys is mounted read-only."""
    result = run(make_spec("sh", "-c", "grep ' /sys ' /proc/mounts | cut -d' ' -f4"))

    assert result.stdout.split(b",")[0] == b"ro"


def test_dev_has_the_standard_devices(make_spec: MakeSpec) -> None:
    """/dev holds null, zero, full, random, urandom, tty, pts, shm and links."""
    result = run(make_spec("ls", "/dev"))

    assert result.stdout.split() == [
        b"fd",
        b"full",
        b"mqueue",
        b"null",
        b"ptmx",
        b"pts",
        b"random",
        b"shm",
        b"stderr",
        b"stdin",
        b"stdout",
        b"tty",
        b"urandom",
        b"zero",
    ]


def test_empty_command_is_refused(make_spec: MakeSpec) -> None:
    """A spec with no args raises ContainerConfigError before anything starts."""
    with pytest.raises(ContainerConfigError) as caught:
        run(make_spec())

    assert str(caught.value) == "no command given to run"


def test_kernel_settings_in_proc_are_read_only(make_spec: MakeSpec) -> None:
    """/proc/sys cannot be written from inside, even as root."""
    result = run(make_spec("sh", "-c", "echo 1 > /proc/sys/vm/drop_caches"))

    assert (result.exit_code, result.stderr) == (
        1,
        b"sh: can't create /proc/sys/vm/drop_caches: Read-only file system\n",
    )


def test_sensitive_proc_and_sys_entries_are_masked(make_spec: MakeSpec) -> None:
    """/proc/keys reads empty and /sys/firmware lists nothing, as in Docker."""
    result = run(make_spec("sh", "-c", "wc -c < /proc/keys; ls -A /sys/firmware"))

    assert result.stdout == b"0\n"


def test_error_in_the_output_callback_kills_the_container(
    make_spec: MakeSpec,
) -> None:
    """An exception from on_output propagates, and the container is killed first."""
    seen: list[bytes] = []

    def fail(stream: str, chunk: bytes) -> None:
        seen.append(chunk)
        raise RuntimeError("callback failed")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="callback failed"):
        run(make_spec("sh", "-c", "echo started; sleep 30"), on_output=fail)

    assert seen == [b"started\n"]
    assert time.monotonic() - started < 5


def test_run_leaves_the_callers_children_in_its_pid_namespace(
    make_spec: MakeSpec,
) -> None:
    """After a run, this thread's next child lands in the caller's namespace."""
    before = os.readlink("/proc/thread-self/ns/pid_for_children")
    assert run(make_spec("sh", "-c", "echo $$")).stdout == b"1\n"
    assert os.readlink("/proc/thread-self/ns/pid_for_children") == before
    assert before == os.readlink("/proc/self/ns/pid")


def test_runs_from_several_threads_are_each_pid_one(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    """Containers run from concurrent threads each get a PID namespace."""
    from concurrent.futures import ThreadPoolExecutor

    import attrs

    base = make_spec("sh", "-c", "echo $$")
    specs = [
        attrs.evolve(
            base,
            rootfs=attrs.evolve(
                base.rootfs,
                upper_dir=str(tmp_path / f"upper{i}"),
                work_dir=str(tmp_path / f"work{i}"),
                mount_point=str(tmp_path / f"merged{i}"),
            ),
        )
        for i in range(8)
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, specs))
    assert [(r.exit_code, r.stdout) for r in results] == [(0, b"1\n")] * 8
