"""The four ceremonies on a real Redis, against a history whose figures are worked out by hand.

The calendar: iterations of 1 h, 2 per PI, from an epoch E 2.5 h before now, so PI1 is
[E, E+2h) with iterations I1 [E, E+1h) and I2 [E+1h, E+2h), and now is in PI2.I1. Items are
written through the ledger's own operations and then moved in time (``seeding.set_times``, times
only), so PI1 holds the history below; events keep their real times, i.e. they fall in PI2.

PI1 backlog (planned at E+2m, default capacity 4/iteration, so 8 per team per PI):
  web: W1 high 3 pts (WSJF 13/3), W2 high 4 pts (business value 6), W3 medium 2, W4 low 1
  api: A1 critical 5 pts, A2 medium 5 pts
  -> web takes W1, W2 (1 point left), not W3, then W4; api takes A1, not A2.
What happened in PI1 (minutes after E):
  W1  developer claimed 10, completed 40, handed off to W1b (qa): claimed 70, completed 90
  W2  developer claimed 40, completed 50
  W4  developer claimed 65, failed 80: "Connection refused by host 10.0.0.5:5432"
  A1  developer claimed 85, completed 105, handed off to A1b (qa), still pending
  X1  feature/web/developer failed 70: "Connection refused by host 10.0.0.9:5432"
  X2  deploy/api/devops dead 75: "Disk quota exceeded for <its id>"
  X3  deploy/api/devops failed 95: "Disk quota exceeded for <its id>"
  X4  test/web/qa failed 100: "assertion failed: expected 200"
Now (PI2): H1 in progress, H2 held with no update for an hour (blocked), H3 held past its lease
(api), R1 reaped after its lease expired (api, back to pending), I1 failed twice and retried
("flaky network", web, pending with 2 attempts).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from ceremonies import history, store
from ceremonies.art_sync import ARTSyncReport
from ceremonies.figures import ObjectiveState
from ceremonies.inspect_adapt import InspectAdaptReport
from ceremonies.pi_planning import PIPlanningReport
from ceremonies.registry import ceremony
from ceremonies.report import CeremonyReport
from ceremonies.system_demo import SystemDemoReport
from swarm.calendar import Calendar, Period
from swarm.ledger import Handoff, Ledger
from swarm.models import Priority, Role, Status

from .polling import wait_until
from .seeding import set_times

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2

AGENT = "agent-ceremonies"
HOUR = 3600.0


@dataclass
class World:
    ledger: Ledger
    cal: Calendar
    epoch: datetime
    ids: dict[str, str]

    def at(self, minutes: float) -> datetime:
        return self.epoch + timedelta(minutes=minutes)

    def run(self, name: str, period: Period | None = None) -> CeremonyReport:
        """The ceremony's report for its due period (or ``period``), through run_once."""
        chosen = ceremony(name)
        now = self.ledger.server_time()
        period = period or chosen.due(self.cal, now)
        assert period is not None
        report, _ = store.run_once(chosen, self.ledger, self.cal, period, now)
        assert report is not None
        return report


def _submit(ledger: Ledger, name: str, ids: dict[str, str], wtype: str = "feature", **fields: Any) -> str:
    item = ledger.submit(wtype, f"{name}: seeded", dispatch=False, **fields)
    ids[name] = item.id
    return item.id


def _play_pi1(ledger: Ledger, ids: dict[str, str], w: World) -> None:
    """PI1's history, through real operations, then moved to its minutes after E."""
    ledger.claim(ids["W1"], AGENT)
    w1 = ledger.complete(ids["W1"], AGENT, handoff=Handoff(Role.QA, "review"))
    ids["W1b"] = str(w1.next_id)
    ledger.claim(ids["W1b"], AGENT)
    ledger.complete(ids["W1b"], AGENT)
    ledger.claim(ids["W2"], AGENT)
    ledger.complete(ids["W2"], AGENT)
    ledger.claim(ids["W4"], AGENT)
    ledger.fail(ids["W4"], AGENT, "Connection refused by host 10.0.0.5:5432")
    ledger.claim(ids["A1"], AGENT)
    a1 = ledger.complete(ids["A1"], AGENT, handoff=Handoff(Role.QA, "review"))
    ids["A1b"] = str(a1.next_id)
    x1 = _submit(ledger, "X1", ids, team="web", role=Role.DEVELOPER)
    x2 = _submit(ledger, "X2", ids, "deploy", team="api", role=Role.DEVOPS, max_attempts=1)
    x3 = _submit(ledger, "X3", ids, "deploy", team="api", role=Role.DEVOPS)
    x4 = _submit(ledger, "X4", ids, "test", team="web", role=Role.QA)
    for wid, error, retry in (
        (x1, "Connection refused by host 10.0.0.9:5432", False),
        (x2, f"Disk quota exceeded for {x2}", True),  # max_attempts 1: dead
        (x3, f"Disk quota exceeded for {x3}", False),
        (x4, "assertion failed: expected 200", False),
    ):
        ledger.claim(wid, AGENT)
        ledger.fail(wid, AGENT, error, retry=retry)
    for name, created, claimed, ended in (
        ("W1", 1, 10, 40),
        ("W1b", 40, 70, 90),
        ("W2", 1, 40, 50),
        ("W4", 1, 65, 80),
        ("A1", 1, 85, 105),
        ("X1", 61, 62, 70),
        ("X2", 61, 62, 75),
        ("X3", 61, 62, 95),
        ("X4", 61, 62, 100),
    ):
        set_times(ledger, ids[name], created=w.at(created), claimed=w.at(claimed), completed=w.at(ended))
    set_times(ledger, ids["A1b"], created=w.at(105))


