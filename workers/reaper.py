"""The lease reaper on a timer inside each worker (until beat schedules it).

Every worker runs one; that is safe because ``Ledger.reap`` moves each expired item atomically,
so exactly one reaper gets it back, and only that one re-enqueues it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from swarm.errors import SwarmError
from swarm.ledger import Ledger
from swarm.models import Status, WorkItem

REAPS_PER_LEASE = 4  # look for expired leases four times a lease: recovery within ~1.25 leases

log = structlog.get_logger("swarm.reaper")


def reap_and_requeue(ledger: Ledger, enqueue: Callable[[WorkItem], None]) -> list[tuple[str, Status]]:
    """One pass: expired leases back to pending (or dead), and the pending ones enqueued again."""
    reaped = ledger.reap()
    for work_id, status in reaped:
        log.warning("lease_expired", work_id=work_id, status=status.value)
        if status is Status.PENDING:
            enqueue(ledger.get(work_id))
    return reaped


class ReaperThread:
    """Runs ``reap_and_requeue`` every ``interval`` seconds until stopped."""

    def __init__(self, ledger: Ledger, enqueue: Callable[[WorkItem], None], interval: float) -> None:
        self.ledger = ledger
        self.enqueue = enqueue
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swarm-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                reap_and_requeue(self.ledger, self.enqueue)
            except SwarmError as exc:  # Redis down: try again next pass
                log.warning("reap_failed", reason=str(exc))
