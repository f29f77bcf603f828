"""The chaos verdict finds each failure it is there to find: a lost feature, a stage completed or
handed off twice, a stuck item, a counter that disagrees with the events, and a slow recovery,
including one whose kill interrupted the send of a handoff. Pure data: no Redis."""

from __future__ import annotations

from datetime import UTC, datetime

from swarm.metrics import LedgerCounters
from swarm.models import Agent, Event, EventKind, Role, Status, WorkItem

from .faults import Done, Fault, Held
from .verdict import HANDOFF_DETAIL, Judge, Run, Verdict

T0 = 1_800_000_000.0  # epoch seconds of the run's start
STAGES = (Role.PM, Role.ARCHITECT)
_serial = [0]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, tz=UTC)


def item(wid: str, role: Role, status: Status, **fields: object) -> WorkItem:
    return WorkItem.model_validate(
        {"id": wid, "type": "feature", "role": role, "status": status, "workflow": "feature",
         "created_at": at(0), "updated_at": at(0), **fields}
    )  # fmt: skip


def ev(kind: EventKind, wid: str, second: float, *, fence: int | None = None, **fields: object) -> Event:
    _serial[0] += 1
    return Event.model_validate(
        {"id": f"{_serial[0]}-0", "event": kind, "work_id": wid, "fence": fence, "at": at(second), **fields}
    )


def one_feature() -> tuple[list[WorkItem], list[Event]]:
    """A feature through two stages: pm claims at 1 s (fence 1), completes and hands off at 2 s;
    the architect claims at 3 s (fence 2) and completes at 4 s."""
    items = [
        item("work_1", Role.PM, Status.COMPLETED, next_id="work_2"),
        item("work_2", Role.ARCHITECT, Status.COMPLETED, parent_id="work_1"),
    ]
    events = [
        ev(EventKind.SUBMITTED, "work_1", 0, status=Status.PENDING),
        ev(EventKind.CLAIMED, "work_1", 1, fence=1),
        ev(EventKind.COMPLETED, "work_1", 2, fence=1),
        ev(EventKind.SUBMITTED, "work_2", 2, status=Status.PENDING, detail=HANDOFF_DETAIL + "work_1"),
        ev(EventKind.CLAIMED, "work_2", 3, fence=2),
        ev(EventKind.COMPLETED, "work_2", 4, fence=2),
    ]
    return items, events


EXACT_COUNTERS = {
    "claimed:pm:core": "1", "claimed:architect:core": "1",
    "completed:pm:core": "1", "completed:architect:core": "1",
    "duration_bucket:pm:completed:inf": "1", "duration_bucket:architect:completed:inf": "1",
}  # fmt: skip


def judge(
    items: list[WorkItem],
    events: list[Event],
    *,
    counters: dict[str, str] | None = None,
    velocity: dict[str, int] | None = None,
    faults: list[Done] | None = None,
) -> Verdict:
    run = Run(
        items=items,
        events=events,
        counters=LedgerCounters.parse(EXACT_COUNTERS if counters is None else counters),
        velocity={"core": 1} if velocity is None else velocity,
        agents=[Agent(id="agent_1", role=Role.PM, completed=2)],
        submitted=["work_1"],
        stages=STAGES,
        faults=faults or [],
        started_at=T0,
    )
    return Judge(run).verdict(bound_s=10.0)


def test_a_clean_run_has_no_failure() -> None:
    verdict = judge(*one_feature())
    assert (verdict.features, verdict.stage_items, verdict.completions) == (1, 2, 2)
    assert verdict.lost == verdict.duplicated == verdict.stuck == verdict.metrics == []


def test_a_second_completion_and_a_second_handoff_are_duplicates() -> None:
    items, events = one_feature()
    events += [
        ev(EventKind.COMPLETED, "work_2", 5, fence=3),
        ev(EventKind.SUBMITTED, "work_9", 5, detail=HANDOFF_DETAIL + "work_1"),
    ]
    verdict = judge(items, events)
    assert len(verdict.duplicated) == 2
    assert "2 completed events (expected 1): work_2" in verdict.duplicated[1]
    assert "2 handoff events and 1 next-stage items (expected 1): work_1" in verdict.duplicated[0]


def test_a_feature_whose_last_stage_is_pending_is_lost_and_stuck() -> None:
    items, events = one_feature()
    items[1] = item("work_2", Role.ARCHITECT, Status.PENDING, parent_id="work_1", attempts=1)
    events = events[:4]
    verdict = judge(items, events, velocity={})
    assert len(verdict.lost) == 1
    assert (
        "feature work_1: completed pm; then work_2 stage architect is pending (attempts 1/3"
        in verdict.lost[0]
    )
    assert len(verdict.stuck) == 1
    assert verdict.stuck[0].startswith("work_2 stage architect is pending")


def test_counters_that_disagree_with_the_events_are_reported() -> None:
    counters = {**EXACT_COUNTERS, "completed:pm:core": "2"}
    verdict = judge(*one_feature(), counters=counters, velocity={"core": 2})
    assert verdict.metrics == [
        "velocity {'core': 2} != {'core': 1} (the points of the completed final stages)",
        "completed:pm counter 2 != 1 events",
    ]


def test_recovery_is_timed_from_the_kill_to_the_next_claim() -> None:
    items, events = one_feature()
    # pm's first holder (fence 1) is killed at 1.5 s; the reaper returns the item and a second
    # claim (fence 3) comes at 13.5 s: 12 s later.
    events[2:2] = [
        ev(EventKind.LEASE_EXPIRED, "work_1", 6, fence=1, status=Status.PENDING),
        ev(EventKind.CLAIMED, "work_1", 13.5, fence=3),
    ]
    events[4] = ev(EventKind.COMPLETED, "work_1", 14, fence=3)
    kill = Done(Fault.KILL_WORKER, T0 + 1.5, "pm-1", [Held("work_1", 1, 0, 3)], measured=True)
    counters = {**EXACT_COUNTERS, "claimed:pm:core": "2"}
    verdict = judge(items, events, counters=counters, faults=[kill])
    [recovery] = verdict.recoveries
    assert recovery.seconds == 12.0
    assert recovery.trail == "lease_expired +6.0s, claimed +13.5s, completed +14.0s"
    assert verdict.longest_waits[0][0] == 7.5  # pending at 6 s (reaped), claimed at 13.5 s
    assert verdict.metrics == []


def test_a_kill_just_after_a_completion_is_timed_on_its_handoff() -> None:
    items, events = one_feature()
    events[4] = ev(EventKind.CLAIMED, "work_2", 62, fence=2)  # the handoff's message came late
    kill = Done(Fault.KILL_WORKER, T0 + 2.0, "pm-1", [Held("work_1", 1, 0, 3)], measured=True)
    [recovery] = judge(items, events, faults=[kill]).recoveries
    assert recovery.seconds == 60.0
    assert "measured on its handoff work_2" in recovery.note
