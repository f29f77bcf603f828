"""What a running handler sees: its item, and fenced ways to report on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from swarm import tracing
from swarm.errors import BadInput, LeaseLost, NotOwner
from swarm.ledger import Ledger
from swarm.models import WorkItem
from workers.outage import LeaseClock, RetryAbandoned, within_lease


class HandlerContext:
    """Progress, artifacts, cancellation and a bound logger for one claimed item.

    Every write carries the claim's fencing token, so a handler whose lease was lost cannot
    change the item; ``lease_lost``, ``cancelled`` and ``timed_out`` tell it to stop early.
    ``clock`` says when the lease runs out by the server's reckoning: a write that cannot reach
    Redis is tried again until then (``workers.outage``).
    """

    def __init__(
        self,
        ledger: Ledger,
        item: WorkItem,
        agent_id: str,
        *,
        lease_seconds: float | None = None,
        claim_sent_at: float | None = None,
    ) -> None:
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
        self._timed_out = threading.Event()
        lease = lease_seconds or claim_lease_seconds(item) or ledger.settings.lease_seconds
        self.clock = LeaseClock(lease, time.monotonic() if claim_sent_at is None else claim_sent_at)

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested (seen at the last heartbeat)."""
        return self._cancelled.is_set()

    @property
    def lease_lost(self) -> bool:
        """True once the lease was lost: the handler's result will be refused."""
        return self._lease_lost.is_set()

    @property
    def timed_out(self) -> bool:
        """True once the handler ran past its ``timeout`` option: it is being stopped."""
        return self._timed_out.is_set()

    def progress(self, percent: int, note: str = "") -> None:
        """Reports progress (0-100), in a ``swarm.progress`` span; it also renews the lease.

        While Redis is unreachable it is tried again, with a short pause, for as long as the lease
        lasts. ``LeaseLost`` (``OutageOutlastedLease`` when an outage outlasted the lease) means
        the item is no longer this handler's: ``lease_lost`` is then True.
        """
        with tracing.span("swarm.progress") as span:
            tracing.annotate(span, self.item, agent_id=self.agent_id, fence=self.fence)
            wid, agent, fence = self.item.id, self.agent_id, self.fence
            try:
                self.item = self.renewing(
                    lambda: self.ledger.progress(wid, agent, percent, note, fence=fence),
                    "progress",
                    wait=self._lease_lost.wait,
                )
            except RetryAbandoned as exc:  # the lease keeper found the lease lost meanwhile
                raise LeaseLost(f"{agent} lost the lease on {wid}", agent) from exc
        if self.item.cancel_requested:
            self._cancelled.set()

    def renewing(
        self, write: Callable[[], WorkItem], what: str, *, wait: Callable[[float], bool]
    ) -> WorkItem:
        """A write that renews the lease (progress, heartbeat), tried within the lease; a refusal
        or an outage that outlasts the lease marks the lease lost and is raised. ``wait`` is the
        pause between tries (True: stop trying, ``RetryAbandoned``)."""

        def timed() -> WorkItem:
            sent = time.monotonic()
            item: WorkItem = write()
            self.clock.renewed(sent)
            return item

        try:
            return within_lease(timed, self.clock, what, wait=wait)
        except (LeaseLost, NotOwner) as exc:
            self.log.warning("lease_lost", during=what, reason=str(exc))
            self.mark_lease_lost()
            raise

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

    def mark_timed_out(self) -> None:
        self._timed_out.set()


def claim_lease_seconds(item: WorkItem) -> float | None:
    """The length of the item's current lease, from the server's own times (None if unknown)."""
    if item.claimed_at is None or item.lease_expires_at is None:
        return None
    seconds = (item.lease_expires_at - item.claimed_at).total_seconds()
    return seconds if seconds > 0 else None
