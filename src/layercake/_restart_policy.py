"""Restart policies, as ``docker run --restart`` takes them, and Docker's back-off.

A policy is ``no``, ``always``, ``unless-stopped``, ``on-failure`` or
``on-failure:N``. The monitor of a started container asks
:meth:`RestartPolicy.should_restart` each time the container's process ends
and waits :meth:`Backoff.delay` before starting it again.
"""

from __future__ import annotations

import re
from typing import Literal, cast

import attrs

from layercake.errors import ContainerConfigError

__all__ = ["NO_RESTART", "Backoff", "RestartPolicy", "conflicts_with_rm"]

PolicyName = Literal["no", "always", "unless-stopped", "on-failure"]

# Go's strconv.Atoi, which docker parses the count with: an optional sign
# and decimal digits, nothing else.
_INTEGER = re.compile(r"[+-]?[0-9]+")

_FIRST_DELAY = 0.1
_MAX_DELAY = 60.0
# A run that lasted this long starts the back-off afresh.
_RESET_AFTER = 10.0


@attrs.frozen
class RestartPolicy:
    """What to do when a container's process ends: Docker's ``RestartPolicy``.

    ``maximum_retry_count`` limits ``on-failure`` restarts; 0 means no limit.
    """

    name: PolicyName = "no"
    maximum_retry_count: int = 0

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """Read ``--restart``'s value; ``""`` is ``no``, as docker takes it.

        Raises:
            ContainerConfigError: the value is not a policy, with docker's
                message for it.
        """
        name, colon, count = text.partition(":")
        if colon and not name:
            raise ContainerConfigError(
                "invalid restart policy format: no policy provided before colon"
            )
        retries = 0
        if count:
            if not _INTEGER.fullmatch(count):
                raise ContainerConfigError(
                    "invalid restart policy format: maximum retry count must be "
                    "an integer"
                )
            retries = int(count)
        name = name or "no"
        if name in ("no", "always", "unless-stopped"):
            if retries:
                raise ContainerConfigError(
                    "invalid restart policy: maximum retry count can only be used "
                    "with 'on-failure'"
                    + (" and cannot be negative" if retries < 0 else "")
                )
        elif name == "on-failure":
            if retries < 0:
                raise ContainerConfigError(
                    "invalid restart policy: maximum retry count cannot be negative"
                )
        else:
            raise ContainerConfigError(
                f"invalid restart policy: unknown policy '{name}'; use one of "
                "'no', 'always', 'on-failure', or 'unless-stopped'"
            )
        return cls(cast(PolicyName, name), retries)

    def should_restart(self, exit_code: int, restart_count: int, stopped: bool) -> bool:
        """Whether a process that ended with ``exit_code`` is started again.

        ``restart_count`` is how often it was restarted already; ``stopped``
        says the user stopped or killed it, which no policy overrides.
        """
        if stopped or self.name == "no":
            return False
        if self.name == "on-failure":
            limit = self.maximum_retry_count
            return exit_code != 0 and (limit == 0 or restart_count < limit)
        return True

    def inspect(self) -> dict[str, str | int]:
        """``HostConfig.RestartPolicy`` as ``docker inspect`` shows it."""
        return {"Name": self.name, "MaximumRetryCount": self.maximum_retry_count}


NO_RESTART = RestartPolicy()
"""The default policy: a process that ended is never started again."""


def conflicts_with_rm(policy: RestartPolicy) -> ContainerConfigError | None:
    """Docker's refusal of ``--rm`` together with a policy other than ``no``."""
    if policy.name == "no":
        return None
    return ContainerConfigError(
        "conflicting options: cannot specify both --restart and --rm"
    )


class Backoff:
    """Docker's delay before each restart.

    100 ms before the first, doubling before each next one up to a minute;
    a run that lasted ten seconds or more starts again at 100 ms.
    """

    def __init__(self) -> None:
        self._delay = 0.0

    def delay(self, ran_for: float) -> float:
        """The seconds to wait before restarting a run that lasted ``ran_for``."""
        if ran_for >= _RESET_AFTER:
            self._delay = 0.0
        self._delay = min(_MAX_DELAY, self._delay * 2 if self._delay else _FIRST_DELAY)
        return self._delay
