"""The chaos test's faults: a seeded schedule, and each fault done to the live fleet.

Victims are chosen from the ledger: a worker (or prefork child) holding items is preferred, so
that recovery can be measured, and each item it holds is recorded with the fence of the claim
the fault interrupts.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass, field
from enum import StrEnum

from swarm.errors import NotFound, SwarmError
from swarm.ledger import Ledger
from swarm.models import Status

from ..integration.workers_harness import PrivateRedis
from .fleet import Fleet, Proc, children

OUTAGE_S = 1.0  # how long Redis stays down: the fault itself, not a wait for a result
FIRST_FAULT_S = 4.0  # faults start once the first features are flowing
FAULT_GAP_S = (2.0, 4.0)  # seconds between two worker faults, drawn uniformly
REDIS_RESTART_AT = (0.35, 0.65)  # the one Redis restart, as a fraction of the fault window
BEAT_KILLS_AT = ((0.15, 0.3), (0.7, 0.85))  # the leading beat's kills, likewise
SPARE_ATTEMPTS = 2  # an item a fault interrupts keeps at least this many attempts (see below)
NO_VICTIM = "every worker is its role's last ready one, or holds an item with no spare attempt"


class Fault(StrEnum):
    KILL_WORKER = "kill -9 of a worker"
    KILL_CHILD = "kill -9 of a prefork child"
    TERM_WORKER = "SIGTERM of a worker"
    KILL_BEAT = "kill -9 of the leading beat"
    REDIS_RESTART = "Redis restart"


WORKER_FAULTS = (Fault.KILL_WORKER, Fault.KILL_CHILD, Fault.TERM_WORKER)
WORKER_FAULT_WEIGHTS = (3, 3, 1)


@dataclass(frozen=True)
class Planned:
    at: float  # seconds into the fault window
    fault: Fault


def plan(rng: random.Random, seconds: float) -> list[Planned]:
    """The run's faults, in time order: worker faults every few seconds, two kills of the
    leading beat and one Redis restart."""
    planned = [Planned(rng.uniform(*REDIS_RESTART_AT) * seconds, Fault.REDIS_RESTART)]
    planned += [Planned(rng.uniform(*span) * seconds, Fault.KILL_BEAT) for span in BEAT_KILLS_AT]
    at = FIRST_FAULT_S
    while at < seconds:
        planned.append(Planned(at, rng.choices(WORKER_FAULTS, WORKER_FAULT_WEIGHTS)[0]))
        at += rng.uniform(*FAULT_GAP_S)
    return sorted(planned, key=lambda p: p.at)


@dataclass(frozen=True)
class Held:
    """An item a process held when the fault hit it: the claim the fault interrupts."""

    work_id: str
    fence: int
    attempts: int
    max_attempts: int


@dataclass
class Done:
    """A fault as it was done: when (epoch seconds), to what, and the items its victim held."""

    fault: Fault
    at: float
    target: str
    held: list[Held] = field(default_factory=list)
    until: float | None = None  # a Redis restart: when the server answered again
    measured: bool = False  # kill -9 of holders: their items' recovery time is asserted


class Chaos:
    """Does each planned fault to the fleet, replacing what it kills or stops."""

    def __init__(self, fleet: Fleet, server: PrivateRedis, ledger: Ledger, rng: random.Random) -> None:
        self.fleet = fleet
        self.server = server
        self.ledger = ledger
        self.rng = rng
        self.done: list[Done] = []
        self._agent_pids: dict[str, int | None] = {}

    def run(self, planned: Planned) -> Done:
        action = {
            Fault.KILL_WORKER: self._kill_worker,
            Fault.KILL_CHILD: self._kill_child,
            Fault.TERM_WORKER: self._term_worker,
            Fault.KILL_BEAT: self._kill_beat,
            Fault.REDIS_RESTART: self._restart_redis,
        }[planned.fault]
        done = action()
        self.done.append(done)
        return done

    # -- who holds what ---------------------------------------------------------------------

    def _agent_pid(self, agent_id: str) -> int | None:
        if agent_id not in self._agent_pids:
            try:
                self._agent_pids[agent_id] = self.ledger.agent(agent_id).pid
            except NotFound:
                return None
        return self._agent_pids[agent_id]

    def held_by_pid(self) -> dict[int, list[Held]]:
        """Every held item by its holder's pid; empty while Redis does not answer."""
        found: dict[int, list[Held]] = {}
        try:
            listed = [
                *self.ledger.list(Status.CLAIMED, limit=10_000),
                *self.ledger.list(Status.IN_PROGRESS, limit=10_000),
            ]
            items = {i.id: i for i in listed}  # one that moved on between the two reads is listed twice
            for item in items.values():
                pid = self._agent_pid(item.agent_id) if item.agent_id else None
                if pid is not None and item.fence is not None:
                    held = Held(item.id, item.fence, item.attempts, item.max_attempts)
                    found.setdefault(pid, []).append(held)
        except SwarmError:
            return {}
        return found

    @staticmethod
    def _spares(held: list[Held]) -> bool:
        # A kill costs each held item one attempt (its lease expires). The harness interrupts
        # an item only while it keeps SPARE_ATTEMPTS after that, so that the schedule alone
        # never makes an item dead: a dead item at the end is the product's doing.
        return all(h.attempts + 1 + SPARE_ATTEMPTS <= h.max_attempts for h in held)

    def _choose(self, candidates: list[tuple[str, list[int]]]) -> tuple[str, list[int], list[Held]] | None:
        """A victim among (name, pids): one holding items if any may be interrupted, else any
        that holds nothing; None when every candidate holds an item with no spare attempts."""
        by_pid = self.held_by_pid()
        options = []
        for name, pids in candidates:
            held = [h for pid in pids for h in by_pid.get(pid, [])]
            if self._spares(held):
                options.append((name, pids, held))
        holding = [o for o in options if o[2]]
        pool = holding or options
        return self.rng.choice(pool) if pool else None

    # -- the faults -----------------------------------------------------------------------------

    def _stoppable(self) -> dict[str, Proc]:
        """The workers whose role keeps another ready worker: the harness never takes a role's
        last capacity away (a replacement takes seconds to start on a loaded machine), so that a
        slow recovery is never its own doing."""
        live = self.fleet.live("worker")
        return {
            p.name: p
            for p in live
            if any(o is not p and o.role == p.role and self.fleet.is_ready(o) for o in live)
        }

    def _kill_worker(self) -> Done:
        """kill -9 of a whole worker: its main process and its pool children at once."""
        workers = self._stoppable()
        chosen = self._choose([(name, [p.pid, *children(p.pid)]) for name, p in sorted(workers.items())])
        if chosen is None:
            return Done(Fault.KILL_WORKER, time.time(), f"skipped: {NO_VICTIM}")
        name, pids, held = chosen
        proc = workers[name]
        self.fleet.signal(proc, signal.SIGKILL, "kill -9")
        for pid in pids[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        done = Done(
            Fault.KILL_WORKER, time.time(), f"{proc.describe()} and children {pids[1:]}", held, measured=True
        )
        self._replace(proc, done)
        return done

    def _kill_child(self) -> Done:
        # Only a ready worker's children: one killed while its pool starts makes Celery give up on
        # the worker at once ("Could not start worker processes", celery/worker/loops.py), which
        # is no mid-task fault (it failed a run once, a child killed 2 s after its worker started).
        prefork = [p for p in self.fleet.live("worker") if p.pool == "prefork" and self.fleet.is_ready(p)]
        candidates = [(f"{p.name} child {c}", [c]) for p in prefork for c in children(p.pid)]
        chosen = self._choose(candidates)
        if chosen is None:
            return Done(Fault.KILL_CHILD, time.time(), "skipped: no prefork child may be interrupted")
        name, pids, held = chosen
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[0], signal.SIGKILL)
        return Done(Fault.KILL_CHILD, time.time(), name, held, measured=True)

    def _term_worker(self) -> Done:
        workers = self._stoppable()
        chosen = self._choose([(name, [p.pid, *children(p.pid)]) for name, p in sorted(workers.items())])
        if chosen is None:
            return Done(Fault.TERM_WORKER, time.time(), f"skipped: {NO_VICTIM}")
        name, _, held = chosen
        proc = workers[name]
        self.fleet.signal(proc, signal.SIGTERM, "SIGTERM")
        done = Done(Fault.TERM_WORKER, time.time(), proc.describe(), held)
        self._replace(proc, done)
        return done

    def _kill_beat(self) -> Done:
        try:
            pid = self.ledger.read(self.ledger.client.hget, self.ledger.keys.beat_tick, "pid")
        except SwarmError as exc:
            return Done(Fault.KILL_BEAT, time.time(), f"skipped: beat tick unreadable ({exc})")
        leaders = [p for p in self.fleet.live("beat") if str(p.pid) == pid]
        if not leaders:
            return Done(Fault.KILL_BEAT, time.time(), f"skipped: the last tick's pid {pid} is none of ours")
        proc = leaders[0]
        self.fleet.signal(proc, signal.SIGKILL, "kill -9")
        done = Done(Fault.KILL_BEAT, time.time(), proc.describe())
        self._replace(proc, done)
        return done

    def _restart_redis(self) -> Done:
        at = time.time()
        self.server.restart(OUTAGE_S)
        return Done(Fault.REDIS_RESTART, at, f"redis-server :{self.server.port}", until=time.time())

    def _replace(self, proc: Proc, done: Done) -> None:
        new = self.fleet.replace(proc)
        done.target += f", replaced by {new.describe()}"
