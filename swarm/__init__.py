"""swarm: a distributed task-queue worker swarm on Celery and Redis.

This module is the whole public API; everything else may change.

    from swarm import Swarm
    with Swarm() as s:
        item = s.submit("feature", "Add SSO", priority="high", claim=True)
        s.progress(item, 50, "half way")
        s.complete(item)

Every name is imported on first use (PEP 562), so ``import swarm`` (and the CLI) loads nothing it
does not need, and the core never imports the layers above it: the handler API (``handler``,
``HandlerContext``, the executors) lives in ``workers``, which imports the core.

``swarm.app`` is the swarm's Celery app (``workers.app``), so ``celery -A swarm worker|beat|
inspect|control`` works; it is built from the environment on first use, and left out of
``__all__`` so that ``from swarm import *`` does not build it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarm.errors import (
        BadInput,
        ClaimConflict,
        InvalidTransition,
        LeaseLost,
        NotFound,
        NotOwner,
        RedisUnavailable,
        SwarmError,
        WaitTimeout,
    )
    from swarm.facade import Swarm
    from swarm.ids import new_agent_id, new_work_id
    from swarm.ledger import Ledger
    from swarm.models import Agent, AgentStatus, Event, EventKind, Priority, Role, Status, WorkItem
    from swarm.settings import Settings, get_settings
    from workers.app import app as app
    from workers.context import HandlerContext
    from workers.executors.claude import claude
    from workers.executors.shell import shell
    from workers.handlers import PermanentError, TransientError, handler

__version__ = "0.1.0"

# Each public name and the module that defines it.
_HOMES = {
    "swarm.errors": (
        "BadInput",
        "ClaimConflict",
        "InvalidTransition",
        "LeaseLost",
        "NotFound",
        "NotOwner",
        "RedisUnavailable",
        "SwarmError",
        "WaitTimeout",
    ),
    "swarm.facade": ("Swarm",),
    "swarm.ids": ("new_agent_id", "new_work_id"),
    "swarm.ledger": ("Ledger",),
    "swarm.models": ("Agent", "AgentStatus", "Event", "EventKind", "Priority", "Role", "Status", "WorkItem"),
    "swarm.settings": ("Settings", "get_settings"),
    "workers.app": ("app",),
    "workers.context": ("HandlerContext",),
    "workers.executors": ("claude", "shell"),
    "workers.handlers": ("PermanentError", "TransientError", "handler"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Imports a public name's module on first use, then keeps the name here."""
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'swarm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME_OF})


__all__ = [
    "Agent",
    "AgentStatus",
    "BadInput",
    "ClaimConflict",
    "Event",
    "EventKind",
    "HandlerContext",
    "InvalidTransition",
    "LeaseLost",
    "Ledger",
    "NotFound",
    "NotOwner",
    "PermanentError",
    "Priority",
    "RedisUnavailable",
    "Role",
    "Settings",
    "Status",
    "Swarm",
    "SwarmError",
    "TransientError",
    "WaitTimeout",
    "WorkItem",
    "__version__",
    "claude",
    "get_settings",
    "handler",
    "new_agent_id",
    "new_work_id",
    "shell",
]
