"""Run Python as the unprivileged CI user, from a copy of the tree it can read.

``scripts/setup-debian.sh test`` creates the user ``layercake-ci`` with a
range of subordinate ids. A clone in a directory only root can enter (CI
clones often live under /root) and its virtualenv are out of that user's
reach, so the tree and the installed packages are copied into a temporary
directory it can read, and an interpreter it can run is looked for. Every
run happens in a PID namespace of its own that ends with it: no process of
the user outlives a run, and with them go the mounts their namespaces held.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CI_USER", "Unavailable", "Unprivileged", "prepare", "subordinate_range"]

CI_USER = "layercake-ci"
ROOT = Path(__file__).resolve().parent.parent
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "venv", ".*_cache", "*.egg-info", "build", "dist"
)
_NEEDED = "import attrs, cattrs, platformdirs, httpx, pytest, xdist"


class Unavailable(Exception):
    """The unprivileged user cannot run here; the message says why."""


@dataclass(frozen=True)
class Unprivileged:
    """The CI user and the environment prepared for it."""

    name: str
    uid: int
    gid: int
    python: str
    base: Path

    @property
    def tree(self) -> Path:
        """The copy of the source tree the user runs from."""
        return self.base / "tree"

    @property
    def home(self) -> Path:
        """A directory the user owns: HOME, TMPDIR and pytest's base."""
        return self.base / "home"

    def environment(self) -> dict[str, str]:
        """The whole environment a run gets, nothing inherited."""
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.home),
            "TMPDIR": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONPATH": f"{self.tree / 'src'}:{self.tree}:{self.base / 'site'}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def command(
        self, args: Sequence[str], env: Mapping[str, str] | None = None
    ) -> list[str]:
        """``args`` as the user, in a PID namespace that ends with the run."""
        environment = {**self.environment(), **(env or {})}
        switch = [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "env",
            "-i",
            *(f"{key}={value}" for key, value in environment.items()),
        ]
        return ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"] + [
            *switch,
            *args,
        ]

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` (argv[0] "python" means the chosen interpreter).

        ``env`` adds to the environment of :meth:`environment`.
        """
        argv = [self.python if args[0] == "python" else args[0], *args[1:]]
        return subprocess.run(
            self.command(argv, env),
            cwd=self.tree,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def python_script(
        self, code: str, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run Python ``code`` as the user, with ``args`` in sys.argv[1:]."""
        return self.run(["python", "-c", code, *args], timeout=timeout)

    def workdir(self, name: str) -> Path:
        """A fresh directory the user owns, under its home."""
        path = self.home / name
        path.mkdir()
        os.chown(path, self.uid, self.gid)
        return path


def prepare(name: str = CI_USER, *, subordinate_ids: bool = True) -> Unprivileged:
    """Copy the tree and packages where the user ``name`` can read them.

    The caller removes ``base`` once done.

    Raises:
        Unavailable: not root, no such user, no subordinate ids (when
            ``subordinate_ids``), a tool or a usable interpreter missing.
    """
    if os.geteuid() != 0:
        raise Unavailable("switching to the CI user takes root")
    for tool in ("setpriv", "unshare", "newuidmap", "newgidmap"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} is not installed (scripts/setup-debian.sh test)")
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise Unavailable(
            f"no user {name} (scripts/setup-debian.sh test creates {CI_USER})"
        ) from None
    if subordinate_ids and subordinate_range(name) is None:
        raise Unavailable(f"{name} has no range in /etc/subuid")
    base = Path(tempfile.mkdtemp(prefix="layercake-unprivileged-"))
    try:
        return _fill(base, user)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def _fill(base: Path, user: pwd.struct_passwd) -> Unprivileged:
    base.chmod(0o755)
    shutil.copytree(ROOT, base / "tree", ignore=_IGNORED, symlinks=True)
    site = base / "site"
    site.mkdir()
    for path in dict.fromkeys(
        (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
    ):
        shutil.copytree(path, site, symlinks=True, dirs_exist_ok=True)
    subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
    home = base / "home"
    home.mkdir()
    os.chown(home, user.pw_uid, user.pw_gid)
    for parent in base.parents:
        if not os.stat(parent).st_mode & 0o001:
            raise Unavailable(f"{parent} is closed to other users (set TMPDIR)")
    unprivileged = Unprivileged(
        name=user.pw_name,
        uid=user.pw_uid,
        gid=user.pw_gid,
        python="",
        base=base,
    )
    return _with_python(unprivileged)


def _with_python(unprivileged: Unprivileged) -> Unprivileged:
    version = "{}.{}".format(*sys.version_info[:2])
    candidates = [
        sys.executable,
        getattr(sys, "_base_executable", ""),
        os.path.realpath(sys.executable),
        shutil.which(f"python{version}") or "",
        f"/usr/bin/python{version}",
    ]
    probe = f"import sys; {_NEEDED}; print('%d.%d' % sys.version_info[:2])"
    tried = []
    for candidate in dict.fromkeys(c for c in candidates if c):
        chosen = Unprivileged(**{**unprivileged.__dict__, "python": candidate})
        completed = chosen.python_script(probe, timeout=60)
        if completed.returncode == 0 and completed.stdout.strip() == version:
            return chosen
        tried.append(candidate)
    raise Unavailable(
        f"no Python {version} that {unprivileged.name} can run with the test "
        f"packages (tried {', '.join(tried)})"
    )


def subordinate_range(name: str) -> tuple[int, int] | None:
    """The user's first subordinate uid range in /etc/subuid, if any."""
    try:
        lines = Path("/etc/subuid").read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) == 3 and fields[0] == name:
            return int(fields[1]), int(fields[2])
    return None