def _play_now(ledger: Ledger, ids: dict[str, str]) -> None:
    """PI2 so far: work in flight, a blocked item, lost leases and repeated failures."""
    now = ledger.server_time()
    h1 = _submit(ledger, "H1", ids, team="web")
    ledger.claim(h1, AGENT, lease_seconds=HOUR)
    ledger.progress(h1, AGENT, 30, "going")
    h2 = _submit(ledger, "H2", ids, team="web")
    ledger.claim(h2, AGENT, lease_seconds=HOUR)
    set_times(ledger, h2, updated=now - timedelta(hours=1))
    h3 = _submit(ledger, "H3", ids, team="api", role=Role.QA)
    ledger.claim(h3, AGENT, lease_seconds=HOUR)
    set_times(ledger, h3, lease_expires=now - timedelta(seconds=60))
    r1 = _submit(ledger, "R1", ids, team="api", role=Role.DEVOPS, priority=Priority.LOW, points=1)
    ledger.claim(r1, "agent-lost", lease_seconds=0.001)
    wait_until(lambda: (r1, Status.PENDING) in ledger.reap(), "R1's lease to expire and be reaped", 10)
    i1 = _submit(ledger, "I1", ids, "bugfix", team="web", priority=Priority.HIGH, points=2)
    for _ in range(2):
        ledger.claim(i1, AGENT)
        ledger.fail(i1, AGENT, "flaky network", retry=True)


@pytest.fixture
def world(ledger: Ledger) -> World:
    epoch = ledger.server_time() - timedelta(hours=2.5)
    settings = ledger.settings.model_copy(
        update={
            "calendar_start": epoch,
            "iteration_length": HOUR,
            "pi_iterations": 2,
            "default_team_capacity": 4,
            "velocity_history": 3,
            "top_failure_causes": 2,
            "impediment_attempts": 2,
        }
    )
    seeded = Ledger(ledger.client, settings)
    w = World(seeded, Calendar.load(seeded), epoch, {})
    assert w.cal.epoch == epoch
    ids = w.ids
    for name, team, priority, points, extra in (
        ("W1", "web", Priority.HIGH, 3, {"workflow": "flow", "stage": "develop"}),
        ("W2", "web", Priority.HIGH, 4, {"payload": {"business_value": 6}}),
        ("W3", "web", Priority.MEDIUM, 2, {}),
        ("W4", "web", Priority.LOW, 1, {}),
        ("A1", "api", Priority.CRITICAL, 5, {"workflow": "flow", "stage": "develop"}),
        ("A2", "api", Priority.MEDIUM, 5, {}),
    ):
        _submit(seeded, name, ids, team=team, priority=priority, points=points, role=Role.DEVELOPER, **extra)
        set_times(seeded, ids[name], created=w.at(1))
    first, wrote = store.run_once(ceremony("pi-planning"), seeded, w.cal, w.cal.pi(1), w.at(2))
    assert wrote
    assert first is not None
    _play_pi1(seeded, ids, w)
    _play_now(seeded, ids)
    return w


def improvements(ledger: Ledger) -> list[str]:
    return sorted(i.id for i in history.in_status(ledger, Status.PENDING) if i.type == "improvement")


# -- PI Planning --------------------------------------------------------------------------------


