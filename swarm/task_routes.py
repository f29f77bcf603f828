"""The Celery router of ``swarm.execute``: a message goes to its role's queue wherever it comes from.

The swarm's own sends name their queue (``swarm.dispatch.enqueue``). Anything else that sends the
task, ``execute_item.delay(...)``, ``apply_async``, ``send_task`` or Flower's "send task", names
none, and Celery would put it on the default queue whatever its role. This router (in
``task_routes``) reads the role from the arguments ``(work_id, type, role)`` and the priority
from the item in the ledger (one ``HGET``; ``medium`` when the item or Redis is not there), and
sends it to ``<prefix>.<role>.<priority>``. A queue named by the sender wins, as Celery's routers
always let it: a worker that takes a message of a role it does not serve sends it on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from swarm.connection import client_from_url
from swarm.errors import SwarmError
from swarm.keys import Keys
from swarm.models import Priority, Role
from swarm.settings import Settings


class ExecuteRouter:
    """``task_routes`` entry: ``task_name`` to its role's queue at its item's priority
    (``queue_for``), reading the item from the ledger on ``broker_url`` (the same Redis)."""

    def __init__(
        self, task_name: str, queue_for: Callable[[Role, Priority], str], settings: Settings, broker_url: str
    ) -> None:
        self.task_name = task_name
        self.queue_for = queue_for
        self.settings = settings
        self.broker_url = broker_url
        self.keys = Keys(settings.key_prefix)
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()

    def __call__(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
        task: Any = None,
        **_: Any,
    ) -> dict[str, str] | None:
        if name != self.task_name or (options or {}).get("queue"):
            return None  # not ours, or the sender chose (the swarm's own sends do)
        work_id, role = _argument(args, kwargs, 0, "work_id"), _argument(args, kwargs, 2, "role")
        if role not in {r.value for r in Role}:
            return None  # no swarm message: the worker's guard dead-letters it
        queue = self.queue_for(Role(role), self._priority(work_id))
        return {"queue": queue, "routing_key": queue}

    def _priority(self, work_id: str | None) -> Priority:
        if not work_id:
            return Priority.MEDIUM
        try:
            value = self._redis().hget(self.keys.item(work_id), "priority")
        except (redis.RedisError, OSError, SwarmError):  # a router must never fail a send
            return Priority.MEDIUM
        try:
            return Priority(str(value))
        except ValueError:
            return Priority.MEDIUM  # no such item (yet): its message still claims for its role

    def _redis(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                self._client = client_from_url(self.broker_url, socket_timeout=self.settings.socket_timeout)
            return self._client


def _argument(
    args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None, index: int, name: str
) -> str | None:
    """The task's argument by position or by name (``delay(work_id=..., ...)``), if a string."""
    value = args[index] if args is not None and len(args) > index else (kwargs or {}).get(name)
    return value if isinstance(value, str) else None
