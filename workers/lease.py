"""``LeaseKeeper``: heartbeats a claimed item in the background while its handler runs."""

from __future__ import annotations

import threading
from types import TracebackType

import structlog

from swarm.errors import LeaseLost, NotOwner, RedisUnavailable, SwarmError
from workers.context import HandlerContext

HEARTBEATS_PER_LEASE = 3  # renew three times a lease: two missed beats still leave time

log = structlog.get_logger("swarm.lease")


class LeaseKeeper:
    """Renews the lease every ``lease / HEARTBEATS_PER_LEASE`` seconds until stopped.

    A heartbeat's reply carries ``cancel_requested``; a refused one means the lease is gone.
    Either is passed to the handler through its context. A Redis outage is retried at the next
    beat: the lease only runs out if the outage outlasts it.
    """

    def __init__(self, ctx: HandlerContext, lease_seconds: float) -> None:
        self.ctx = ctx
        self.interval = lease_seconds / HEARTBEATS_PER_LEASE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{ctx.item.id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        ctx = self.ctx
        while not self._stop.wait(self.interval):
            try:
                item = ctx.ledger.heartbeat(ctx.item.id, ctx.agent_id, fence=ctx.fence)
            except (LeaseLost, NotOwner) as exc:
                log.warning("lease_lost", work_id=ctx.item.id, agent_id=ctx.agent_id, reason=str(exc))
                ctx.mark_lease_lost()
                return
            except RedisUnavailable as exc:
                log.warning("heartbeat_failed", work_id=ctx.item.id, reason=str(exc))
                continue
            except SwarmError as exc:  # e.g. the item was finished meanwhile
                log.info("heartbeat_stopped", work_id=ctx.item.id, reason=str(exc))
                return
            if item.cancel_requested:
                ctx.mark_cancelled()