def test_pi_planning_without_history_uses_the_default_capacity(world: World) -> None:
    report = store.load(ceremony("pi-planning"), world.ledger, "PI1")
    assert isinstance(report, PIPlanningReport)
    ids = world.ids
    assert report.period == world.cal.pi(1)
    assert report.generated_at == world.at(2)
    assert (report.backlog_size, report.skipped_handoffs) == (6, 0)
    teams = {t.team: t for t in report.teams}
    for team in ("api", "web"):
        assert teams[team].capacity.basis == "default"
        assert teams[team].capacity.per_iteration == 4.0
        assert teams[team].pi_capacity == 8.0
    assert (teams["web"].planned_points, teams["web"].planned_business_value) == (8, 8 + 6 + 2)
    assert (teams["api"].planned_points, teams["api"].planned_business_value) == (5, 10)
    assert [o.work_id for o in report.objectives] == [ids["A1"], ids["W1"], ids["W2"], ids["W4"]]
    assert [o.work_id for o in report.leftovers] == [ids["A2"], ids["W3"]]
    w1 = report.objectives[1]
    assert (w1.priority, w1.points, w1.wsjf, w1.business_value) == (Priority.HIGH, 3, 4.3333, 8)
    assert report.planned_business_value == {"api": 10, "web": 16}
    assert report.total_business_value == 26


def test_pi_planning_measures_capacity_from_the_ended_iterations(world: World) -> None:
    report = world.run("pi-planning")
    assert isinstance(report, PIPlanningReport)
    ids = world.ids
    assert report.period.key == "PI2"
    # Backlog: W3, A2, R1 and I1; A1b is the next stage of A1's workflow, not new work.
    assert (report.backlog_size, report.skipped_handoffs) == (4, 1)
    teams = {t.team: t for t in report.teams}
    web, api = teams["web"], teams["api"]
    # web's workflow ends: W2 (4 points, I1) and W1b (3, I2); W1 handed off, so it is not one.
    assert (web.capacity.basis, web.capacity.iterations, web.capacity.history_points) == (
        "history",
        ["PI1.I1", "PI1.I2"],
        7,
    )
    assert (web.capacity.per_iteration, web.pi_capacity) == (3.5, 7.0)
    # api finished no workflow (A1 handed off; X2 and X3 failed): the default.
    assert (api.capacity.basis, api.pi_capacity) == ("default", 8.0)
    # api: A2 (medium) before R1 (low), 5 + 1 <= 8. web: I1 (high) then W3, 2 + 2 <= 7.
    assert [o.work_id for o in report.objectives] == [ids["A2"], ids["R1"], ids["I1"], ids["W3"]]
    assert report.leftovers == []
    assert report.planned_business_value == {"api": 5 + 2, "web": 8 + 5}
    assert report.total_business_value == 20


# -- ART Sync -----------------------------------------------------------------------------------


def test_art_sync_reports_each_teams_flow_and_impediments(world: World) -> None:
    world.run("pi-planning")  # PI2's objectives
    report = world.run("art-sync")
    assert isinstance(report, ARTSyncReport)
    ids = world.ids
    assert (report.period.key, report.iteration) == ("PI2.I1.S1", "PI2.I1")
    assert report.blocked_after_seconds == HOUR / 10
    teams = {t.team: t for t in report.teams}
    assert sorted(teams) == ["api", "web"]
    web, api = teams["web"], teams["api"]

    assert sorted(r.work_id for r in web.in_progress) == sorted([ids["H1"], ids["H2"]])
    assert [r.work_id for r in web.blocked] == [ids["H2"]]
    assert web.blocked[0].idle_seconds >= HOUR
    assert [(i.work_id, i.attempts, i.error, i.status) for i in web.impediments] == [
        (ids["I1"], 2, "flaky network", Status.PENDING)
    ]
    assert (web.expired_leases, web.handoffs_waiting) == ([], [])

    assert [r.work_id for r in api.in_progress] == [ids["H3"]]
    assert api.blocked == []
    assert [(e.work_id, e.source) for e in api.expired_leases] == [(ids["H3"], "held"), (ids["R1"], "reaped")]
    assert api.expired_leases[1].agent_id == "agent-lost"
    assert api.impediments == []  # R1 lost one lease: attempts 1, below impediment_attempts (2)
    [waiting] = api.handoffs_waiting
    assert (waiting.work_id, waiting.parent_id, waiting.role, waiting.stage) == (
        ids["A1b"],
        ids["A1"],
        Role.QA,
        "review",
    )
    assert 45 * 60 <= waiting.waiting_seconds < 45 * 60 + 120  # handed off at E+105m; now is E+150m

    progress = report.objectives
    assert progress.plan_found
    states = {o.work_id: o.state for o in progress.objectives}
    assert states == {
        ids["A2"]: ObjectiveState.NOT_STARTED,
        ids["R1"]: ObjectiveState.IN_PROGRESS,  # tried once, its lease lost
        ids["I1"]: ObjectiveState.IN_PROGRESS,
        ids["W3"]: ObjectiveState.NOT_STARTED,
    }
    assert (progress.planned_business_value, progress.delivered_business_value) == (20, 0)


