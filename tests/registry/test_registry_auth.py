"""Authentication: HTTP Basic on a real registry, the Bearer token flow, login."""

from __future__ import annotations

import base64
import json
import logging
import os
import urllib.parse
from pathlib import Path

import pytest
from registry_servers import QuietHandler, RunningRegistry, make_image

from layercake.errors import RegistryUnauthorized
from layercake.store import StoreDirectory
from layercake.store._registry import Credentials, login, pull, push
from layercake.store._registry._auth import load_credentials, store_credentials

FILES = [{"etc/hello": b"hello\n"}]


def test_basic_auth_push_and_pull_with_credentials(
    tmp_path: Path, auth_registry: RunningRegistry
) -> None:
    """With the htpasswd user's credentials, push and pull both work."""
    assert auth_registry.username is not None and auth_registry.password
    credentials = Credentials(auth_registry.username, auth_registry.password)
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, FILES)
    reference = f"{auth_registry.host}/tests/private:1"
    push(store, manifest, reference, credentials=credentials)

    pulled = pull(StoreDirectory(tmp_path / "b"), reference, credentials=credentials)
    assert pulled.digest == manifest.digest


def test_pull_without_credentials_is_unauthorized(
    tmp_path: Path, auth_registry: RunningRegistry
) -> None:
    """Without credentials the registry's 401 becomes RegistryUnauthorized."""
    with pytest.raises(RegistryUnauthorized) as caught:
        pull(StoreDirectory(tmp_path / "b"), f"{auth_registry.host}/tests/private:1")

    url = f"http://{auth_registry.host}/v2/tests/private/manifests/1"
    assert str(caught.value) == (
        f"manifest pull failed for {auth_registry.host}/tests/private:1: GET {url} "
        "returned 401 UNAUTHORIZED: authentication required"
    )
    assert (caught.value.status, caught.value.code) == (401, "UNAUTHORIZED")


def test_login_stores_docker_style_credentials_that_pull_uses(
    tmp_path: Path, auth_registry: RunningRegistry, docker_config: Path
) -> None:
    """login() verifies, writes a base64 ``auths`` entry; pulls then find it."""
    user, password = auth_registry.username, auth_registry.password
    assert user is not None and password is not None
    login(auth_registry.host, user, password)

    config = json.loads(docker_config.read_text())
    secret = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert config == {"auths": {auth_registry.host: {"auth": secret}}}
    assert os.stat(docker_config).st_mode & 0o777 == 0o600

    store = StoreDirectory(tmp_path / "a")
    reference = f"{auth_registry.host}/tests/private:1"
    push(store, make_image(store, FILES), reference)
    assert pull(StoreDirectory(tmp_path / "b"), reference).size > 0


def test_login_with_wrong_password_raises_and_stores_nothing(
    auth_registry: RunningRegistry, docker_config: Path
) -> None:
    """A rejected login raises RegistryUnauthorized and writes no config."""
    with pytest.raises(RegistryUnauthorized) as caught:
        login(auth_registry.host, "docker", "wrong-password")

    assert str(caught.value) == (
        f"login to {auth_registry.host} failed: 'docker' was not accepted "
        f"(GET http://{auth_registry.host}/v2/ returned 401)"
    )
    assert not docker_config.exists()


