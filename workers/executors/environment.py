"""What an executor's child process inherits: the worker's environment without the swarm's secrets.

Every command an executor starts (``shell``, ``claude``, the improvement advisor, and the git
commands of a per-item worktree, whose hooks run whatever the repository says) gets the worker's
environment minus the variables that carry the ledger's credentials or the swarm's other secrets:
a command, or an agent running tools, has no business reaching the ledger behind its handler's
back, nor learning Flower's password. A handler that wants its command to have one of them
passes it explicitly (``env={...}``). Names are compared case-insensitively, as the settings read
them. A ``python`` handler runs inside the worker, with the worker's own environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SECRET_VARIABLES = frozenset(
    {
        "REDIS_URL",  # the ledger's and the broker's Redis, with its password
        "SWARM_REDIS_URL",
        "REDISCLI_AUTH",  # redis-cli's password
        "CELERY_BROKER_URL",  # Celery's own spellings of the broker's URL
        "CELERY_RESULT_BACKEND",
        "SWARM_FLOWER_BASIC_AUTH",  # Flower's credentials, as the swarm and as Flower read them
        "FLOWER_BASIC_AUTH",
        "SWARM_CONFIG",  # the settings file, which may hold redis_url and flower_basic_auth
    }
)


def is_secret(name: str) -> bool:
    return name.upper() in SECRET_VARIABLES


def child_environment(
    extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` (the worker's environment) without the secrets, plus ``extra`` (which may set
    anything, a secret too: the handler's explicit choice)."""
    inherited = os.environ if base is None else base
    return {k: v for k, v in inherited.items() if not is_secret(k)} | dict(extra or {})
