"""What a running handler sees: its item, and fenced ways to report on it."""

from __future__ import annotations

import threading
from typing import Any

import structlog

from swarm import tracing
from swarm.errors import BadInput
from swarm.ledger import Ledger
from swarm.models import WorkItem


class HandlerContext:
    """Progress, artifacts, cancellation and a bound logger for one claimed item.

    Every write carries the claim's fencing token, so a handler whose lease was lost cannot
    change the item; ``lease_lost`` and ``cancelled`` tell it to stop early.
    """

    def __init__(self, ledger: Ledger, item: WorkItem, agent_id: str) -> None:
        if item.fence is None:
            raise BadInput(f"{item.id} is not claimed")
        self.ledger = ledger
        self.item = item
        self.agent_id = agent_id
        self.fence: int = item.fence
        self.artifacts: dict[str, Any] = dict(item.artifacts)
        self.log = structlog.get_logger("swarm.handler").bind(
            work_id=item.id, agent_id=agent_id, role=item.role.value, trace_id=item.trace_id
        )
        self.send_back_reason: str | None = None
        self._cancelled = threading.Event()
        self._lease_lost = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested (seen at the last heartbeat)."""
        return self._cancelled.is_set()

    @property
    def lease_lost(self) -> bool:
        """True once the lease was lost: the handler's result will be refused."""
        return self._lease_lost.is_set()

    def progress(self, percent: int, note: str = "") -> None:
        """Reports progress (0-100), in a ``swarm.progress`` span; it also renews the lease."""
        with tracing.span("swarm.progress") as span:
            tracing.annotate(span, self.item, agent_id=self.agent_id, fence=self.fence)
            self.item = self.ledger.progress(self.item.id, self.agent_id, percent, note, fence=self.fence)
        if self.item.cancel_requested:
            self._cancelled.set()

    def artifact(self, name: str, value: Any) -> None:
        """Records an output for later stages; stored with the item when it completes."""
        if not isinstance(name, str) or not name:
            raise BadInput("an artifact needs a name")
        self.artifacts[name] = value

    def send_back(self, reason: str) -> None:
        """Returns the work to the workflow's earlier stage (e.g. QA to developer) on completion."""
        self.send_back_reason = reason
        self.artifacts[f"{self.item.role.value}_send_back_{self.item.loops + 1}"] = reason

    def mark_cancelled(self) -> None:
        self._cancelled.set()

    def mark_lease_lost(self) -> None:
        self._lease_lost.set()
