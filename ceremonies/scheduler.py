"""Beat's scheduler: celery-redbeat's, with the swarm's calendar and reaper in the leader.

RedBeat keeps the schedule in Redis and lets one beat lead through a lock with a timeout: a
second beat waits at start-up until the lock is free, so running two is safe, and if the leader
dies the other takes over within the lock's timeout. On top of it, the leader:

- runs the lease reaper itself (``swarm.reap``), so recovery never waits for a free worker slot;
- sends a ceremony's task once when its period is due and has no report yet (a marker set with
  NX, which a new leader sees too), with the period as an argument, so the task reports on the
  period beat saw even if it runs late; if no report appears within ``RESEND_AFTER_MS`` it is
  sent again (the task is idempotent);
- records each tick (``Keys.beat_tick``), which ``swarm health`` reads.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import structlog
from redbeat import RedBeatScheduler

from ceremonies import store
from ceremonies.calendar import Calendar
from ceremonies.registry import ceremony
from swarm.celery_app import CEREMONY_TASK, REAP_TASK
from swarm.errors import SwarmError
from swarm.ledger import Ledger
from swarm.settings import get_settings
from workers.reaper import reap

TICK_RECORD_TTL_MS = 24 * 3600 * 1000  # the tick record outlives any beat outage worth reporting
RESEND_AFTER_MS = 300_000  # a ceremony task sent but still unreported after this is sent again

log = structlog.get_logger("swarm.beat")


class SwarmScheduler(RedBeatScheduler):  # type: ignore[misc]  # redbeat has no type hints
    """RedBeat plus the calendar, the in-process reaper and a recorded tick."""

    _ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger.from_url(self.app.conf.redbeat_redis_url, get_settings())
        return self._ledger

    def tick(self, *args: Any, **kwargs: Any) -> float:
        remaining: float = super().tick(*args, **kwargs)
        self._record_tick()
        return remaining

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        if entry.task == REAP_TASK:
            entry = self.reserve(entry) if advance else entry
            self._reap()
            return None
        if entry.task == CEREMONY_TASK and len(entry.args) == 1:
            entry = self.reserve(entry) if advance else entry
            period = self._due_period(str(entry.args[0]))
            if period is None:
                return None
            return self.app.send_task(CEREMONY_TASK, args=[entry.args[0], period], producer=producer)
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)

    def _reap(self) -> None:
        try:
            reap(self.ledger)
        except SwarmError as exc:  # Redis is away: the next pass tries again
            log.warning("reap_failed", reason=str(exc))

    def _due_period(self, name: str) -> str | None:
        """The period key to report on now, or None when nothing is due or it is reported."""
        try:
            chosen = ceremony(name)
            calendar = Calendar.load(self.ledger)
            period = chosen.due(calendar, self.ledger.server_time())
            if period is None or store.exists(chosen, self.ledger, period.key):
                return None
            sent_key = self.ledger.keys.report_sent(name, period.key)
            if not self.ledger.read(self.ledger.client.set, sent_key, "1", nx=True, px=RESEND_AFTER_MS):
                return None  # sent already (by this beat or the one before it); the task will report
        except SwarmError as exc:
            log.warning("ceremony_check_failed", ceremony=name, reason=str(exc))
            return None
        log.info("ceremony_due", ceremony=name, period=period.key)
        return period.key

    def _record_tick(self) -> None:
        ledger = self.ledger
        try:
            now = ledger.server_time()
            pipe = ledger.client.pipeline(transaction=False)
            key = ledger.keys.beat_tick
            pipe.hset(
                key,
                mapping={"at": int(now.timestamp() * 1000), "host": socket.gethostname(), "pid": os.getpid()},
            )
            pipe.pexpire(key, TICK_RECORD_TTL_MS)
            ledger.read(pipe.execute)
        except SwarmError as exc:
            log.warning("tick_record_failed", reason=str(exc))
