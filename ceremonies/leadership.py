"""Which beat leads: celery-redbeat's lock, taken on each tick without blocking, and the standbys'
record.

RedBeat takes its lock once, in a ``beat_init`` receiver that blocks until the lock is free. A
Redis restart during that wait raises there, Celery swallows it (signal receivers' errors are
logged only), ``scheduler.lock`` stays None and the first tick dies on ``None.extend``: a
standby did not outlive a restart. Here the receiver is disconnected and the scheduler asks
``Leadership.lead`` on every tick instead: a standby tries the lock (SET NX, never blocking),
says that it stands by, and tries again at its next tick; a Redis error is just a failed try. A
leader that finds its lock gone (lost with Redis's data, or expired and taken during an outage)
stands by again, so exactly one beat leads at a time (the lock's SET NX).

Standbys record themselves in ``Keys.beat_standbys`` (``host:pid`` -> last wait, ms), which
``swarm status`` shows next to the leader's tick record (``Keys.beat_tick``).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import structlog
from celery.signals import beat_init
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, acquire_distributed_beat_lock
from redis.exceptions import LockError

from swarm.connection import CONNECTION_ERRORS
from swarm.errors import SwarmError
from swarm.ledger import Ledger

STANDBY_SAY_EVERY_S = 60.0  # a waiting standby repeats that it is one this often
STANDBY_RECORD_TTL_MS = 24 * 3600 * 1000  # the standby record outlives any beat outage worth reporting

RELEASE_ERRORS: tuple[type[BaseException], ...] = (LockError, *CONNECTION_ERRORS)

log = structlog.get_logger("swarm.beat")

# RedBeat's blocking lock at start-up is replaced by the non-blocking one taken on each tick.
beat_init.disconnect(acquire_distributed_beat_lock)


def member() -> str:
    """This beat's name in the records: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    """This beat's hold on the lock: ``lead()`` says whether it leads now, taking the lock if free."""

    def __init__(self, redis_client: Any, key: str, timeout_s: float, poll_s: float) -> None:
        self.key = key
        self.timeout_s = timeout_s
        self.lock: Any = redis_client.lock(key, timeout=timeout_s, sleep=poll_s)
        # RedBeat's extend sets the timeout anew rather than adding to it (as its own lock does).
        self.lock.lua_extend = redis_client.register_script(LUA_EXTEND_TO_SCRIPT)
        self.leading = False
        self._said_at: float | None = None

    def lead(self, ledger: Ledger) -> bool:
        """True when this beat holds the lock (taken now if it was free); Redis errors propagate."""
        if self.leading:
            return True
        if self.lock.acquire(blocking=False):
            self.leading = True
            self._said_at = None
            log.info("beat_leading", detail="beat: Acquired lock", lock=self.key)
            _forget_standby(ledger)
            return True
        self._stand_by(ledger)
        return False

    def lost(self, reason: str) -> None:
        """The lock is not ours any more (gone with Redis's data, or expired and taken)."""
        self.leading = False
        self.lock.local.token = None
        log.warning("beat_lock_lost", reason=reason, detail="standing by until the lock is free")

    def release(self) -> None:
        """At shutdown: free the lock for a standby now rather than at its timeout, if Redis answers."""
        if not self.leading:
            return
        self.leading = False
        try:
            self.lock.release()
        except RELEASE_ERRORS as exc:
            log.warning("beat_lock_not_released", reason=str(exc).splitlines()[0] if str(exc) else "")

    def _stand_by(self, ledger: Ledger) -> None:
        now = time.monotonic()
        if self._said_at is None:
            log.info("beat_standby", detail="another beat leads; this one takes over when its lock is free")
            self._said_at = now
        elif now - self._said_at >= STANDBY_SAY_EVERY_S:
            log.info("beat_standby_waiting", detail="another beat still leads")
            self._said_at = now
        _record_standby(ledger)


def _record_standby(ledger: Ledger) -> None:
    try:
        now_ms = int(ledger.server_time().timestamp() * 1000)
        pipe = ledger.client.pipeline(transaction=False)
        pipe.hset(ledger.keys.beat_standbys, member(), now_ms)
        pipe.pexpire(ledger.keys.beat_standbys, STANDBY_RECORD_TTL_MS)
        ledger.read(pipe.execute)
    except SwarmError as exc:
        log.warning("standby_record_failed", reason=str(exc))


def _forget_standby(ledger: Ledger) -> None:
    try:
        ledger.read(ledger.client.hdel, ledger.keys.beat_standbys, member())
    except SwarmError as exc:
        log.warning("standby_record_failed", reason=str(exc))
