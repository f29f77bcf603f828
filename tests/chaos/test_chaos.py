"""The chaos test of issue 10: features flow through the five roles while a seeded schedule of
faults hits a fleet of real processes, and the ledger must show nothing lost, nothing done twice,
nothing stuck, no process exit that the harness did not ask for, and exact counters.

The fleet: for each role one prefork and one threads ``swarm worker`` (``-c 2``, the
``workers.demo`` handlers), two ``swarm beat``, and a private ``redis-server`` with AOF (so that
it can be restarted), all with a 3 s lease. The faults: kill -9 of whole workers (main process
and pool children) and of prefork children, SIGTERM of a worker, kill -9 of the leading beat,
and one Redis restart. What the harness kills or stops it replaces at once, so every role keeps
capacity; a process that exits unasked is recorded (with its last log lines) and replaced too.

``SWARM_CHAOS_SEED`` (default below) and ``SWARM_CHAOS_SECONDS`` (the fault window) vary the
run; the seed is printed, and so are the recovery times of every item a kill interrupted. The
seed fixes the schedule (each fault's kind and time, each feature's durations and points); which
process a fault hits depends on what is held at that moment, as it would in production.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from swarm import Settings, Swarm
from swarm.errors import SwarmError
from swarm.ledger import Ledger
from swarm.metrics import LedgerCounters
from swarm.models import Role, Status
from swarm.workflows import load_workflows

from ..integration.polling import wait_until
from ..integration.workers_harness import PrivateRedis, private_redis
from .faults import Chaos, plan
from .fleet import READY_TIMEOUT_S, STOP_TIMEOUT_S, Fleet
from .report import Report, Supervisor
from .verdict import Judge, Run

SEED = int(os.environ.get("SWARM_CHAOS_SEED", "20261201"))
SECONDS = float(os.environ.get("SWARM_CHAOS_SECONDS", "75"))  # the fault window, as in the issue
LEASE_S = 3.0
FEATURES_PER_S = 0.75  # features submitted per second of the fault window
SUBMIT_SPAN = 0.85  # they are submitted over this fraction of the window, so faults hit all stages
STAGE_SECONDS = (0.2, 1.0)  # each feature's demo duration per stage, drawn uniformly
POINTS = (1, 5)
POOLS = ("prefork", "threads")
CONCURRENCY = 2
BEATS = 2
TICK_S = 0.05  # the schedule's pace: how often the loop looks for due submissions and faults
DRAIN_S = 90.0  # after the window: every feature ends by then, unless something is lost or stuck
# The recovery bound. The issue says "within about two leases": a killed holder's claim outlives
# it by at most one lease (its last heartbeat renewed it), the reaper runs every lease / 4, the
# outbox sweep every 0.25 s, and then a free slot of the role claims the item. The margin of 4 s
# is for a loaded 2-core machine: a dozen Celery processes of this test beside other suites delay
# the reaper's tick, the sweep and the claiming worker's poll by seconds, never by leases.
RECOVERY_MARGIN_S = 4.0
RECOVERY_BOUND_S = 2 * LEASE_S + RECOVERY_MARGIN_S
TIMEOUT_S = READY_TIMEOUT_S + SECONDS + DRAIN_S + STOP_TIMEOUT_S + 120

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT_S)]


class Flow:
    """Submits features on schedule and does the faults, supervising the fleet throughout."""

    def __init__(self, fleet: Fleet, server: PrivateRedis, client: Swarm, rng: random.Random) -> None:
        self.client = client
        self.ledger: Ledger = client.ledger
        self.rng = rng
        self.started_at = time.time()
        self.supervisor = Supervisor(fleet, self.say)
        self.chaos = Chaos(fleet, server, self.ledger, rng)
        self.submitted: list[str] = []
        self.points = 0

    def say(self, line: str) -> None:
        print(f"+{time.time() - self.started_at:5.1f}s {line}", flush=True)

    def submit(self, n: int) -> None:
        points = self.rng.randint(*POINTS)
        payload = {"duration_s": round(self.rng.uniform(*STAGE_SECONDS), 2)}
        try:
            item = self.client.submit(
                "feature", f"chaos feature {n}", workflow="feature", points=points, payload=payload
            )
        except SwarmError as exc:
            self.say(f"submit of feature {n} failed: {exc}")
            return
        self.submitted.append(item.id)
        self.points += points

    def run(self, seconds: float) -> None:
        schedule = plan(self.rng, seconds)
        features = round(seconds * FEATURES_PER_S)
        due = [n * seconds * SUBMIT_SPAN / features for n in range(features)]
        while due or schedule:
            self.supervisor.check()
            now = time.time() - self.started_at
            if due and due[0] <= now:
                due.pop(0)
                self.submit(features - len(due))
            if schedule and schedule[0].at <= now:
                done = self.chaos.run(schedule.pop(0))
                self.say(f"{done.fault.value}: {done.target}; held {[h.work_id for h in done.held]}")
            time.sleep(TICK_S)  # paces the schedule; results are awaited below, by polling

    def drained(self) -> bool:
        """Every submitted point is in the velocity and nothing is pending or held."""
        self.supervisor.check()
        try:
            counts = self.ledger.counts()
            velocity = sum(self.ledger.velocity().values())
        except SwarmError:
            return False
        held = counts[Status.PENDING] + counts[Status.CLAIMED] + counts[Status.IN_PROGRESS]
        return velocity >= self.points and held == 0

    def outcome(self, stages: tuple[Role, ...]) -> Run:
        ledger = self.ledger
        return Run(
            items=ledger.list(limit=1_000_000),
            events=ledger.events(1_000_000),
            counters=LedgerCounters.parse(ledger.read(ledger.client.hgetall, ledger.keys.metrics)),
            velocity=ledger.velocity(),
            agents=ledger.agents(),
            submitted=self.submitted,
            stages=stages,
            faults=self.chaos.done,
            started_at=self.started_at,
        )


def test_chaos_loses_nothing_duplicates_nothing_and_no_process_dies_unasked(
    prefix: str, tmp_path: Path
) -> None:
    print(f"\nchaos seed {SEED} (SWARM_CHAOS_SEED), window {SECONDS:.0f}s (SWARM_CHAOS_SECONDS)", flush=True)
    settings = Settings(key_prefix=prefix, redis_url=None, lease_seconds=LEASE_S)
    stages = load_workflows(settings.workflows_file)["feature"].stages
    env = {"SWARM_LEASE_SECONDS": str(LEASE_S), "SWARM_LOG_FORMAT": "console"}
    with private_redis(tmp_path) as server:
        fleet = Fleet(server.url, prefix, tmp_path, env)
        try:
            starting = [fleet.start_worker(role, pool, CONCURRENCY) for role in Role for pool in POOLS]
            fleet.wait_ready([*starting, *(fleet.start_beat() for _ in range(BEATS))])
            with Swarm(server.url, agent_id="chaos-submitter", settings=settings) as client:
                flow = Flow(fleet, server, client, random.Random(SEED))
                flow.run(SECONDS)
                try:
                    wait_until(
                        flow.drained, "every feature to finish and nothing to be pending or held", DRAIN_S
                    )
                except AssertionError as exc:
                    flow.say(str(exc))  # the verdict below says what is lost or stuck, and where
                flow.supervisor.check()
                run = flow.outcome(stages)
        finally:
            fleet.stop_all()
    report = Report(
        SEED, SECONDS, LEASE_S, RECOVERY_BOUND_S, flow.started_at, len(flow.submitted),
        Judge(run).verdict(RECOVERY_BOUND_S), flow.chaos.done, flow.supervisor,
    )  # fmt: skip
    print(report.text(), flush=True)
    found = report.problems()
    assert not found, f"chaos seed {SEED}: {len(found)} kinds of failure\n" + "\n".join(found)
