"""Docker credential helpers (credsStore, credHelpers) and logout."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from registry_servers import RunningRegistry, make_image

from layercake.cli import main
from layercake.errors import RegistryError
from layercake.store import StoreDirectory
from layercake.store._registry import (
    Credentials,
    load_credentials,
    login,
    logout,
    pull,
    push,
)

HELPER = """#!{python}
import json, pathlib, sys

here = pathlib.Path(__file__).parent
state = here / "held.json"
held = json.loads(state.read_text()) if state.exists() else {{}}
verb, given = sys.argv[1], sys.stdin.read()
with (here / "calls.txt").open("a") as log:
    log.write(verb + " " + given + "\\n")
if verb == "get" and given in held:
    print(json.dumps({{"ServerURL": given, **held[given]}}))
elif verb == "store":
    body = json.loads(given)
    held[body["ServerURL"]] = {{"Username": body["Username"], "Secret": body["Secret"]}}
    state.write_text(json.dumps(held))
elif verb == "erase" and given in held:
    del held[given]
    state.write_text(json.dumps(held))
elif verb == "broken":
    pass
else:
    print("credentials not found in native keychain")
    sys.exit(1)
"""


@pytest.fixture
def helper_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put docker-credential-test (a helper keeping a JSON file) first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    program = folder / "docker-credential-test"
    program.write_text(HELPER.format(python=sys.executable))
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return folder


def calls(helper_bin: Path) -> list[str]:
    """The helper's calls so far, as 'verb stdin' lines."""
    log = helper_bin / "calls.txt"
    return log.read_text().splitlines() if log.exists() else []


def test_login_with_creds_store_keeps_the_secret_out_of_the_config_file(
    tmp_path: Path, auth_registry: RunningRegistry, docker_config: Path, helper_bin
) -> None:
    """login hands the credentials to the helper; pull then gets them back."""
    docker_config.write_text(json.dumps({"credsStore": "test"}))
    assert auth_registry.password is not None
    login(auth_registry.host, "docker", auth_registry.password)

    assert json.loads(docker_config.read_text()) == {"credsStore": "test"}
    stored = json.dumps(
        {
            "ServerURL": auth_registry.host,
            "Username": "docker",
            "Secret": auth_registry.password,
        }
    )
    assert calls(helper_bin) == [f"store {stored}"]

    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, [{"etc/hello": b"hello\n"}])
    push(store, manifest, f"{auth_registry.host}/team/app:1")
    pulled = pull(StoreDirectory(tmp_path / "b"), f"{auth_registry.host}/team/app:1")
    assert pulled.digest == manifest.digest
    assert calls(helper_bin)[1:] == [f"get {auth_registry.host}"] * 2


def test_cred_helpers_entry_wins_over_creds_store(
    docker_config: Path, helper_bin
) -> None:
    """credHelpers names the helper for its host; other hosts use credsStore."""
    held = {"ghcr.io": {"Username": "<token>", "Secret": "refresh-9"}}
    (helper_bin / "held.json").write_text(json.dumps(held))
    docker_config.write_text(
        json.dumps({"credsStore": "absent", "credHelpers": {"ghcr.io": "test"}})
    )

    assert load_credentials("ghcr.io") == Credentials(
        "", "", identity_token="refresh-9"
    )
    with pytest.raises(RegistryError) as caught:
        load_credentials("quay.io")
    assert str(caught.value) == (
        "credential helper docker-credential-absent was not found on PATH"
    )


def test_a_helper_holding_nothing_falls_back_to_the_auths_entry(
    docker_config: Path, helper_bin
) -> None:
    """'credentials not found' from the helper lets the auths entry apply."""
    docker_config.write_text(
        json.dumps({"credsStore": "test", "auths": {"q.io": {"auth": "dTpw"}}})
    )
    assert load_credentials("q.io") == Credentials("u", "p")
    assert calls(helper_bin) == ["get q.io"]


def test_a_failing_helper_is_named_without_its_output(
    docker_config: Path, helper_bin
) -> None:
    """A helper's failure names the program and status, never what it printed."""
    program = helper_bin / "docker-credential-test"
    program.write_text("#!/bin/sh\necho 'secret-in-output'\nexit 3\n")
    docker_config.write_text(json.dumps({"credsStore": "test"}))
    with pytest.raises(RegistryError) as caught:
        load_credentials("q.io")
    assert str(caught.value) == (
        "credential helper docker-credential-test get failed with exit status 3"
    )


def test_logout_erases_through_the_helper_then_says_not_logged_in(
    docker_config: Path, helper_bin, capfd
) -> None:
    """logout erases the helper's entry; a second logout has nothing to remove."""
    held = {"127.0.0.1:5999": {"Username": "u", "Secret": "p"}}
    (helper_bin / "held.json").write_text(json.dumps(held))
    docker_config.write_text(json.dumps({"credsStore": "test"}))

    assert main(["logout", "127.0.0.1:5999"]) == 0
    assert main(["logout", "http://127.0.0.1:5999/"]) == 0
    assert capfd.readouterr().out == (
        "Removing login credentials for 127.0.0.1:5999\n"
        "Not logged in to 127.0.0.1:5999\n"
    )
    assert json.loads((helper_bin / "held.json").read_text()) == {}
    assert calls(helper_bin) == ["erase 127.0.0.1:5999"] * 2


def test_logout_removes_the_auths_entry_and_keeps_the_others(
    docker_config: Path,
) -> None:
    """Without a helper, logout deletes the registry's auths entry from the file."""
    auths = {
        "https://index.docker.io/v1/": {"auth": "dTpw"},
        "ghcr.io": {"auth": "dTpw"},
    }
    docker_config.write_text(json.dumps({"auths": auths, "psFormat": "table"}))

    assert logout("docker.io") is True
    assert logout("docker.io") is False
    assert json.loads(docker_config.read_text()) == {
        "auths": {"ghcr.io": {"auth": "dTpw"}},
        "psFormat": "table",
    }


def test_cli_login_then_logout_round_trip_through_the_config_file(
    auth_registry: RunningRegistry, docker_config: Path, monkeypatch, capfd
) -> None:
    """login --password-stdin writes the auths entry; logout removes it."""
    assert auth_registry.password is not None
    monkeypatch.setattr("sys.stdin", io.StringIO(auth_registry.password + "\n"))
    host = auth_registry.host
    assert main(["login", "-u", "docker", "--password-stdin", host]) == 0
    assert list(json.loads(docker_config.read_text())["auths"]) == [host]

    assert main(["logout", host]) == 0
    assert json.loads(docker_config.read_text()) == {"auths": {}}
    assert capfd.readouterr().out == (
        f"Login Succeeded\nRemoving login credentials for {host}\n"
    )
