"""The swarm's calendar (SPEC §8): PIs of N iterations, from one epoch every host agrees on.

The calendar's settings and epoch are agreed through Redis (``swarm.calendar_store``): the first
process to use a ledger's calendar stores them, and every process after it, on any host, places
instants on the stored calendar. Any instant (an item's times, an event's) is placed in its PI
and iteration by arithmetic alone. Times before the epoch belong to the first iteration.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from swarm.calendar_store import StoredCalendar, agree
from swarm.calendar_store import utc as _utc
from swarm.errors import BadInput
from swarm.ledger import Ledger
from swarm.settings import Settings


class Cadence(StrEnum):
    """What a period spans."""

    PI = "pi"
    ITERATION = "iteration"
    SYNC = "sync"  # one ART Sync slot of an iteration


class Period(BaseModel):
    """One span of the calendar; ``key`` names it in Redis and on the command line."""

    model_config = ConfigDict(frozen=True)

    cadence: Cadence
    pi: int  # from 1
    iteration: int | None = None  # within the PI, from 1
    slot: int | None = None  # within the iteration, from 1
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        parts = [f"PI{self.pi}"]
        if self.iteration is not None:
            parts.append(f"I{self.iteration}")
        if self.slot is not None:
            parts.append(f"S{self.slot}")
        return ".".join(parts)

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class Placement:
    """Where an instant falls: its PI, its iteration within the PI, and the global iteration index."""

    pi: int
    iteration: int
    index: int  # iterations since the epoch, from 0


@dataclass(frozen=True)
class Calendar:
    epoch: datetime
    iteration_seconds: float
    iterations_per_pi: int
    sync_every_seconds: float

    @classmethod
    def of(cls, stored: StoredCalendar) -> Calendar:
        return cls(
            epoch=_utc(stored.epoch),
            iteration_seconds=stored.iteration_length,
            iterations_per_pi=stored.pi_iterations,
            sync_every_seconds=stored.art_sync_every,
        )

    @classmethod
    def load(cls, ledger: Ledger) -> Calendar:
        """The ledger's agreed calendar: the one stored in Redis, which its first user stored from
        its own settings; a process whose settings differ says so once, and uses the stored one."""
        return cls.of(agree(ledger).stored)

    def applied_to(self, settings: Settings) -> Settings:
        """``settings`` with this calendar's values, so that what derives from them (beat's
        ``calendar_tick_seconds``, ART Sync's ``blocked_after_seconds``) follows it too."""
        return settings.model_copy(
            update={
                "calendar_start": self.epoch,
                "iteration_length": self.iteration_seconds,
                "pi_iterations": self.iterations_per_pi,
                "art_sync_every": self.sync_every_seconds,
            }
        )

    # -- placing instants -------------------------------------------------------------------

    @property
    def syncs_per_iteration(self) -> int:
        return max(1, math.ceil(self.iteration_seconds / self.sync_every_seconds - 1e-9))

    @property
    def _length(self) -> timedelta:
        """One iteration, in whole microseconds: every boundary is ``epoch + k * _length``, so
        placing an instant and a period's bounds agree exactly (no float drift)."""
        return timedelta(seconds=self.iteration_seconds)

    @property
    def _slot_length(self) -> timedelta:
        return self._length / self.syncs_per_iteration

    def index(self, at: datetime) -> int:
        """Iterations since the epoch (0 for the first, and for anything before it)."""
        return max(0, (_utc(at) - self.epoch) // self._length)

    def place(self, at: datetime) -> Placement:
        index = self.index(at)
        return Placement(index // self.iterations_per_pi + 1, index % self.iterations_per_pi + 1, index)

    # -- periods ----------------------------------------------------------------------------

    def _at(self, index: int) -> datetime:
        """Where iteration ``index`` (from 0) starts."""
        return self.epoch + index * self._length

    def pi(self, number: int) -> Period:
        _positive(number, "PI")
        first = (number - 1) * self.iterations_per_pi
        return Period(
            cadence=Cadence.PI,
            pi=number,
            start=self._at(first),
            end=self._at(first + self.iterations_per_pi),
        )

    def iteration(self, pi: int, iteration: int) -> Period:
        _positive(pi, "PI")
        if not 1 <= iteration <= self.iterations_per_pi:
            raise BadInput(f"a PI has iterations 1 to {self.iterations_per_pi}, not {iteration}")
        index = (pi - 1) * self.iterations_per_pi + iteration - 1
        return Period(
            cadence=Cadence.ITERATION,
            pi=pi,
            iteration=iteration,
            start=self._at(index),
            end=self._at(index + 1),
        )

    def iteration_at_index(self, index: int) -> Period:
        return self.iteration(index // self.iterations_per_pi + 1, index % self.iterations_per_pi + 1)

    def sync(self, pi: int, iteration: int, slot: int) -> Period:
        it = self.iteration(pi, iteration)
        if not 1 <= slot <= self.syncs_per_iteration:
            raise BadInput(f"an iteration has ART Sync slots 1 to {self.syncs_per_iteration}, not {slot}")
        start = it.start + (slot - 1) * self._slot_length
        end = it.end if slot == self.syncs_per_iteration else start + self._slot_length
        return Period(cadence=Cadence.SYNC, pi=pi, iteration=iteration, slot=slot, start=start, end=end)

    def current_pi(self, now: datetime) -> Period:
        return self.pi(self.place(now).pi)

    def current_iteration(self, now: datetime) -> Period:
        return self.iteration_at_index(self.index(now))

    def current_sync(self, now: datetime) -> Period:
        it = self.current_iteration(now)
        into = max(timedelta(0), _utc(now) - it.start)
        slot = min(self.syncs_per_iteration, into // self._slot_length + 1)
        assert it.iteration is not None
        return self.sync(it.pi, it.iteration, slot)

    def previous_iteration(self, now: datetime) -> Period | None:
        """The last iteration that has ended, or None in the first one."""
        index = self.index(now)
        return self.iteration_at_index(index - 1) if index > 0 else None

    def previous_pi(self, now: datetime) -> Period | None:
        """The last PI that has ended, or None in the first one."""
        number = self.place(now).pi
        return self.pi(number - 1) if number > 1 else None

    def earlier(self, period: Period, count: int) -> list[Period]:
        """Up to ``count`` periods of the same cadence before ``period``, oldest first (PIs and
        iterations only; none before the epoch)."""
        if period.cadence is Cadence.PI:
            return [self.pi(n) for n in range(max(1, period.pi - count), period.pi)]
        if period.cadence is Cadence.ITERATION:
            assert period.iteration is not None
            index = (period.pi - 1) * self.iterations_per_pi + period.iteration - 1
            return [self.iteration_at_index(i) for i in range(max(0, index - count), index)]
        return []

    def iterations_of(self, pi: int) -> list[Period]:
        return [self.iteration(pi, i) for i in range(1, self.iterations_per_pi + 1)]

    def parse(self, key: str) -> Period:
        """The period a key such as ``PI3``, ``PI3.I2`` or ``PI3.I2.S4`` names."""
        pi, iteration, slot = period_numbers(key)
        if iteration is None:
            return self.pi(pi)
        if slot is None:
            return self.iteration(pi, iteration)
        return self.sync(pi, iteration, slot)


_PERIOD_KEY = re.compile(r"^PI([1-9]\d*)(?:\.I([1-9]\d*)(?:\.S([1-9]\d*))?)?$")


def period_numbers(key: str) -> tuple[int, int | None, int | None]:
    """The PI, iteration and slot numbers a period key names (any case, numbers from 1); checks
    the syntax only, so it needs no calendar: whether the iteration or slot exists is ``parse``'s."""
    match = _PERIOD_KEY.match(key.strip().upper())
    if match is None:
        raise BadInput(f"not a period: {key!r} (e.g. PI3, PI3.I2, PI3.I2.S1)")
    pi, iteration, slot = (int(g) if g else None for g in match.groups())
    assert pi is not None
    return pi, iteration, slot


def period_key(key: str) -> str:
    """The canonical spelling of a period key, e.g. ``pi3.i2`` -> ``PI3.I2``."""
    pi, iteration, slot = period_numbers(key)
    parts = [f"PI{pi}", *([f"I{iteration}"] if iteration else []), *([f"S{slot}"] if slot else [])]
    return ".".join(parts)


def _positive(number: int, what: str) -> None:
    if number < 1:
        raise BadInput(f"{what} numbers start at 1, not {number}")
