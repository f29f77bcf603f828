"""The ceremonies' figures as pure functions, against numbers worked out by hand in each test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ceremonies import figures
from ceremonies.figures import Capacity, Failure, ObjectiveState
from ceremonies.inspect_adapt import role_times
from ceremonies.pi_planning import history_iterations, plan
from ceremonies.system_demo import demo_figures
from swarm.calendar import Calendar
from swarm.models import Event, EventKind, Priority, Role, Status, WorkItem

E = datetime(2026, 1, 5, tzinfo=UTC)
CAL = Calendar(epoch=E, iteration_seconds=100.0, iterations_per_pi=3, sync_every_seconds=100.0)


def at(seconds: float) -> datetime:
    return E + timedelta(seconds=seconds)


def item(wid: str, **fields: Any) -> WorkItem:
    base: dict[str, Any] = {"id": wid, "type": "feature", "created_at": E, "updated_at": E}
    return WorkItem.model_validate({**base, **fields})


def done(wid: str, end: float, points: int, team: str = "web", **fields: Any) -> WorkItem:
    return item(wid, status=Status.COMPLETED, completed_at=at(end), points=points, team=team, **fields)


# -- percentiles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([15, 20, 35, 40, 50], 50, 35),  # rank ceil(2.5) = 3
        ([15, 20, 35, 40, 50], 90, 50),  # rank ceil(4.5) = 5
        ([15, 20, 35, 40, 50], 30, 20),  # rank ceil(1.5) = 2
        ([50, 15, 40, 20, 35], 40, 20),  # unsorted input; rank ceil(2.0) = 2
        ([1, 2, 3, 4], 50, 2),  # rank 2: nearest rank never interpolates
        ([1, 2, 3, 4], 90, 4),  # rank ceil(3.6) = 4
        ([7], 50, 7),
        ([3, 1, 2], 0, 1),  # rank at least 1: the minimum
        ([3, 1, 2], 100, 3),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert figures.percentile(values, p) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert figures.percentile([], 50) is None


# -- velocity and capacity ----------------------------------------------------------------------


def test_points_by_team_and_role_and_workflow_ends() -> None:
    items = [
        done("a", 10, 3, role=Role.DEVELOPER, next_id="b"),
        done("b", 20, 3, role=Role.QA),
        done("c", 30, 5, team="api", role=Role.DEVELOPER),
    ]
    assert figures.points_by(items, lambda i: i.team) == {"api": 5, "web": 6}
    assert figures.points_by(items, lambda i: i.role.value) == {"developer": 8, "qa": 3}
    assert [i.id for i in figures.workflow_ends(items)] == ["b", "c"]
    assert demo_figures(items) == {
        "velocity_by_team": {"api": 5, "web": 6},
        "velocity_by_role": {"developer": 8, "qa": 3},
        "workflow_velocity_by_team": {"api": 5, "web": 3},
    }


def test_capacity_is_the_mean_workflow_velocity_of_the_iterations_given() -> None:
    iterations = [CAL.iteration(1, 1), CAL.iteration(1, 2)]  # [0, 100) and [100, 200)
    completed = [
        done("w1", 50, 5),  # web, I1
        done("w2", 150, 3),  # web, I2
        done("w3", 160, 7, next_id="w4"),  # a stage that handed off: its points are the workflow's
        done("w5", 250, 9),  # I3: not one of the iterations given
        done("a1", 40, 0, team="api"),  # history, but no points
    ]
    found = figures.capacities(completed, iterations, default=10, teams=["web", "ops"])
    assert found["web"] == Capacity(
        team="web", per_iteration=4.0, basis="history", iterations=["PI1.I1", "PI1.I2"], history_points=8
    )  # (5 + 3) / 2
    assert found["api"] == Capacity(team="api", per_iteration=10.0, basis="default", iterations=[])
    assert found["ops"] == Capacity(team="ops", per_iteration=10.0, basis="default", iterations=[])
    assert list(found) == ["api", "ops", "web"]


def test_without_ended_iterations_every_team_gets_the_default() -> None:
    found = figures.capacities([done("w1", 50, 5)], [], default=6, teams=["web"])
    assert found == {"web": Capacity(team="web", per_iteration=6.0, basis="default", iterations=[])}


def test_history_iterations_are_the_last_ended_before_the_pi() -> None:
    assert history_iterations(CAL, CAL.pi(1), 3) == []
    assert [p.key for p in history_iterations(CAL, CAL.pi(2), 2)] == ["PI1.I2", "PI1.I3"]
    assert [p.key for p in history_iterations(CAL, CAL.pi(2), 5)] == ["PI1.I1", "PI1.I2", "PI1.I3"]
    assert [p.key for p in history_iterations(CAL, CAL.pi(3), 4)] == ["PI1.I3", "PI2.I1", "PI2.I2", "PI2.I3"]


# -- WSJF, business value and choosing objectives -----------------------------------------------


def backlog() -> list[WorkItem]:
    """WSJF = cost of delay / max(points, 1), cost of delay 20/13/8/3 by priority."""
    return [
        item("a", priority=Priority.HIGH, points=5),  # 13 / 5 = 2.6
        item("b", priority=Priority.HIGH, points=2),  # 13 / 2 = 6.5
        item("c", priority=Priority.CRITICAL, points=8),  # 20 / 8 = 2.5
        item("d", priority=Priority.MEDIUM, points=1),  # 8 / 1 = 8
        item("e", priority=Priority.LOW, points=0),  # 3 / max(0, 1) = 3
        item("f", priority=Priority.MEDIUM, points=3, payload={"cost_of_delay": 30}),  # 30 / 3 = 10
    ]


def test_wsjf_and_its_cost_of_delay_override() -> None:
    by_id = {i.id: figures.wsjf(i) for i in backlog()}
    assert by_id == {"a": 2.6, "b": 6.5, "c": 2.5, "d": 8.0, "e": 3.0, "f": 10.0}
    assert figures.cost_of_delay(item("x", payload={"cost_of_delay": True})) == 8  # a bool is not an int


def test_plan_order_is_priority_then_wsjf_then_id() -> None:
    assert [i.id for i in figures.plan_order(backlog())] == ["c", "b", "a", "f", "d", "e"]
    twins = [item("z", points=2), item("y", points=2)]
    assert [i.id for i in figures.plan_order(twins)] == ["y", "z"]


def test_choose_is_greedy_and_keeps_trying_smaller_items() -> None:
    # Capacity 12: c (8) leaves 4, b (2) leaves 2, a (5) and f (3) do not fit, d (1) leaves 1,
    # e (0) fits.
    chosen, leftovers = figures.choose(backlog(), 12)
    assert [i.id for i in chosen] == ["c", "b", "d", "e"]
    assert [i.id for i in leftovers] == ["a", "f"]
    chosen, leftovers = figures.choose(backlog(), 0)
    assert [i.id for i in chosen] == ["e"]


@pytest.mark.parametrize(
    ("payload", "priority", "value"),
    [
        ({"business_value": 7}, Priority.LOW, 7),
        ({"business_value": 11}, Priority.LOW, 2),  # outside 1-10: by priority
        ({"business_value": 0}, Priority.HIGH, 8),
        ({"business_value": True}, Priority.MEDIUM, 5),
        ({"business_value": "9"}, Priority.CRITICAL, 10),
        ({}, Priority.CRITICAL, 10),
    ],
)
def test_business_value(payload: dict[str, Any], priority: Priority, value: int) -> None:
    assert figures.business_value(item("x", payload=payload, priority=priority)) == value


def test_plan_per_team_within_pi_capacity() -> None:
    items = [
        *backlog(),
        item("g", team="api", priority=Priority.LOW, points=4),
        item("h", team="api", priority=Priority.HIGH, points=3, payload={"business_value": 9}),
    ]
    items = [i if i.team == "api" else i.model_copy(update={"team": "web"}) for i in items]
    capacity = {
        "web": Capacity(team="web", per_iteration=4.0, basis="history", iterations=["PI1.I1"]),
        "api": Capacity(team="api", per_iteration=1.0, basis="default", iterations=[]),
        "ops": Capacity(team="ops", per_iteration=2.0, basis="default", iterations=[]),
    }
    teams, objectives, leftovers = plan(items, capacity, pi_iterations=3)
    # web: 4 x 3 = 12, as in the greedy test. api: 1 x 3 = 3: h (3) fits, g (4) does not.
    assert [i.id for i in objectives] == ["h", "c", "b", "d", "e"]
    assert [i.id for i in leftovers] == ["g", "a", "f"]
    summary = {
        t.team: (t.pi_capacity, t.planned_points, t.planned_business_value, t.objectives, t.leftovers)
        for t in teams
    }
    # web value: c critical 10 + b high 8 + d medium 5 + e low 2 = 25; api: h's own 9.
    assert summary == {"api": (3.0, 3, 9, 1, 1), "ops": (6.0, 0, 0, 0, 0), "web": (12.0, 11, 25, 4, 2)}


def test_predictability() -> None:
    assert figures.predictability(planned=16, actual=14) == 0.875
    assert figures.predictability(planned=10, actual=0) == 0.0
    assert figures.predictability(planned=0, actual=0) is None


# -- objectives along handoff chains ------------------------------------------------------------


def test_objective_states_along_a_chain() -> None:
    a = done("a", 10, 3, next_id="b")
    b_done = done("b", 30, 3)
    b_failed = item("b", status=Status.FAILED, completed_at=at(30), error="boom")
    b_held = item("b", status=Status.CLAIMED, claimed_at=at(20))
    state = figures.objective_state
    assert state([a, b_done], at(40)) == figures.ChainState(ObjectiveState.DONE, 2, b_done, at(30))
    assert state([a, b_done], at(30)).state is ObjectiveState.IN_PROGRESS  # b not done before as_of
    assert state([a, b_done], at(30)).stages_completed == 1
    assert state([a, b_failed], at(31)) == figures.ChainState(ObjectiveState.FAILED, 1, b_failed, None)
    assert state([a, b_failed], at(25)).state is ObjectiveState.IN_PROGRESS
    assert state([a, b_held], at(25)).state is ObjectiveState.IN_PROGRESS
    assert state([a], at(40)).state is ObjectiveState.IN_PROGRESS  # handed off to a stage now gone
    assert state([item("p")], at(40)) == figures.ChainState(ObjectiveState.NOT_STARTED, 0, item("p"), None)
    assert state([item("p", attempts=1)], at(40)).state is ObjectiveState.IN_PROGRESS  # tried, back in line
    assert state([a, b_done], at(5)).state is ObjectiveState.NOT_STARTED  # nothing had happened yet
    assert state([], at(40)) == figures.ChainState(ObjectiveState.MISSING, 0, None, None)


def test_chains_follow_next_id() -> None:
    known = {i.id: i for i in (done("a", 1, 1, next_id="b"), done("b", 2, 1, next_id="c"), item("c"))}
    chains = figures.chains_from(known, ["a", "b", "x"])
    assert {k: [i.id for i in v] for k, v in chains.items()} == {
        "a": ["a", "b", "c"],
        "b": ["b", "c"],
        "x": [],
    }


# -- cycle and lead times -----------------------------------------------------------------------


def test_role_times_are_nearest_rank_percentiles() -> None:
    items = [  # (created, claimed, completed): cycle = completed - claimed, lead = completed - created
        done("d1", 40, 1, role=Role.DEVELOPER, created_at=at(1), claimed_at=at(10)),  # 30, 39
        done("d2", 50, 1, role=Role.DEVELOPER, created_at=at(1), claimed_at=at(40)),  # 10, 49
        done("d3", 105, 1, role=Role.DEVELOPER, created_at=at(1), claimed_at=at(85)),  # 20, 104
        done("q1", 90, 1, role=Role.QA, created_at=at(40), claimed_at=at(70)),  # 20, 50
    ]
    rows = {r.role: r for r in role_times(items)}
    dev, qa = rows[Role.DEVELOPER], rows[Role.QA]
    # developer cycles sorted [10, 20, 30]: p50 rank 2 = 20, p90 rank 3 = 30; leads [39, 49, 104].
    assert (dev.completed, dev.cycle_p50, dev.cycle_p90, dev.lead_p50, dev.lead_p90) == (3, 20, 30, 49, 104)
    assert (qa.completed, qa.cycle_p50, qa.cycle_p90, qa.lead_p50, qa.lead_p90) == (1, 20, 20, 50, 50)
    assert list(rows) == [Role.DEVELOPER, Role.QA]  # in the roles' own order


# -- failure causes -----------------------------------------------------------------------------

W1 = "work_1763900000000000001_0123456789ab"
W2 = "work_1763900000000000002_0123456789ab"


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (f"Timeout after 30s talking to {W1}\nTraceback: ...", "Timeout after <n>s talking to <work>"),
        ("agent_x1 crashed: exit 137", "<agent> crashed: exit <n>"),
        ("  disk   full \t on  /dev/sda1 ", "disk full on /dev/sda<n>"),
        ("rework_3 failed", "rework_<n> failed"),  # not an id: no word boundary before "work"
        ("", "(no error recorded)"),
        (None, "(no error recorded)"),
        ("\n\nsecond line only", "second line only"),
        ("x" * 500, "x" * 200),
    ],
)
def test_normalise_error(error: str | None, cause: str) -> None:
    assert figures.normalise_error(error) == cause


def fail(
    wid: str, error: str, wtype: str = "build", role: Role = Role.DEVELOPER, team: str = "web"
) -> Failure:
    return Failure(wid, wtype, role, team, error)


def test_group_failures_counts_occurrences_and_items() -> None:
    failures = [
        fail("w1", f"Timeout after 30s on {W1}"),
        fail("w2", f"Timeout after 45s on {W2}"),
        fail("w1", f"Timeout after 31s on {W1}"),  # the same item again: an occurrence, not an item
        fail("w3", "Timeout after 5s on work_x", role=Role.QA),
        fail("w4", "disk full", wtype="deploy", role=Role.DEVOPS, team="ops"),
        fail("w5", "disk full"),
        fail("w6", "assertion failed", wtype="test", role=Role.QA),
    ]
    causes = figures.group_failures(failures, top=3)
    top = causes[0]
    assert (top.type, top.cause, top.count, top.items) == ("build", "Timeout after <n>s on <work>", 4, 3)
    assert (top.role, top.team, top.example_ids) == (Role.DEVELOPER, "web", ["w1", "w2", "w3"])
    assert top.example_error == f"Timeout after 30s on {W1}"
    # Three causes of 1 occurrence and 1 item each: ordered by type, then cause.
    assert [(c.type, c.cause) for c in causes[1:]] == [("build", "disk full"), ("deploy", "disk full")]
    assert causes[2].role is Role.DEVOPS
    assert figures.group_failures(failures, top=0) == []


def test_most_common_role_breaks_ties_alphabetically() -> None:
    causes = figures.group_failures([fail("a", "x", role=Role.QA), fail("b", "x", role=Role.DEVOPS)], top=1)
    assert causes[0].role is Role.DEVOPS


def event(kind: EventKind, wid: str, detail: str = "") -> Event:
    return Event(id="1-0", event=kind, work_id=wid, at=E, detail=detail)


def test_failures_in_counts_each_occurrence_once() -> None:
    items = {
        "w1": item("w1", status=Status.DEAD, error="boom 2"),
        "w2": item("w2", status=Status.DEAD, error="old error", type="deploy"),
    }
    events = [
        event(EventKind.FAILED, "w1", "boom 1"),  # retried
        event(EventKind.FAILED, "w1", "boom 2"),  # then dead: the dead event is the same failure
        event(EventKind.DEAD, "w1"),
        event(EventKind.DEAD, "w2"),  # reaped to dead: no failed event, the item's last error
        event(EventKind.FAILED, "w9", "gone"),  # an item no longer in the ledger
    ]
    ended = [
        items["w1"],  # has events: not counted again
        item("w3", status=Status.FAILED, error="e3"),  # its events are gone (capped stream)
        item("w4", status=Status.COMPLETED),
    ]
    found = figures.failures_in(events, items, ended)
    assert [(f.work_id, f.type, f.error) for f in found] == [
        ("w1", "feature", "boom 1"),
        ("w1", "feature", "boom 2"),
        ("w2", "deploy", "old error"),
        ("w3", "feature", "e3"),
    ]
