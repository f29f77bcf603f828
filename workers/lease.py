"""``LeaseKeeper``: heartbeats a claimed item in the background while its handler runs."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from types import TracebackType

import structlog

from swarm import validation
from swarm.errors import BadInput, LeaseLost, NotOwner, SwarmError
from swarm.ledger import Ledger
from workers.context import HandlerContext
from workers.outage import RetryAbandoned

HEARTBEATS_PER_LEASE = 3  # renew three times a lease: two missed beats still leave time

log = structlog.get_logger("swarm.lease")


class LeaseKeeper:
    """Renews the lease every ``lease / HEARTBEATS_PER_LEASE`` seconds until stopped.

    A heartbeat's reply carries ``cancel_requested``; a refused one means the lease is gone.
    Either is passed to the handler through its context. A heartbeat that cannot reach Redis is
    tried again with a short pause (``workers.outage``) for as long as the lease lasts by the
    server's reckoning: an outage shorter than the lease costs nothing; a longer one marks the
    lease lost.
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
            if ctx.lease_lost:  # a progress report found it lost
                return
            try:
                item = ctx.renewing(
                    lambda: ctx.ledger.heartbeat(ctx.item.id, ctx.agent_id, fence=ctx.fence),
                    "heartbeat",
                    wait=self._stop.wait,
                )
            except (LeaseLost, NotOwner, RetryAbandoned):  # lost (marked and logged), or stopped
                return
            except SwarmError as exc:  # e.g. the item was finished meanwhile
                log.info("heartbeat_stopped", work_id=ctx.item.id, reason=str(exc))
                return
            if item.cancel_requested:
                ctx.mark_cancelled()


TUNING_TTL_S = 1.0  # the tuning hash is read at most once a second per process
LEASE_FIELD = "lease_seconds:"  # keys.tuning field prefix, then the role (ceremonies.improve sets it)


def lease_field(role: str) -> str:
    """The ``keys.tuning`` field holding ``role``'s tuned lease."""
    return LEASE_FIELD + role


def parse_leases(raw: Mapping[str, str]) -> dict[str, float]:
    """The tuned leases in a ``keys.tuning`` hash, by role name: the one parser of that hash.

    A field that does not parse, or a lease outside the ledger's bounds, is skipped.
    """
    leases: dict[str, float] = {}
    for name, value in raw.items():
        if name.startswith(LEASE_FIELD):
            with contextlib.suppress(ValueError, BadInput):
                leases[name.removeprefix(LEASE_FIELD)] = validation.lease_ms(float(value)) / 1000
    return leases


class LeaseTuning:
    """The per-role leases the improvement cycle set in ``keys.tuning``, cached for a second.

    A claim asks for its item's lease here. While no role has a tuned lease (the usual case)
    that costs nothing after the cached read; otherwise the item's role is read too, unless the
    caller knows it. Values outside the ledger's lease bounds are ignored.
    """

    def __init__(self, ttl: float = TUNING_TTL_S) -> None:
        self.ttl = ttl
        self._cache: dict[str, tuple[float, dict[str, float]]] = {}  # tuning key -> (read at, leases)

    def leases(self, ledger: Ledger) -> dict[str, float]:
        key = ledger.keys.tuning
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        leases = parse_leases(ledger.read(ledger.client.hgetall, key))
        self._cache[key] = (time.monotonic(), leases)  # a race only reads twice
        return leases

    def lease_for(self, ledger: Ledger, work_id: str, role: str | None = None) -> float | None:
        """The tuned lease of ``work_id``'s role, or None for the ledger's default."""
        leases = self.leases(ledger)
        if not leases:
            return None
        if role is None:
            role = ledger.read(ledger.client.hget, ledger.keys.item(work_id), "role")
        return leases.get(role) if role else None


tuning = LeaseTuning()  # this process's cache
