"""Riding out a Redis outage while holding a lease: the lease clock and the retry loop.

A holder's writes (heartbeat, progress, the outcome) that cannot reach Redis are tried again
with a short, growing pause for as long as the lease is live by the server's reckoning. Our
clock is conservative: a write that renewed the lease was *sent* before the server ran it, so
``sent + lease`` never falls after the server's own expiry. Once that moment passes, the claim
key has expired on the server (its TTL runs on while Redis is down, and through a restart from
its AOF), so every later holder write would be refused anyway: the holder has lost its lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog

from swarm.errors import LeaseLost, RedisUnavailable

T = TypeVar("T")

RETRY_PAUSE_S = 0.2  # first pause after a write that could not reach Redis
RETRY_BACKOFF = 1.5  # each further pause is this much longer ...
RETRY_PAUSE_MAX_S = 1.0  # ... up to this

log = structlog.get_logger("swarm.outage")


class OutageOutlastedLease(LeaseLost):
    """Redis stayed unreachable until the lease ran out: the item is no longer this holder's."""


class RetryAbandoned(Exception):
    """The caller's ``wait`` asked to stop trying (e.g. the holder is done, or lost its lease)."""


class LeaseClock:
    """When the holder's lease runs out, by a clock that never runs behind the server's.

    ``renewed(sent_at)`` records a write that renewed the lease (a claim, a heartbeat, a
    progress report), with the ``time.monotonic()`` at which it was sent.
    """

    def __init__(self, lease_seconds: float, sent_at: float) -> None:
        self.lease_seconds = lease_seconds
        self._expires_at = sent_at + lease_seconds
        self._lock = threading.Lock()

    def renewed(self, sent_at: float) -> None:
        with self._lock:
            self._expires_at = max(self._expires_at, sent_at + self.lease_seconds)

    @property
    def expires_at(self) -> float:
        """The ``time.monotonic()`` at which the lease runs out unless renewed."""
        with self._lock:
            return self._expires_at

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()


def retry_pauses() -> Callable[[], float]:
    """0.2 s, 0.3 s, 0.45 s, ... up to 1 s: the pauses between tries of one write."""
    pause = RETRY_PAUSE_S / RETRY_BACKOFF

    def next_pause() -> float:
        nonlocal pause
        pause = min(RETRY_PAUSE_MAX_S, pause * RETRY_BACKOFF)
        return pause

    return next_pause


def within_lease(
    write: Callable[[], T],
    clock: LeaseClock,
    what: str,
    *,
    wait: Callable[[float], bool],
    on_unreachable: Callable[[RedisUnavailable], None] | None = None,
) -> T:
    """``write()``, tried again while it cannot reach Redis and the lease is live.

    ``wait(seconds)`` is the pause between tries; it returns True to give up early (e.g. the
    holder is done), raising ``RetryAbandoned``. ``on_unreachable`` hears of each failed try (a
    write whose reply was lost may have landed). Raises ``OutageOutlastedLease`` when the lease
    runs out first.
    """
    next_pause = retry_pauses()
    tries = 0
    while True:
        tries += 1
        try:
            return write()
        except RedisUnavailable as exc:
            if on_unreachable is not None:
                on_unreachable(exc)
            pause = min(next_pause(), clock.remaining())
            if pause > 0 and wait(pause):
                raise RetryAbandoned(what) from exc
            if clock.remaining() <= 0:
                raise OutageOutlastedLease(
                    f"{what}: Redis was unreachable until the lease ran out ({tries} tries): {exc}"
                ) from exc
            if tries == 1:
                log.warning("redis_unreachable_retrying", what=what, lease_left_s=round(clock.remaining(), 3))
