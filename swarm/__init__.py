"""swarm: a distributed task-queue worker swarm on Celery and Redis.

This module is the whole public API; everything else may change.

    from swarm import Swarm
    with Swarm() as s:
        item = s.submit("feature", "Add SSO", priority="high", claim=True)
        s.progress(item, 50, "half way")
        s.complete(item)
"""

from swarm.errors import (
    BadInput,
    ClaimConflict,
    InvalidTransition,
    LeaseLost,
    NotFound,
    NotOwner,
    RedisUnavailable,
    SwarmError,
)
from swarm.facade import Swarm
from swarm.ids import new_agent_id, new_work_id
from swarm.ledger import Ledger
from swarm.models import Agent, AgentStatus, Event, EventKind, Priority, Role, Status, WorkItem
from swarm.settings import Settings, get_settings
from workers.context import HandlerContext
from workers.executors import claude, shell
from workers.handlers import PermanentError, TransientError, handler

__version__ = "0.1.0"

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
    "WorkItem",
    "__version__",
    "claude",
    "get_settings",
    "handler",
    "new_agent_id",
    "new_work_id",
    "shell",
]
