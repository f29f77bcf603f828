"""Upkeep inside each worker: the lease reaper and the dispatch sweep, on one timer thread.

Every worker runs one; that is safe because ``Ledger.reap`` moves each expired item atomically
(exactly one reaper gets it back) and ``Ledger.due_dispatches`` hands each due outbox entry to
one sweeper at a time. The sweep sends what the ledger says is owed a queue message: reaped and
released items, retries whose backoff is over, and sends whose writer died before confirming.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from swarm.errors import SwarmError
from swarm.ledger import DISPATCH_BATCH, Dispatch, Ledger
from swarm.models import Status

REAPS_PER_LEASE = 4  # look for expired leases four times a lease: recovery within ~1.25 leases
SWEEP_INTERVAL_S = 0.25  # how late a retry may start after its backoff, at most

log = structlog.get_logger("swarm.reaper")

Send = Callable[[Dispatch], None]


def reap(ledger: Ledger) -> list[tuple[str, Status]]:
    """One reaper pass: expired leases go back to pending (the sweep sends them) or dead."""
    reaped = ledger.reap()
    for work_id, status in reaped:
        log.warning("lease_expired", work_id=work_id, status=status.value)
    return reaped


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
    """Sweeps the outbox every ``SWEEP_INTERVAL_S`` and reaps every ``reap_interval`` seconds."""

    def __init__(self, ledger: Ledger, send: Send, reap_interval: float) -> None:
        self.ledger = ledger
        self.send = send
        self.reap_interval = reap_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swarm-upkeep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.reap_interval + 5)

    def _run(self) -> None:
        next_reap = time.monotonic() + self.reap_interval
        while not self._stop.wait(SWEEP_INTERVAL_S):
            try:
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + self.reap_interval
                    reap(self.ledger)
                sweep(self.ledger, self.send)
            except SwarmError as exc:  # Redis down: try again next time
                log.warning("upkeep_failed", reason=str(exc))
            except Exception:  # e.g. the broker refused a send: keep the thread alive
                log.exception("upkeep_crashed")
