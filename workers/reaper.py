"""The lease reaper (run by the leading beat and by every worker), and the dispatch sweep and
redelivery pass (run in every worker).

``Ledger.reap`` moves each expired item atomically, so a reaper that runs twice (two beats
during a hand-over, a manual ``swarm reap``) still returns each item once. ``Ledger.due_dispatches``
hands each due outbox entry to one sweeper at a time. The sweep sends what the ledger says is
owed a queue message: reaped and released items, retries whose backoff is over, and sends whose
writer died before confirming. It runs in the workers, four times a second, because retries
must start on time and beat does not tick that often. The redelivery pass
(``workers.redelivery``) re-sends items whose sent message the broker lost.

An item the reaper moves to dead (its last attempt's lease expired) gets a ``swarm.reap`` span in
its own trace with ERROR status, as an item that fails in a worker does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from swarm import tracing
from swarm.errors import SwarmError
from swarm.ledger import DISPATCH_BATCH, Dispatch, Ledger
from swarm.models import Status
from workers.redelivery import Redelivery

SWEEP_INTERVAL_S = 0.25  # how late a retry may start after its backoff, at most
DIED_OF = "lease expired on its last attempt"  # a reaped dead item's span's error

log = structlog.get_logger("swarm.reaper")

Send = Callable[[Dispatch], None]


def reap(ledger: Ledger) -> list[tuple[str, Status]]:
    """One reaper pass: expired leases go back to pending (the sweep sends them) or dead."""
    reaped = ledger.reap()
    for work_id, status in reaped:
        log.warning("lease_expired", work_id=work_id, status=status.value)
        if status is Status.DEAD and tracing.enabled():
            _trace_death(ledger, work_id)
    return reaped


def _trace_death(ledger: Ledger, work_id: str) -> None:
    """A ``swarm.reap`` span with ERROR status in the dead item's trace."""
    try:
        item = ledger.get(work_id)
    except SwarmError:  # gone, or Redis away: the trace goes without it
        return
    with tracing.item_context(item.traceparent), tracing.span("swarm.reap") as span:
        tracing.annotate(span, item)
        tracing.record_error(span, item.error or DIED_OF)


def sweep(ledger: Ledger, send: Send) -> int:
    """Sends every due outbox entry (``send`` confirms each); returns how many were sent."""
    sent = 0
    while True:
        due = ledger.due_dispatches()
        for dispatch in due:
            send(dispatch)
            log.info("dispatched", work_id=dispatch.work_id, role=dispatch.role.value)
        sent += len(due)
        if len(due) < DISPATCH_BATCH:
            return sent


class UpkeepThread:
    """Sweeps the outbox every ``SWEEP_INTERVAL_S``, reaps expired leases every
    ``reaper_interval`` (as the leading beat does: a killed beat's lock would otherwise stop
    all reaping until it times out), runs the redelivery pass every ``redeliver_interval``, and
    renews this process's agents' heartbeats (``agents()``) every third of a lease, so that an
    idle worker reads as alive. None of it takes a pool slot."""

    def __init__(
        self,
        ledger: Ledger,
        send: Send,
        agents: Callable[[], list[str]] = list,
        also: Callable[[], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.send = send
        self.agents = agents
        self.also = also  # run at every sweep too (the worker's check for revoked running tasks)
        self.redelivery = Redelivery(ledger, send)
        self._seen_every = ledger.settings.lease_seconds / 3
        self._redeliver_every = ledger.settings.redeliver_interval_seconds
        self._reap_every = ledger.settings.reaper_interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swarm-upkeep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.ledger.settings.socket_timeout + 5)

    def _run(self) -> None:
        next_seen = next_redelivery = 0.0
        next_reap = time.monotonic() + self._reap_every  # then every interval, like beat's
        while not self._stop.wait(SWEEP_INTERVAL_S):
            try:
                if time.monotonic() >= next_seen:
                    next_seen = time.monotonic() + self._seen_every
                    self.ledger.agents_seen(self.agents())
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + self._reap_every
                    reap(self.ledger)
                sweep(self.ledger, self.send)
                if self.also is not None:
                    self.also()
                if time.monotonic() >= next_redelivery:
                    next_redelivery = time.monotonic() + self._redeliver_every
                    self.redelivery.run_once()
            except SwarmError as exc:  # Redis down: try again next time
                log.warning("upkeep_failed", reason=str(exc))
            except Exception:  # e.g. the broker refused a send: keep the thread alive
                log.exception("upkeep_crashed")