def test_art_sync_without_a_plan_says_so(ledger: Ledger) -> None:
    chosen = ceremony("art-sync")
    cal = Calendar.load(ledger)
    now = ledger.server_time()
    period = chosen.due(cal, now)
    assert period is not None
    report = chosen.compute(ledger, cal, period, now)
    assert isinstance(report, ARTSyncReport)
    assert not report.objectives.plan_found
    assert report.objectives.objectives == []
    assert report.objectives.note == "PI1 has no PI Planning report: no objectives"
    assert report.teams == []


# -- System Demo --------------------------------------------------------------------------------


def test_system_demo_of_the_last_iteration(world: World) -> None:
    report = world.run("system-demo")
    assert isinstance(report, SystemDemoReport)
    ids = world.ids
    assert report.period == world.cal.iteration(1, 2)
    assert [(c.work_id, c.role, c.team, c.points, c.workflow_end) for c in report.completed] == [
        (ids["W1b"], Role.QA, "web", 3, True),  # E+90m
        (ids["A1"], Role.DEVELOPER, "api", 5, False),  # E+105m, handed off to A1b
    ]
    assert report.velocity_by_team == {"api": 5, "web": 3}
    assert report.velocity_by_role == {"developer": 5, "qa": 3}
    assert report.workflow_velocity_by_team == {"web": 3}
    progress = report.objectives
    assert progress.as_of == world.at(120)
    rows = {o.work_id: (o.state, o.stages_completed) for o in progress.objectives}
    assert rows == {
        ids["A1"]: (ObjectiveState.IN_PROGRESS, 1),
        ids["W1"]: (ObjectiveState.DONE, 2),
        ids["W2"]: (ObjectiveState.DONE, 1),
        ids["W4"]: (ObjectiveState.FAILED, 0),
    }
    a1 = next(o for o in progress.objectives if o.work_id == ids["A1"])
    assert (a1.current_id, a1.current_role) == (ids["A1b"], Role.QA)
    assert progress.counts[ObjectiveState.DONE] == 2
    assert (progress.planned_business_value, progress.delivered_business_value) == (26, 8 + 6)


# -- Inspect & Adapt ----------------------------------------------------------------------------


def test_inspect_adapt_of_the_last_pi(world: World) -> None:
    report = world.run("inspect-adapt")
    assert isinstance(report, InspectAdaptReport)
    ids = world.ids
    assert report.period == world.cal.pi(1)
    # Done by PI1's end: W1 (8) and W2 (6) of web's 16; none of api's 10 (A1 is at its qa stage).
    teams = {
        t.team: (t.planned_business_value, t.actual_business_value, t.predictability)
        for t in report.predictability
    }
    assert teams == {"api": (10, 0, 0.0), "web": (16, 14, 14 / 16)}
    assert report.overall_predictability == 14 / 26
    # Ended in PI1: W1, W2, W1b, A1 completed; W4, X1, X3, X4 failed; X2 dead.
    assert (report.completed, report.failed, report.dead) == (4, 4, 1)
    assert report.success_rate == 4 / 9
    assert report.throughput == 4
    assert report.throughput_by_iteration == {"PI1.I1": 2, "PI1.I2": 2}
    times = {t.role: t for t in report.times_by_role}
    dev, qa = times[Role.DEVELOPER], times[Role.QA]
    # developer cycles W1 30m, W2 10m, A1 20m; leads W1 39m, W2 49m, A1 104m (nearest rank).
    assert (dev.completed, dev.cycle_p50, dev.cycle_p90) == (3, 20 * 60, 30 * 60)
    assert (dev.lead_p50, dev.lead_p90) == (49 * 60, 104 * 60)
    # qa: W1b, created by the handoff at 40, claimed 70, completed 90.
    assert (qa.completed, qa.cycle_p50, qa.cycle_p90, qa.lead_p50, qa.lead_p90) == (1, 1200, 1200, 3000, 3000)

    # PI1's failure events happened in real time (PI2): its causes come from the items that
    # ended failed or dead in PI1. Two causes of 2 each; the top 2 are kept, by type on a tie.
    causes = [(c.type, c.cause, c.count, c.items, c.role, c.team) for c in report.failure_causes]
    assert causes == [
        ("deploy", "Disk quota exceeded for <work>", 2, 2, Role.DEVOPS, "api"),
        ("feature", "Connection refused by host <n>.<n>.<n>.<n>:<n>", 2, 2, Role.DEVELOPER, "web"),
    ]
    assert sorted(report.failure_causes[0].example_ids) == sorted([ids["X2"], ids["X3"]])
    filed = [(f.type, f.role, f.team, f.priority, f.payload["count"], f.payload["pi"]) for f in report.filed]
    assert filed == [
        ("improvement", Role.DEVOPS, "api", Priority.HIGH, 2, "PI1"),
        ("improvement", Role.DEVELOPER, "web", Priority.HIGH, 2, "PI1"),
    ]
    assert "Disk quota exceeded for <work>" in report.filed[0].description
    assert improvements(world.ledger) == sorted(f.work_id for f in report.filed)
    filed_item = world.ledger.get(report.filed[1].work_id)
    assert (filed_item.type, filed_item.role, filed_item.team) == ("improvement", Role.DEVELOPER, "web")
    assert filed_item.payload["cause"] == "Connection refused by host <n>.<n>.<n>.<n>:<n>"


