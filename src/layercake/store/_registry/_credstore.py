"""Docker credential helpers: ``docker-credential-<name> get|store|erase``.

Docker's config names a helper for every registry (``credsStore``) or for
some (``credHelpers``, by registry host). A helper is a program on ``PATH``
that reads a server URL (``get``, ``erase``) or a JSON object (``store``) on
its standard input and answers ``{"ServerURL", "Username", "Secret"}`` as
JSON. A ``Username`` of ``<token>`` means the secret is an identity token.

Secrets never appear in log lines or exception messages: a failing helper is
reported by name and exit status only.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess

import attrs

from layercake.errors import RegistryError

__all__ = ["NOT_FOUND", "CredentialHelper", "HelperSecret"]

logger = logging.getLogger(__name__)

#: What helpers print when they hold nothing for a server.
NOT_FOUND = "credentials not found in native keychain"
_TOKEN_USER = "<token>"
_TIMEOUT = 30.0


@attrs.frozen(repr=False)
class HelperSecret:
    """What a helper holds for one server: a user and a secret."""

    username: str
    secret: str = attrs.field(repr=False)

    @property
    def is_identity_token(self) -> bool:
        """Whether the secret is an identity (refresh) token, not a password."""
        return self.username == _TOKEN_USER

    def __repr__(self) -> str:
        return f"HelperSecret(username={self.username!r}, secret=<hidden>)"


@attrs.frozen
class CredentialHelper:
    """One credential helper program, ``docker-credential-<name>``."""

    name: str

    @property
    def program(self) -> str:
        """The program's name as looked up on ``PATH``."""
        return f"docker-credential-{self.name}"

    def get(self, server: str) -> HelperSecret | None:
        """Return what the helper holds for ``server``, or ``None``.

        Raises:
            RegistryError: the helper is missing, failed, or answered
                something other than its JSON object.
        """
        result = self._run("get", server)
        if result is None:
            return None
        try:
            body = json.loads(result)
            username = body["Username"]
            secret = body["Secret"]
        except (ValueError, KeyError, TypeError):
            raise RegistryError(
                f"credential helper {self.program} answered malformed JSON for {server}"
            ) from None
        if not isinstance(username, str) or not isinstance(secret, str):
            raise RegistryError(
                f"credential helper {self.program} answered malformed JSON for {server}"
            )
        return HelperSecret(username, secret)

    def store(self, server: str, username: str, secret: str) -> None:
        """Give the helper ``username`` and ``secret`` for ``server``.

        Raises:
            RegistryError: the helper is missing or failed.
        """
        payload = {"ServerURL": server, "Username": username, "Secret": secret}
        self._run("store", json.dumps(payload))
        logger.info("stored credentials for %s in %s", server, self.program)

    def erase(self, server: str) -> bool:
        """Make the helper forget ``server``; ``False`` if it held nothing.

        Raises:
            RegistryError: the helper is missing or failed.
        """
        erased = self._run("erase", server) is not None
        if erased:
            logger.info("erased credentials for %s from %s", server, self.program)
        return erased

    def _run(self, verb: str, stdin: str) -> str | None:
        # None means the helper said it holds nothing for the server.
        path = shutil.which(self.program)
        if path is None:
            raise RegistryError(
                f"credential helper {self.program} was not found on PATH"
            )
        try:
            done = subprocess.run(
                [path, verb],
                input=stdin.encode(),
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RegistryError(
                f"credential helper {self.program} {verb} failed: {type(exc).__name__}"
            ) from None
        answer = done.stdout.decode("utf-8", "replace")
        if done.returncode == 0:
            return answer
        # Only the fixed not-found message is echoed; other output may hold
        # a secret.
        said = (answer + done.stderr.decode("utf-8", "replace")).strip()
        if said == NOT_FOUND:
            return None
        raise RegistryError(
            f"credential helper {self.program} {verb} failed "
            f"with exit status {done.returncode}"
        )
