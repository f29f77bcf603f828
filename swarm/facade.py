"""``Swarm``: the front door — a ledger on the configured Redis, acting as one agent."""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any

from swarm import results, tracing
from swarm.dispatch import Dispatcher
from swarm.embedded import RedisTarget, resolve_redis
from swarm.errors import BadInput
from swarm.ids import new_agent_id
from swarm.ledger import Ledger
from swarm.models import Priority, Role, Status, WorkItem
from swarm.settings import Settings, get_settings
from swarm.submission import submit_work


class Swarm:
    """Connects to ``url`` (else ``REDIS_URL``, else an embedded Redis held until ``close``).

    Holder operations act as ``agent_id`` (else ``SWARM_AGENT_ID``, else a new ``agent_<ns>``).
    Everything else is on ``swarm.ledger``.

    With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, it traces what it submits (``swarm.tracing``):
    each item's trace starts at ``submit``.
    """

    SERVICE_NAME = "swarm-client"  # OTEL_SERVICE_NAME's default

    def __init__(
        self, url: str | None = None, *, agent_id: str | None = None, settings: Settings | None = None
    ) -> None:
        self.settings = settings or get_settings()
        tracing.setup_tracing(self.SERVICE_NAME)
        self._stack = contextlib.ExitStack()
        self.target: RedisTarget = self._stack.enter_context(resolve_redis(url or self.settings.redis_url))
        self.ledger = Ledger.from_url(self.target.url, self.settings)
        self.agent_id = agent_id or self.settings.agent_id or new_agent_id()
        self.dispatch = Dispatcher(self.ledger, self.target.url)

    def close(self) -> None:
        """Closes the connection, and stops the embedded Redis if this Swarm started one."""
        tracing.flush()
        self.dispatch.close()
        self.ledger.client.close()
        self._stack.close()

    def __enter__(self) -> Swarm:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def submit(
        self,
        type: str,
        description: str = "",
        *,
        payload: dict[str, Any] | None = None,
        role: Role | str | None = None,
        team: str | None = None,
        priority: Priority | str | None = None,
        points: int | None = None,
        workflow: str | None = None,
        claim: bool = False,
        enqueue: bool = True,
    ) -> WorkItem:
        """Submits an item and enqueues it for its role's workers.

        ``claim=True`` instead claims it for this agent in the same step (nothing is enqueued).
        ``workflow`` (one of the workflows file's: README, Configuration) starts it at its first stage.
        With tracing on, the item's trace starts in a ``swarm.submit`` span around both.
        """
        return submit_work(
            self.ledger,
            self.dispatch if enqueue else None,
            type,
            description,
            payload=payload,
            role=role,
            team=team,
            priority=priority,
            points=points,
            workflow=workflow,
            claim_for=self.agent_id if claim else None,
        )

    def claim(self, work_id: str) -> WorkItem:
        return self.ledger.claim(work_id, self.agent_id)

    def claim_next(self, role: Role | str) -> WorkItem | None:
        return self.ledger.claim_next(role, self.agent_id)

    def heartbeat(self, item: WorkItem) -> WorkItem:
        return self.ledger.heartbeat(item.id, self.agent_id, fence=self._fence(item))

    def progress(self, item: WorkItem, percent: int, note: str = "") -> WorkItem:
        return self.ledger.progress(item.id, self.agent_id, percent, note, fence=self._fence(item))

    def complete(self, item: WorkItem, result: Any = None, *, points: int | None = None) -> WorkItem:
        return self.ledger.complete(
            item.id, self.agent_id, fence=self._fence(item), result=result, points=points
        )

    def fail(self, item: WorkItem, error: str, *, retry: bool = False) -> WorkItem:
        return self.ledger.fail(item.id, self.agent_id, error, fence=self._fence(item), retry=retry)

    def release(self, item: WorkItem) -> WorkItem:
        return self.ledger.release(item.id, self.agent_id, fence=self._fence(item))

    def cancel(self, work_id: str) -> WorkItem:
        return self.ledger.cancel(work_id, self.agent_id)

    def get(self, work_id: str) -> WorkItem:
        return self.ledger.get(work_id)

    def wait(self, item: WorkItem | str, timeout: float | None = None) -> WorkItem:
        """Blocks until the item, or the workflow stage it handed off to, is finished, and returns
        that stage: its ``status`` (completed, failed, dead or cancelled), ``result`` and ``error``.

        An item already finished returns at once. ``timeout`` (seconds; None waits for ever) runs
        out with ``WaitTimeout``, whose ``item`` is where the work stood.
        """
        return results.wait(self.ledger, _id_of(item), timeout)

    def retry(self, item: WorkItem | str) -> WorkItem:
        """Re-runs a failed or dead item: pending again with a new attempt budget, sent to its
        role's workers (unless it was submitted with ``enqueue=False``). Other statuses raise
        ``InvalidTransition``."""
        return self.ledger.retry(_id_of(item), self.agent_id)

    def chain(self, item: WorkItem | str) -> list[WorkItem]:
        """The workflow stages the item belongs to, first to last (just the item outside one)."""
        return results.chain(self.ledger, _id_of(item))

    def list(self, status: Status | str | None = None, **filters: Any) -> list[WorkItem]:
        return self.ledger.list(status, **filters)

    def _fence(self, item: WorkItem) -> int:
        """Holder writes carry the token of the claim that returned ``item``."""
        if item.fence is None:
            raise BadInput(f"{item.id} has no fencing token: pass the item a claim returned")
        return item.fence


def _id_of(item: WorkItem | str) -> str:
    return item if isinstance(item, str) else item.id
