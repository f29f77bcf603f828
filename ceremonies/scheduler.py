"""Beat's scheduler: celery-redbeat's, with the swarm's calendar and reaper in the leader.

RedBeat keeps the schedule in Redis and lets one beat lead through a lock with a timeout: a
second beat waits at start-up until the lock is free, so running two is safe, and if the leader
dies the other takes over within the lock's timeout. On top of it, the leader:

- runs the lease reaper itself (``swarm.reap``), so recovery never waits for a free worker slot;
- sends a ceremony's task once when its period is due and has no report yet (a marker set with
  NX, which a new leader sees too), with the period as an argument, so the task reports on the
  period beat saw even if it runs late; if no report appears within ``RESEND_AFTER_MS`` it is
  sent again (the task is idempotent). System Demo and Inspect & Adapt also catch up on up to
  ``CATCH_UP`` ended periods that have no report (beat was down when they ended); PI Planning
  and ART Sync are about the present, so a missed one stays missed;
- records each tick (``Keys.beat_tick``), which ``swarm health`` reads;
- survives a Redis restart (RedBeat's own tick exits on one), and stores the schedule again if
  Redis lost it (a restart without persistence).

Every beat, leader or standby, asks for the lock on each tick without blocking
(``ceremonies.leadership``), so a standby outlives Redis restarts too and says that it stands by.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import structlog
from redbeat import RedBeatScheduler
from redbeat.schedulers import get_redis
from redis.exceptions import LockError, RedisError

from ceremonies import store
from ceremonies.leadership import Leadership
from ceremonies.registry import ceremony
from ceremonies.schedule import beat_schedule
from swarm.calendar import Calendar
from swarm.celery_app import CEREMONY_TASK, REAP_TASK
from swarm.connection import CONNECTION_ERRORS
from swarm.errors import SwarmError
from swarm.ledger import Ledger
from swarm.settings import get_settings
from workers.reaper import reap

TICK_RECORD_TTL_MS = 24 * 3600 * 1000  # the tick record outlives any beat outage worth reporting
REDIS_RETRY_S = 1.0  # while Redis is away, the tick is tried again this often
RESEND_AFTER_MS = 60_000  # a ceremony task sent but still unreported after this is sent again
CATCH_UP = 3  # ended periods a ceremony looks back for, when beat was down at their end
CATCH_UP_CEREMONIES = ("system-demo", "inspect-adapt")  # the ones that report on ended periods

log = structlog.get_logger("swarm.beat")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class SwarmScheduler(RedBeatScheduler):  # type: ignore[misc]  # redbeat has no type hints
    """RedBeat plus the calendar, the in-process reaper and a recorded tick."""

    _ledger: Ledger | None = None
    _leadership: Leadership | None = None
    _newly_leading = True  # the schedule is checked (stored again if lost) when a beat starts to lead
    _calendar: Calendar | None = None  # the agreed calendar the schedule was set up for
    _calendar_changed = False  # `swarm calendar set` changed it: the schedule is set up again

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger.from_url(self.app.conf.redbeat_redis_url, get_settings())
        return self._ledger

    @property
    def leadership(self) -> Leadership:
        if self._leadership is None:
            self._leadership = Leadership(
                get_redis(self.app), self.lock_key, self.lock_timeout, float(self.max_interval)
            )
            self.lock = self._leadership.lock  # what RedBeat's tick extends
        return self._leadership

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """RedBeat's tick in the leader, riding out a Redis restart instead of exiting (as
        RedBeat's would); a standby's try for the lock in the others.

        While Redis is away the tick is retried every second. A restarted Redis may have lost
        the lock (no persistence), and another beat may have taken it meanwhile: this beat then
        stands by, trying for the lock at each tick, and stores the schedule again when it leads.
        """
        retry = min(float(self.max_interval), REDIS_RETRY_S)
        leadership = self.leadership
        try:
            if not leadership.lead(self.ledger):
                return float(self.max_interval)
            if self._newly_leading:
                self._restore_schedule()
                self._newly_leading = False
            elif self._calendar_changed:
                log.info("beat_calendar_changed", detail="the schedule follows the changed calendar")
                self.setup_schedule()
            remaining: float = super().tick(*args, **kwargs)
        except CONNECTION_ERRORS as exc:
            log.warning("beat_redis_unavailable", reason=_first_line(exc))
            return retry
        except SwarmError as exc:  # the ledger's Redis error (RedisUnavailable)
            log.warning("beat_redis_unavailable", reason=str(exc))
            return retry
        except LockError as exc:  # extend found the lock gone, or another beat's
            leadership.lost(str(exc))
            self._newly_leading = True
            return 0.0
        except RedisError as exc:  # a Redis refusing for now (LOADING, MISCONF, READONLY...)
            log.warning("beat_redis_error", reason=_first_line(exc))
            return retry
        self._record_tick()
        return remaining

    def close(self) -> None:
        """Frees the lock if this beat leads and Redis answers; never raises at shutdown."""
        if self._leadership is not None:
            self._leadership.release()
        self.lock = None
        super().close()

    def setup_schedule(self) -> None:
        """RedBeat's, on the schedule of the agreed calendar: the ceremonies' check interval
        (``calendar_tick``, by default iteration / 20) follows the calendar stored in Redis, not
        this process's own settings."""
        try:  # the calendar starts when the swarm first runs, not at the first ceremony's tick
            calendar = Calendar.load(self.ledger)
        except SwarmError as exc:
            log.warning("calendar_not_started", reason=str(exc))
        else:
            self.app.conf.beat_schedule = beat_schedule(calendar.applied_to(self.ledger.settings))
            self._calendar, self._calendar_changed = calendar, False
        super().setup_schedule()

    def _restore_schedule(self) -> None:
        """A Redis that lost its data (no persistence) lost RedBeat's entries too: store them again,
        or beat would tick on with nothing to send (no reaper, no ceremonies)."""
        schedule_key = self.app.redbeat_conf.schedule_key
        if not self.ledger.read(self.ledger.client.exists, schedule_key):
            log.warning("beat_schedule_restored", detail="the schedule was gone from Redis")
            self.setup_schedule()

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        if entry.task == REAP_TASK:
            entry = self.reserve(entry) if advance else entry
            self._reap()
            return None
        if entry.task == CEREMONY_TASK and len(entry.args) == 1:
            entry = self.reserve(entry) if advance else entry
            sent = None
            for period in self._due_periods(str(entry.args[0])):
                sent = self.app.send_task(CEREMONY_TASK, args=[entry.args[0], period], producer=producer)
            return sent
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)

    def _reap(self) -> None:
        try:
            reap(self.ledger)
        except SwarmError as exc:  # Redis is away: the next pass tries again
            log.warning("reap_failed", reason=str(exc))

    def _due_periods(self, name: str) -> list[str]:
        """The period keys to report on now, oldest first: the due one, and for the ceremonies
        that report on ended periods, up to ``CATCH_UP`` earlier ones that a beat outage left
        without a report. Each is returned once (a marker set with NX) until ``RESEND_AFTER_MS``."""
        try:
            chosen = ceremony(name)
            calendar = Calendar.load(self.ledger)
            if calendar != self._calendar:
                self._calendar_changed = True  # the next tick sets the schedule up again
            period = chosen.due(calendar, self.ledger.server_time())
            if period is None:
                return []
            earlier = calendar.earlier(period, CATCH_UP) if name in CATCH_UP_CEREMONIES else []
            keys = []
            for candidate in [*earlier, period]:
                if store.exists(chosen, self.ledger, candidate.key):
                    continue
                sent_key = self.ledger.keys.report_sent(name, candidate.key)
                if self.ledger.read(self.ledger.client.set, sent_key, "1", nx=True, px=RESEND_AFTER_MS):
                    keys.append(candidate.key)  # else sent already (by this beat or the one before)
        except SwarmError as exc:
            log.warning("ceremony_check_failed", ceremony=name, reason=str(exc))
            return []
        for key in keys:
            log.info("ceremony_due", ceremony=name, period=key)
        return keys

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