def test_inspect_adapt_counts_failure_events_in_its_window(world: World) -> None:
    """PI2 (computed directly: it has not ended) holds the real failure events, including I1's
    two retried failures, which no registry of ended items shows."""
    settings = world.ledger.settings.model_copy(update={"top_failure_causes": 5})
    chosen = ceremony("inspect-adapt")
    ledger = Ledger(world.ledger.client, settings)
    report = chosen.compute(ledger, world.cal, world.cal.pi(2), ledger.server_time())
    assert isinstance(report, InspectAdaptReport)
    causes = [(c.type, c.cause, c.count, c.items) for c in report.failure_causes]
    assert causes == [
        ("deploy", "Disk quota exceeded for <work>", 2, 2),  # X2's dead event follows its failed one
        ("feature", "Connection refused by host <n>.<n>.<n>.<n>:<n>", 2, 2),
        ("bugfix", "flaky network", 2, 1),
        ("test", "assertion failed: expected <n>", 1, 1),
    ]
    assert not report.plan_found
    assert report.overall_predictability is None


# -- once per period ------------------------------------------------------------------------------


def test_run_once_twice_writes_one_report_and_files_once(world: World) -> None:
    first = world.run("inspect-adapt")
    again, wrote = store.run_once(
        ceremony("inspect-adapt"), world.ledger, world.cal, first.period, world.ledger.server_time()
    )
    assert not wrote
    assert again == first
    assert len(improvements(world.ledger)) == 2
    assert store.periods(ceremony("inspect-adapt"), world.ledger) == ["PI1"]


def test_two_concurrent_runs_write_one_report(world: World) -> None:
    chosen = ceremony("inspect-adapt")
    period = world.cal.pi(1)
    start = threading.Barrier(2)
    results: list[tuple[CeremonyReport | None, bool]] = []

    def run() -> None:
        ledger = Ledger(world.ledger.client, world.ledger.settings)
        start.wait()
        results.append(store.run_once(chosen, ledger, world.cal, period, ledger.server_time()))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wrote for _, wrote in results) == [False, True]
    wait_until(lambda: store.exists(chosen, world.ledger, "PI1"), "the report to be stored")
    stored = store.load(chosen, world.ledger, "PI1")
    assert stored is not None
    assert [r for r, _ in results if r is not None and r != stored] == []
    assert improvements(world.ledger) == sorted(f.work_id for f in stored.filed)
    assert len(stored.filed) == 2


def test_a_crashed_writer_is_resumed_with_the_same_ids(world: World) -> None:
    """A writer stored its plan, filed one item and died (its lock is gone): the next run files
    the rest under the planned ids, and nothing twice."""
    chosen = ceremony("inspect-adapt")
    ledger = world.ledger
    period = world.cal.pi(1)
    planned = chosen.compute(ledger, world.cal, period, ledger.server_time())
    ledger.client.set(ledger.keys.report_plan(chosen.name, period.key), planned.model_dump_json())
    assert store.file_item(ledger, planned.filed[0])
    assert not ledger.client.exists(ledger.keys.report_lock(chosen.name, period.key))

    report, wrote = store.run_once(chosen, ledger, world.cal, period, ledger.server_time())
    assert wrote
    assert report == planned
    assert improvements(ledger) == sorted(f.work_id for f in planned.filed)
    assert not ledger.client.exists(ledger.keys.report_plan(chosen.name, period.key))
    assert not store.file_item(ledger, planned.filed[1])  # filed already: refused, nothing written
    assert len(improvements(ledger)) == 2
