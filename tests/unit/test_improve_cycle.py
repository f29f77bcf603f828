"""The cycle's phases on fakeredis with a stand-in for Celery's remote control: metrics from the
ledger, guardrails and dry runs, deployment with before-snapshots, rollback, learning, the lock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ceremonies.improve import cycle as cycle_module
from ceremonies.improve import learning, records
from ceremonies.improve.cycle import CycleRunning, run_cycle
from ceremonies.improve.deploy import Deployment, apply, rollback
from ceremonies.improve.discovery import Discovery, discover, measure
from ceremonies.improve.guardrails import validate
from ceremonies.improve.learning import learn
from ceremonies.improve.records import Cycle, CycleStatus
from ceremonies.improve.vocabulary import (
    Direction,
    FileWorkItem,
    Metric,
    Proposal,
    Reprioritise,
    ScaleRole,
    SetLease,
    SetRateLimit,
    Source,
)
from swarm.celery_app import role_queues
from swarm.ledger import Ledger
from swarm.models import Priority, Role, Status

NODE = "qa@host"


class StubControl:
    """Answers like a worker node consuming the qa queues, with a resizable pool."""

    def __init__(self, queues: list[str], size: int) -> None:
        self.queues, self.size = queues, size
        self.rate: Any = None
        self.pid = 4242  # the node's process: another one after a restart
        self.commands: list[tuple[str, Any]] = []

    def inspect(self, **_: Any) -> StubControl:
        return self

    def active_queues(self) -> dict[str, Any]:
        return {NODE: [{"name": q} for q in self.queues], "other@host": [{"name": "elsewhere.qa.low"}]}

    def stats(self) -> dict[str, Any]:
        pool = {"max-concurrency": self.size, "implementation": "workers.pool:TaskPool"}
        return {NODE: {"pid": self.pid, "pool": pool}}

    def registered(self, *_: str) -> dict[str, Any]:
        return {NODE: [f"swarm.execute [rate_limit={self.rate}]" if self.rate else "swarm.execute"]}

    def ping(self, destination: list[str], **_: Any) -> list[dict[str, Any]]:
        return [{NODE: {"ok": "pong"}}] if NODE in destination else []

    def pool_grow(self, n: int, **_: Any) -> list[dict[str, Any]]:
        self.size += n
        self.commands.append(("pool_grow", n))
        return [{NODE: {"ok": "pool will grow"}}]

    def pool_shrink(self, n: int, **_: Any) -> list[dict[str, Any]]:
        self.size -= n
        self.commands.append(("pool_shrink", n))
        return [{NODE: {"ok": "pool will shrink"}}]

    def rate_limit(self, task: str, rate: Any, **_: Any) -> list[dict[str, Any]]:
        self.rate = rate or None
        self.commands.append(("rate_limit", rate))
        return [{NODE: {"ok": "new rate limit set successfully"}}]


class StubApp:
    def __init__(self, ledger: Ledger, size: int = 2) -> None:
        self.control = StubControl(role_queues(ledger.settings, Role.QA), size)


def grow(delta: int = 2) -> ScaleRole:
    return ScaleRole(role=Role.QA, delta=delta, metric=Metric.THROUGHPUT, better=Direction.HIGHER)


def found(ledger: Ledger, app: Any) -> Discovery:
    return discover(ledger, app, ledger.server_time())


def test_measure_reads_depth_outcomes_and_dead_items_per_role(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    done = [ledger.submit("t", f"d{n}", role="qa") for n in range(2)]
    for item in done:
        ledger.claim(item.id, "a1")
        ledger.complete(item.id, "a1")
    doomed = ledger.submit("t", "x", role="qa", max_attempts=1)
    ledger.claim(doomed.id, "a1")
    ledger.fail(doomed.id, "a1", "permanent: boom", retry=True)
    for n in range(3):
        ledger.submit("t", f"p{n}", role="qa")
    now = ledger.server_time()
    qa = measure(ledger, now - timedelta(seconds=60), now + timedelta(seconds=1))[Role.QA]
    assert qa.queue_depth == 3
    assert (qa.completed, qa.dead_items, qa.claims) == (2, 1, 3)
    assert qa.success_rate == pytest.approx(2 / 3)
    assert qa.dead_ids == [doomed.id]
    assert qa.top_errors == ["1x permanent: boom"]
    assert qa.oldest_wait_s is not None
    assert qa.throughput is not None
    assert qa.throughput > 0
    assert measure(ledger, now - timedelta(seconds=60), now)[Role.PM].queue_depth == 0


def test_discovery_sees_only_the_nodes_on_this_ledgers_queues(fake_ledger: Ledger) -> None:
    app = StubApp(fake_ledger, size=3)
    discovery = found(fake_ledger, app)
    assert [n.node for n in discovery.nodes] == [NODE], "other@host consumes another namespace"
    assert discovery.roles[Role.QA].concurrency == 3
    assert discovery.roles[Role.QA].nodes == [NODE]


def test_guardrails_bound_pools_leases_and_the_number_of_actions(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger, size=2)
    lease = SetLease(role=Role.QA, seconds=86_000, metric=Metric.EXPIRED_LEASES, better=Direction.LOWER)
    dev = ScaleRole(role=Role.DEVELOPER, delta=1, metric=Metric.THROUGHPUT, better=Direction.HIGHER)
    proposals = [
        Proposal(action=grow(20), source=Source.ADVISOR),  # past improve_max_concurrency (16)
        Proposal(action=grow(-2), source=Source.ADVISOR),  # below improve_min_concurrency (1)
        Proposal(action=lease, source=Source.ADVISOR),
        Proposal(action=dev, source=Source.ANALYSER),  # no developer node
        Proposal(action=grow(2), source=Source.ANALYSER),
        Proposal(action=grow(1), source=Source.ADVISOR),  # a second change to the qa pool
    ]
    verdicts = validate(proposals, found(ledger, app), ledger, app)
    reasons = [v.reason for v in verdicts]
    assert [v.accepted for v in verdicts] == [False, False, False, False, True, False]
    assert "22 slot(s), outside 1..16" in reasons[0]
    assert "0 slot(s)" in reasons[1]
    assert "outside 1..1800s" in reasons[2]
    assert "no live node consumes developer's queues" in reasons[3]
    assert verdicts[4].dry_run == f"pinged {NODE}; resizable pools"
    assert "another action on pool:qa@host was accepted first" in reasons[5]
    assert app.control.commands == [], "validation changes nothing"


def test_the_action_limit_the_advisor_budget_and_monitored_targets(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    ledger.settings = ledger.settings.model_copy(update={"improve_max_actions": 1})
    app = StubApp(ledger)
    rate = SetRateLimit(role=Role.QA, rate="5/s", metric=Metric.THROUGHPUT, better=Direction.HIGHER)
    lease = SetLease(role=Role.QA, seconds=60, metric=Metric.EXPIRED_LEASES, better=Direction.LOWER)
    discovery = found(ledger, app)
    advised = [Proposal(action=rate, source=Source.ADVISOR)]
    verdicts = validate(advised, discovery, ledger, app, advisor_cost=9.0)
    assert "over the budget" in verdicts[0].reason
    verdicts = validate(
        [Proposal(action=rate, source=Source.ANALYSER), Proposal(action=lease, source=Source.ANALYSER)],
        discovery, ledger, app, monitored=frozenset({f"pool:{NODE}"}),
    )  # fmt: skip
    assert "still being monitored" in verdicts[0].reason
    assert verdicts[1].accepted
    verdicts = validate([Proposal(action=lease, source=Source.ANALYSER)] * 2, discovery, ledger, app)
    assert "limit of 1 action(s)" in verdicts[1].reason


def test_reprioritise_is_dry_run_against_the_item(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger)
    pending = ledger.submit("t", "old", role="qa", priority="low")
    held = ledger.submit("t", "busy", role="qa", priority="low")
    ledger.claim(held.id, "a1")

    def up(work_id: str) -> Proposal:
        action = Reprioritise(work_id=work_id, priority=Priority.HIGH, metric=Metric.OLDEST_WAIT_S,
                              better=Direction.LOWER)  # fmt: skip
        return Proposal(action=action, source=Source.ANALYSER)

    missing = "work_0000000000000000001_abcdefabcdef"
    verdicts = validate([up(pending.id), up(held.id), up(missing)], found(ledger, app), ledger, app)
    assert verdicts[0].accepted
    assert "is claimed, not pending" in verdicts[1].reason
    assert f"no item {missing}" in verdicts[2].reason


def test_deployments_keep_a_before_snapshot_and_roll_back_from_it(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger, size=2)
    discovery = found(ledger, app)
    at = ledger.server_time()
    scaled = apply(grow(3), Source.ANALYSER, discovery, ledger, app, at=at)
    assert scaled.ok
    assert scaled.before == {"pool": {NODE: 2}, "pids": {NODE: 4242}}
    assert scaled.after["pool"] == {NODE: 5}
    leased = apply(
        SetLease(role=Role.QA, seconds=45, metric=Metric.EXPIRED_LEASES, better=Direction.LOWER),
        Source.ANALYSER, discovery, ledger, app, at=at,
    )  # fmt: skip
    assert leased.before == {"lease_seconds": None}
    assert ledger.client.hget(ledger.keys.tuning, "lease_seconds:qa") == "45.0"
    item = ledger.submit("t", "x", role="qa", priority="low")
    up = Reprioritise(
        work_id=item.id, priority=Priority.HIGH, metric=Metric.OLDEST_WAIT_S, better=Direction.LOWER
    )
    moved = apply(up, Source.ANALYSER, discovery, ledger, app, at=at)
    assert moved.role is Role.QA
    assert ledger.get(item.id).priority is Priority.HIGH

    assert rollback(scaled, ledger, app) == (True, f"{NODE}: pool_shrink 3 (5 -> 2)")
    assert app.control.size == 2
    assert rollback(leased, ledger, app)[0]
    assert ledger.client.hget(ledger.keys.tuning, "lease_seconds:qa") is None
    assert rollback(moved, ledger, app)[0]
    assert ledger.get(item.id).priority is Priority.LOW


def test_a_rollback_never_shrinks_a_pool_below_one_slot(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger, size=4)
    deployed = apply(grow(3), Source.ANALYSER, found(ledger, app), ledger, app, at=ledger.server_time())
    app.control.size = 2  # someone shrank it meanwhile
    ok, detail = rollback(deployed, ledger, app)
    assert ok
    assert app.control.size == 1
    assert detail == f"{NODE}: pool_shrink 1 (2 -> 1)"


def _recorded(ledger: Ledger, deployment: Deployment) -> Cycle:
    cycle = Cycle(id=records.new_cycle_id(deployment.deployed_at), started_at=deployment.deployed_at,
                  window_s=60.0, deployments=[deployment], status=CycleStatus.COMPLETED)  # fmt: skip
    records.save(ledger, cycle)
    return cycle


def test_a_change_that_made_its_metric_worse_is_rolled_back_by_the_next_cycle(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    ledger.settings = ledger.settings.model_copy(update={"improve_min_observation": 1.0})
    app = StubApp(ledger, size=3)
    shrink = grow(-2)
    deployed = apply(shrink, Source.ADVISOR, found(ledger, app), ledger, app, at=ledger.server_time())
    deployed = deployed.model_copy(update={"before_value": 10.0})  # it was doing 10 items/s
    assert app.control.size == 1
    earlier = _recorded(ledger, deployed)
    ledger.submit("t", "waiting", role="qa")  # since then: work, and nothing completed
    later = ledger.server_time() + timedelta(seconds=5)
    learned, monitored = learn(ledger, app, "cycle_next", later)
    assert monitored == frozenset()
    assert len(learned) == 1
    judgement = learned[0].judgement
    assert (judgement.outcome, judgement.before_value, judgement.after_value) == ("worse", 10.0, 0.0)
    assert judgement.rolled_back
    assert app.control.size == 3, "pool_grow gave back what was shrunk"
    stored = records.load(ledger, earlier.id)
    assert stored is not None
    assert stored.deployments[0].judgement == judgement, "the judgement is written into the deploying cycle"
    assert learn(ledger, app, "cycle_after", later)[0] == [], "judged once"


def test_a_recent_change_waits_for_a_later_cycle_and_holds_its_target(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger, size=1)
    deployed = apply(grow(1), Source.ANALYSER, found(ledger, app), ledger, app, at=ledger.server_time())
    _recorded(ledger, deployed)
    learned, monitored = learn(ledger, app, "cycle_next", ledger.server_time())
    assert learned == []
    assert monitored == frozenset({f"pool:{NODE}"})


def test_run_cycle_records_itself_and_a_dry_run_deploys_nothing(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    ledger.settings = ledger.settings.model_copy(update={"improve_window": 60.0})
    app = StubApp(ledger, size=1)
    for n in range(30):
        ledger.submit("t", f"p{n}", role="qa")  # pending, with no throughput: the pool should grow
    dry = run_cycle(ledger, app, dry_run=True)
    assert dry.dry_run
    assert dry.status.value == "completed"
    assert [p.name for p in dry.phases] == ["1 discovery", "2 generation", "3 validation"]
    assert [v.accepted for v in dry.verdicts] == [True]
    assert dry.deployments == []
    assert app.control.commands == []
    real = run_cycle(ledger, app)
    assert [d.action.describe() for d in real.deployments] == ["scale_role qa +1"]
    assert app.control.size == 2
    assert [c.id for c in records.past_cycles(ledger, 5)] == [real.id, dry.id]


def test_a_second_cycle_during_a_running_one_is_refused(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    held = ledger.client.lock(ledger.keys.improve_lock, timeout=60, blocking=False)
    assert held.acquire()
    with pytest.raises(CycleRunning, match="cycle is running already"):
        run_cycle(ledger, StubApp(ledger))
    held.release()
    assert run_cycle(ledger, StubApp(ledger)).status.value == "completed"
    assert all(c.status.value == "completed" for c in records.past_cycles(ledger, 5))
    assert len(records.past_cycles(ledger, 5)) == 1


# --- Review findings: shared nodes, crash safety, observation time, filings, deployment records ---


def _all_roles(ledger: Ledger, size: int) -> StubApp:
    """A node consuming every role's queues, e.g. ``swarm worker --role pm,architect,...``."""
    app = StubApp(ledger, size=size)
    app.control.queues = [q for role in Role for q in role_queues(ledger.settings, role)]
    return app