def test_password_never_appears_in_logs_errors_or_reprs(
    tmp_path: Path, auth_registry: RunningRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """Secrets stay out of log records, exception text and reprs."""
    assert auth_registry.username is not None and auth_registry.password
    credentials = Credentials(auth_registry.username, auth_registry.password)
    caplog.set_level(logging.DEBUG)
    store = StoreDirectory(tmp_path / "a")
    push(
        store,
        make_image(store, FILES),
        f"{auth_registry.host}/t/p:1",
        credentials=credentials,
    )
    with pytest.raises(RegistryUnauthorized) as caught:
        login(auth_registry.host, "docker", "hunter2-secret")

    text = caplog.text + str(caught.value) + repr(credentials)
    assert auth_registry.password not in text
    assert "hunter2-secret" not in text
    assert repr(credentials) == "Credentials(username='docker', password=<hidden>)"


def bearer_registry(
    serve,
    upstream: str,
    user: str,
    password: str,
    refresh_token: str | None = None,
):
    """Serve a stand-in registry that demands Bearer tokens from its realm.

    Requests with a token granting the needed scope are proxied to the real
    registry ``upstream``; the realm ``/token`` checks Basic credentials on
    GET and, when ``refresh_token`` is given, OAuth2 refresh-token grants on
    POST (without it, POST answers 404). Returns (host, token requests as
    (scopes, had credentials) for GET and (scopes, form) for POST).
    """
    tokens: dict[str, set[tuple[str, str]]] = {}
    token_requests: list[tuple[tuple[str, ...], bool | dict[str, str]]] = []
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    host: list[str] = []

    class StandIn(QuietHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/token"):
                self.token()
            else:
                self.guarded()

        def token(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            scopes = tuple(query.get("scope", []))
            authorization = self.headers.get("Authorization")
            token_requests.append((scopes, authorization is not None))
            if query.get("service") != ["stand-in"] or authorization != expected:
                self.reply(401, b'{"details":"bad credentials"}')
                return
            self.grant(scopes, "token")

        def oauth(self) -> None:
            form = dict(urllib.parse.parse_qsl(self.body().decode()))
            scopes = tuple(form.get("scope", "").split())
            token_requests.append((scopes, form))
            if refresh_token is None:
                self.reply(404, b"404 page not found\n")
                return
            if (
                form.get("grant_type") != "refresh_token"
                or form.get("refresh_token") != refresh_token
                or form.get("service") != "stand-in"
            ):
                self.reply(400, b'{"error":"invalid_grant"}')
                return
            self.grant(scopes, "access_token")

        def grant(self, scopes: tuple[str, ...], field: str) -> None:
            granted = set()
            for scope in scopes:
                _, repo, actions = scope.split(":")
                granted |= {(repo, action) for action in actions.split(",")}
            token = f"token-{len(tokens)}"
            tokens[token] = granted
            body = json.dumps({field: token, "expires_in": 300}).encode()
            self.reply(200, body, {"Content-Type": "application/json"})

        def guarded(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if path == "/v2/":
                self.version_check(token in tokens)
                return
            repo = path.removeprefix("/v2/").rsplit("/", 2)[0]
            if "/blobs/uploads" in path:
                repo = path.removeprefix("/v2/").split("/blobs/uploads")[0]
            action = "pull" if self.command in ("GET", "HEAD") else "push"
            if (repo, action) in tokens.get(token, set()):
                self.forward(upstream)
                return
            self.body()
            challenge = (
                f'Bearer realm="http://{host[0]}/token",service="stand-in",'
                f'scope="repository:{repo}:{action}"'
            )
            errors = b'{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}'
            self.reply(401, errors, {"WWW-Authenticate": challenge})

        def version_check(self, valid: bool) -> None:
            if valid:
                self.reply(200, b"{}")
                return
            challenge = f'Bearer realm="http://{host[0]}/token",service="stand-in"'
            self.reply(401, b"", {"WWW-Authenticate": challenge})

        def do_POST(self) -> None:
            if self.path.startswith("/token"):
                self.oauth()
            else:
                self.guarded()

        do_HEAD = do_PUT = do_PATCH = guarded

    host.append(serve(StandIn))
    return host[0], token_requests


def test_bearer_flow_gets_one_token_per_scope_with_credentials(
    tmp_path: Path, registry: RunningRegistry, serve
) -> None:
    """Tokens come from the realm with Basic credentials, once per scope."""
    host, token_requests = bearer_registry(serve, registry.host, "alice", "s3cret")
    credentials = Credentials("alice", "s3cret")
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, [*FILES, {"etc/second": b"2\n"}])
    push(store, manifest, f"{host}/team/app:1", credentials=credentials)
    pulled = pull(
        StoreDirectory(tmp_path / "b"), f"{host}/team/app:1", credentials=credentials
    )

    assert pulled.digest == manifest.digest
    assert token_requests == [
        (("repository:team/app:pull,push",), True),
        (("repository:team/app:pull",), True),
    ]


def test_bearer_flow_without_credentials_is_unauthorized(
    tmp_path: Path, registry: RunningRegistry, serve
) -> None:
    """When the realm refuses anonymous tokens, pull raises RegistryUnauthorized."""
    host, token_requests = bearer_registry(serve, registry.host, "alice", "s3cret")
    with pytest.raises(RegistryUnauthorized) as caught:
        pull(StoreDirectory(tmp_path / "b"), f"{host}/team/app:1")

    assert str(caught.value) == (
        f"manifest pull failed for {host}/team/app:1: GET "
        f"http://{host}/v2/team/app/manifests/1 returned 401 UNAUTHORIZED: "
        "token needed"
    )
    assert token_requests == [(("repository:team/app:pull",), False)]


def test_docker_config_entries_by_url_key_are_found(
    tmp_path: Path, registry: RunningRegistry, serve, docker_config: Path
) -> None:
    """An ``auths`` entry keyed by URL (old Docker style) supplies credentials."""
    host, token_requests = bearer_registry(serve, registry.host, "bob", "pw")
    secret = base64.b64encode(b"bob:pw").decode()
    docker_config.write_text(
        json.dumps({"auths": {f"http://{host}/v1/": {"auth": secret}}})
    )
    store = StoreDirectory(tmp_path / "a")
    push(store, make_image(store, FILES), f"{host}/team/app:1")
    assert token_requests == [(("repository:team/app:pull,push",), True)]


def test_login_to_a_bearer_registry_checks_credentials_at_the_realm(
    registry: RunningRegistry, serve, docker_config: Path
) -> None:
    """login() gets a token with the credentials; a refused one raises."""
    host, token_requests = bearer_registry(serve, registry.host, "carol", "pw")
    with pytest.raises(RegistryUnauthorized):
        login(host, "carol", "wrong")
    assert not docker_config.exists()

    login(f"http://{host}/", "carol", "pw")
    assert json.loads(docker_config.read_text())["auths"] == {
        host: {"auth": base64.b64encode(b"carol:pw").decode()}
    }
    assert token_requests == [((), True), ((), True)]


def test_docker_hub_credentials_use_dockers_key_and_identity_tokens(
    tmp_path: Path,
) -> None:
    """Docker Hub's entry is keyed by its v1 URL; identitytoken is kept."""
    config = tmp_path / "config.json"
    store_credentials("index.docker.io", Credentials("dan", "pw"), config)
    assert list(json.loads(config.read_text())["auths"]) == [
        "https://index.docker.io/v1/"
    ]
    assert load_credentials("docker.io", config) == Credentials("dan", "pw")

    entry = {"auth": base64.b64encode(b"<token>:").decode(), "identitytoken": "idt"}
    config.write_text(json.dumps({"auths": {"ghcr.io": entry}}))
    assert load_credentials("ghcr.io", config) == Credentials(
        "<token>", "", identity_token="idt"
    )
    assert load_credentials("quay.io", config) is None


def test_identity_token_is_traded_for_a_token_by_oauth2_post(
    tmp_path: Path, registry: RunningRegistry, serve, docker_config: Path
) -> None:
    """A stored identitytoken is sent as an OAuth2 refresh-token grant by POST."""
    host, token_requests = bearer_registry(
        serve, registry.host, "alice", "s3cret", refresh_token="refresh-1"
    )
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, FILES)
    push(
        store,
        manifest,
        f"{host}/team/app:1",
        credentials=Credentials("alice", "s3cret"),
    )
    entry = {
        "auth": base64.b64encode(b"<token>:").decode(),
        "identitytoken": "refresh-1",
    }
    docker_config.write_text(json.dumps({"auths": {host: entry}}))

    pulled = pull(StoreDirectory(tmp_path / "b"), f"{host}/team/app:1")

    assert pulled.digest == manifest.digest
    assert token_requests[1:] == [
        (
            ("repository:team/app:pull",),
            {
                "grant_type": "refresh_token",
                "refresh_token": "refresh-1",
                "client_id": "layercake",
                "service": "stand-in",
                "scope": "repository:team/app:pull",
            },
        )
    ]


def test_identity_token_falls_back_to_get_when_the_realm_refuses_post(
    tmp_path: Path, registry: RunningRegistry, serve
) -> None:
    """A realm answering 404 to the POST grant is asked by GET with Basic auth."""
    host, token_requests = bearer_registry(serve, registry.host, "alice", "s3cret")
    credentials = Credentials("alice", "s3cret", identity_token="refresh-1")
    store = StoreDirectory(tmp_path / "a")
    manifest = make_image(store, FILES)
    push(store, manifest, f"{host}/team/app:1", credentials=credentials)

    assert token_requests == [
        (
            ("repository:team/app:pull,push",),
            {
                "grant_type": "refresh_token",
                "refresh_token": "refresh-1",
                "client_id": "layercake",
                "service": "stand-in",
                "scope": "repository:team/app:pull,push",
            },
        ),
        (("repository:team/app:pull,push",), True),
    ]


def test_a_refused_refresh_grant_is_unauthorized_without_the_token(
    tmp_path: Path, registry: RunningRegistry, serve
) -> None:
    """A realm rejecting the identity token makes pull raise, never echoing it."""
    host, _ = bearer_registry(
        serve, registry.host, "alice", "s3cret", refresh_token="refresh-1"
    )
    credentials = Credentials("", "", identity_token="stale-refresh-token")
    with pytest.raises(RegistryUnauthorized) as caught:
        pull(
            StoreDirectory(tmp_path / "b"),
            f"{host}/team/app:1",
            credentials=credentials,
        )

    assert str(caught.value) == (
        f"manifest pull failed for {host}/team/app:1: GET "
        f"http://{host}/v2/team/app/manifests/1 returned 401 UNAUTHORIZED: "
        "token needed"
    )
    assert repr(credentials) == (
        "Credentials(username='', password=<hidden>, identity_token=<hidden>)"
    )