def _scale(role: Role, delta: int) -> Proposal:
    action = ScaleRole(role=role, delta=delta, metric=Metric.THROUGHPUT, better=Direction.HIGHER)
    return Proposal(action=action, source=Source.ADVISOR)


def test_a_node_serving_several_roles_is_neither_resized_nor_rate_limited(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = _all_roles(ledger, size=12)
    rate = SetRateLimit(role=Role.QA, rate="5/s", metric=Metric.THROUGHPUT, better=Direction.HIGHER)
    proposals = [_scale(Role.PM, 4), _scale(Role.QA, 4), _scale(Role.DEVELOPER, -2)]
    verdicts = validate(
        [*proposals, Proposal(action=rate, source=Source.ANALYSER)], found(ledger, app), ledger, app
    )
    assert [v.accepted for v in verdicts] == [False] * 4, "12 + 3 x 4 would be 24 slots on one node"
    for verdict in verdicts:
        assert f"{NODE} serves pm, architect, developer, qa, devops" in verdict.reason
        assert "more than one role" in verdict.reason


def test_pool_changes_accepted_in_one_cycle_add_up_per_node(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger, size=12)
    verdicts = validate([_scale(Role.QA, 4), _scale(Role.QA, 4)], found(ledger, app), ledger, app)
    assert [v.accepted for v in verdicts] == [True, False]
    assert f"{NODE} would have 20 slot(s) with +4 accepted before, outside 1..16" == verdicts[1].reason


def _filing(**fields: Any) -> Proposal:
    action = FileWorkItem(description="look into it", role=Role.QA, metric=Metric.DEAD_ITEMS,
                          better=Direction.LOWER, **fields)  # fmt: skip
    return Proposal(action=action, source=Source.ADVISOR)


def test_filings_are_improvements_at_most_high_and_small_and_wait_in_the_backlog(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger)
    ledger.settings = ledger.settings.model_copy(update={"improve_max_actions": 10})
    proposals = [
        _filing(type="feature"),
        _filing(priority=Priority.CRITICAL),
        _filing(points=13),
        _filing(priority=Priority.HIGH, points=8),
    ]
    verdicts = validate(proposals, found(ledger, app), ledger, app)
    assert [v.accepted for v in verdicts] == [False, False, False, True]
    assert "only 'improvement' work items are filed, not 'feature'" in verdicts[0].reason
    assert "priority is at most high, not critical" in verdicts[1].reason
    assert "at most 8 points, not 13" in verdicts[2].reason
    filed = apply(verdicts[3].proposal.action, Source.ADVISOR, found(ledger, app), ledger, app,
                  at=ledger.server_time())  # fmt: skip
    assert filed.ok
    wid = filed.after["work_id"]
    item = ledger.get(wid)
    assert (item.type, item.status, item.priority) == ("improvement", Status.PENDING, Priority.HIGH)
    control = ledger.submit("t", "dispatched as usual", role="qa")
    outbox = set(ledger.client.zrange(ledger.keys.outbox, 0, -1))
    assert control.id in outbox
    assert wid not in outbox, "filed undispatched: it waits for planning, never sent to an executor"


class TwoNodes:
    """Two qa nodes whose names share a prefix; the second does not answer pool commands."""

    def __init__(self, ledger: Ledger) -> None:
        self.queues = role_queues(ledger.settings, Role.QA)
        self.sizes = {"qa@host": 2, "qa@host2": 2}
        self.commands: list[tuple[str, int]] = []

    def inspect(self, **_: Any) -> TwoNodes:
        return self

    def active_queues(self) -> dict[str, Any]:
        return {node: [{"name": q} for q in self.queues] for node in self.sizes}

    def stats(self) -> dict[str, Any]:
        pool = "workers.pool:TaskPool"
        return {
            n: {"pid": 1, "pool": {"max-concurrency": s, "implementation": pool}}
            for n, s in self.sizes.items()
        }

    def registered(self, *_: str) -> dict[str, Any]:
        return {node: ["swarm.execute"] for node in self.sizes}

    def ping(self, destination: list[str], **_: Any) -> list[dict[str, Any]]:
        return [{node: {"ok": "pong"}} for node in destination]

    def pool_grow(self, n: int, destination: list[str], **_: Any) -> list[dict[str, Any]]:
        self.commands.append(("pool_grow", n))
        if "qa@host" in destination:
            self.sizes["qa@host"] += n
        return [{"qa@host": {"ok": "pool will grow"}}] if "qa@host" in destination else []


def test_a_deployment_records_exactly_the_nodes_it_changed(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger)
    app.control = TwoNodes(ledger)  # type: ignore[assignment]
    deployed = apply(grow(1), Source.ANALYSER, found(ledger, app), ledger, app, at=ledger.server_time())
    assert not deployed.ok
    assert deployed.error == "qa@host2 did not answer"
    assert deployed.after["applied"] == {"qa@host": 1}, "qa@host is not taken for qa@host2"


def test_an_undo_skips_a_node_that_restarted_since(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger, size=2)
    deployed = apply(grow(3), Source.ANALYSER, found(ledger, app), ledger, app, at=ledger.server_time())
    app.control.pid, app.control.size = 5151, 2  # restarted with its configured pool
    ok, detail = rollback(deployed, ledger, app)
    assert ok
    assert detail == f"{NODE}: skipped, it restarted (pid 4242 -> 5151); its pool is a new one"
    assert app.control.size == 2
    assert ("pool_shrink", 3) not in app.control.commands


def test_an_undo_never_grows_a_pool_past_the_maximum(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    app = StubApp(ledger, size=3)
    deployed = apply(grow(-2), Source.ANALYSER, found(ledger, app), ledger, app, at=ledger.server_time())
    app.control.size = 15  # grown meanwhile
    ok, detail = rollback(deployed, ledger, app)
    assert (ok, detail) == (True, f"{NODE}: pool_grow 1 (15 -> 16)")
    assert app.control.size == 16


def test_a_change_is_judged_only_after_the_minimum_observation_time(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    assert ledger.settings.improve_min_observation_seconds == ledger.settings.improve_window_seconds / 4
    ledger.settings = ledger.settings.model_copy(update={"improve_min_observation": 30.0})
    app = StubApp(ledger, size=3)
    deployed = apply(grow(-2), Source.ADVISOR, found(ledger, app), ledger, app, at=ledger.server_time())
    _recorded(ledger, deployed.model_copy(update={"before_value": 10.0}))
    ledger.submit("t", "waiting", role="qa")
    soon = ledger.server_time() + timedelta(seconds=5)
    learned, monitored = learn(ledger, app, "cycle_next", soon)
    assert (learned, monitored) == ([], frozenset({f"pool:{NODE}"})), "5 s of data is too little"
    assert app.control.size == 1
    learned, _ = learn(ledger, app, "cycle_later", soon + timedelta(seconds=30))
    assert [x.judgement.outcome for x in learned] == ["worse"]
    assert app.control.size == 3


def test_a_rollback_started_by_a_dead_cycle_is_not_repeated(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    ledger.settings = ledger.settings.model_copy(update={"improve_min_observation": 1.0})
    app = StubApp(ledger, size=3)
    deployed = apply(grow(-2), Source.ADVISOR, found(ledger, app), ledger, app, at=ledger.server_time())
    app.control.size = 3  # the dead cycle's rollback had grown it back ...
    marked = deployed.model_copy(update={"before_value": 10.0, "rollback_by": "cycle_dead"})
    earlier = _recorded(ledger, marked)  # ... after marking it, and died before its judgement
    commands = list(app.control.commands)
    learned, _ = learn(ledger, app, "cycle_next", ledger.server_time() + timedelta(seconds=5))
    judgement = learned[0].judgement
    assert (judgement.outcome, judgement.rolled_back) == ("worse", False)
    assert "started by cycle_dead did not finish; not repeated" in judgement.rollback
    assert app.control.commands == commands
    assert app.control.size == 3
    stored = records.load(ledger, earlier.id)
    assert stored is not None
    assert stored.deployments[0].judgement == judgement


def test_a_rollback_is_marked_in_the_record_before_it_acts(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = fake_ledger
    ledger.settings = ledger.settings.model_copy(update={"improve_min_observation": 1.0})
    app = StubApp(ledger, size=3)
    deployed = apply(grow(-2), Source.ADVISOR, found(ledger, app), ledger, app, at=ledger.server_time())
    earlier = _recorded(ledger, deployed.model_copy(update={"before_value": 10.0}))
    ledger.submit("t", "waiting", role="qa")  # work, and nothing completed: worse
    seen: list[str] = []

    def crash(deployment: Deployment, *_: Any) -> tuple[bool, str]:
        stored = records.load(ledger, earlier.id)
        assert stored is not None
        seen.append(stored.deployments[0].rollback_by)
        raise KeyboardInterrupt  # the process dies mid-rollback

    monkeypatch.setattr(learning, "rollback", crash)
    with pytest.raises(KeyboardInterrupt):
        learn(ledger, app, "cycle_dying", ledger.server_time() + timedelta(seconds=5))
    assert seen == ["cycle_dying"]


def test_a_phase_that_raises_is_recorded(fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = fake_ledger

    def broken(*_: Any, **__: Any) -> list[Any]:
        raise RuntimeError("validation broke")

    monkeypatch.setattr(cycle_module, "validate", broken)
    with pytest.raises(RuntimeError):
        run_cycle(ledger, StubApp(ledger))
    [stored] = records.past_cycles(ledger, 5)
    assert stored.status is CycleStatus.FAILED
    assert [p.name for p in stored.phases][-1] == "3 validation"
    assert stored.phases[-1].summary == "failed: RuntimeError: validation broke"


def test_the_lock_is_renewed_between_phases_and_a_lost_lock_stops_the_cycle(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = fake_ledger
    key = ledger.keys.improve_lock
    ttls: list[int] = []

    def analyse(*_: Any) -> list[Any]:
        ledger.client.pexpire(key, 1000)  # nearly run out
        return []

    real_validate = cycle_module.validate

    def validate_(*args: Any, **kwargs: Any) -> Any:
        ttls.append(ledger.client.pttl(key))
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(cycle_module, "analyse", analyse)
    monkeypatch.setattr(cycle_module, "validate", validate_)
    assert run_cycle(ledger, StubApp(ledger)).status is CycleStatus.COMPLETED
    assert ttls[0] > 100_000, "renewed to lock_seconds at the next phase"

    monkeypatch.setattr(cycle_module, "analyse", lambda *_: ledger.client.delete(key) and [])
    with pytest.raises(CycleRunning, match="lock expired"):
        run_cycle(ledger, StubApp(ledger))
    assert records.past_cycles(ledger, 1)[0].status is CycleStatus.FAILED


class Crash(BaseException):
    """The process dies (nothing in the cycle catches it)."""


def test_a_cycle_that_died_while_deploying_is_closed_by_the_next_one(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = fake_ledger
    ledger.settings = ledger.settings.model_copy(update={"improve_window": 60.0})
    app = StubApp(ledger, size=1)
    for n in range(30):
        ledger.submit("t", f"p{n}", role="qa")
    real_execute = cycle_module.execute

    def die_after_applying(deployment: Deployment, *args: Any) -> Deployment:
        stored = records.past_cycles(ledger, 1)[0]
        assert [d.status.value for d in stored.deployments] == ["pending"], "written ahead"
        assert stored.deployments[0].before["pool"] == {NODE: 1}
        real_execute(deployment, *args)
        raise Crash

    monkeypatch.setattr(cycle_module, "execute", die_after_applying)
    with pytest.raises(Crash):
        run_cycle(ledger, app)
    assert app.control.size == 2, "applied, never confirmed"
    dead = records.past_cycles(ledger, 1)[0]
    assert dead.status is CycleStatus.RUNNING
    assert [p.name for p in dead.phases][-1] == "4 deployment"

    monkeypatch.setattr(cycle_module, "execute", real_execute)
    monkeypatch.setattr(cycle_module, "analyse", lambda *_: [])
    after = run_cycle(ledger, app)
    closed = records.load(ledger, dead.id)
    assert closed is not None
    assert closed.status is CycleStatus.ABANDONED
    deployment = closed.deployments[0]
    assert deployment.status.value == "abandoned"
    assert deployment.judgement is not None
    assert (deployment.judgement.outcome, deployment.judgement.rolled_back) == ("abandoned", True)
    assert deployment.judgement.rollback == f"{NODE}: pool_shrink 1 (2 -> 1)"
    assert app.control.size == 1, "undone from its snapshot"
    assert [(x.cycle_id, x.judgement.outcome) for x in after.learned] == [(dead.id, "abandoned")]
    assert learn(ledger, app, "cycle_again", ledger.server_time())[0] == [], "closed once"
