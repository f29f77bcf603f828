"""Inspect & Adapt (SPEC §8): at the end of each PI, how it went and what to fix first.

- *Predictability*: business value of the PI's objectives done by its end over the value planned
  (per team and overall; None when nothing was planned, or the PI was never planned).
- *Success rate*: completed / (completed + failed + dead) of the items that ended in the PI.
- *Throughput*: items completed in the PI, and per iteration (every stage counts).
- *Cycle time* (claimed to completed; the last claim, for retried items) and *lead time*
  (created to completed; a handoff's stage is created at the handoff) per role: nearest-rank
  p50 and p90 in seconds, see ``figures.percentile``.
- *Top failure causes*: failures grouped by item type and normalised error
  (``figures.failures_in`` and ``figures.group_failures``); each of the top
  ``top_failure_causes`` is filed as a high-priority ``improvement`` item for the role that
  fails that way most, with the cause, counts and example ids in its payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel

from ceremonies import figures, history
from ceremonies.figures import FailureCause, ObjectiveState
from ceremonies.pi_planning import ObjectivesProgress, objectives_progress
from ceremonies.registry import Ceremony
from ceremonies.report import CeremonyReport, Filing
from swarm.calendar import Calendar, Period
from swarm.ids import new_work_id
from swarm.ledger import Ledger
from swarm.models import EventKind, Priority, Role, Status, WorkItem

IMPROVEMENT_TYPE = "improvement"


class TeamPredictability(BaseModel):
    team: str
    planned_business_value: int
    actual_business_value: int
    predictability: float | None


class RoleTimes(BaseModel):
    role: Role
    completed: int
    cycle_p50: float | None  # seconds
    cycle_p90: float | None
    lead_p50: float | None
    lead_p90: float | None


class InspectAdaptReport(CeremonyReport):
    plan_found: bool
    note: str
    predictability: list[TeamPredictability]
    overall_predictability: float | None
    planned_business_value: int
    actual_business_value: int
    completed: int
    failed: int
    dead: int
    success_rate: float | None
    throughput: int
    throughput_by_iteration: dict[str, int]
    times_by_role: list[RoleTimes]
    failure_causes: list[FailureCause]


def due(calendar: Calendar, now: datetime) -> Period | None:
    return calendar.previous_pi(now)


def team_predictability(progress: ObjectivesProgress) -> list[TeamPredictability]:
    """Planned and delivered business value of each team's objectives."""
    teams = sorted({o.team for o in progress.objectives})
    rows = []
    for team in teams:
        mine = [o for o in progress.objectives if o.team == team]
        planned = sum(o.business_value for o in mine)
        actual = sum(o.business_value for o in mine if o.state is ObjectiveState.DONE)
        rows.append(
            TeamPredictability(
                team=team,
                planned_business_value=planned,
                actual_business_value=actual,
                predictability=figures.predictability(planned, actual),
            )
        )
    return rows


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def role_times(completed: Iterable[WorkItem]) -> list[RoleTimes]:
    """Cycle and lead time percentiles of each role's completed items."""
    by_role: dict[Role, list[WorkItem]] = {}
    for item in completed:
        by_role.setdefault(item.role, []).append(item)
    rows = []
    for role in sorted(by_role, key=list(Role).index):
        items = by_role[role]
        cycle = [s for i in items if (s := _seconds(i.claimed_at, i.completed_at)) is not None]
        lead = [s for i in items if (s := _seconds(i.created_at, i.completed_at)) is not None]
        rows.append(
            RoleTimes(
                role=role,
                completed=len(items),
                cycle_p50=figures.percentile(cycle, 50),
                cycle_p90=figures.percentile(cycle, 90),
                lead_p50=figures.percentile(lead, 50),
                lead_p90=figures.percentile(lead, 90),
            )
        )
    return rows


def file_cause(cause: FailureCause, pi: Period) -> Filing:
    """The improvement item for one failure cause, under an id chosen now (filed once)."""
    return Filing(
        work_id=new_work_id(),
        type=IMPROVEMENT_TYPE,
        description=(
            f"Reduce failures of {cause.type} items: {cause.count} failure(s) of {cause.items} item(s) "
            f"in {pi.key} with: {cause.cause}"
        ),
        role=cause.role,
        team=cause.team,
        priority=Priority.HIGH,
        payload={
            "cause": cause.cause,
            "error": cause.example_error,
            "count": cause.count,
            "items": cause.items,
            "item_type": cause.type,
            "example_ids": cause.example_ids,
            "pi": pi.key,
            "ceremony": CEREMONY.name,
        },
    )


def compute(ledger: Ledger, calendar: Calendar, period: Period, now: datetime) -> InspectAdaptReport:
    ended = {
        s: figures.within(history.entered(ledger, s, period.start, period.end), period)
        for s in (Status.COMPLETED, Status.FAILED, Status.DEAD)
    }
    completed = ended[Status.COMPLETED]
    finished = len(completed) + len(ended[Status.FAILED]) + len(ended[Status.DEAD])
    events = history.events(ledger, period.start, period.end, [EventKind.FAILED, EventKind.DEAD])
    failing = {i.id: i for i in ledger.fetch(list(dict.fromkeys(e.work_id for e in events if e.work_id)))}
    failures = figures.failures_in(events, failing, [*ended[Status.FAILED], *ended[Status.DEAD]])
    causes = figures.group_failures(failures, ledger.settings.top_failure_causes)
    progress = objectives_progress(ledger, period.pi, period.end)
    planned = progress.planned_business_value
    return InspectAdaptReport(
        ceremony=CEREMONY.name,
        period=period,
        generated_at=now,
        filed=[file_cause(c, period) for c in causes],
        plan_found=progress.plan_found,
        note=progress.note,
        predictability=team_predictability(progress),
        overall_predictability=figures.predictability(planned, progress.delivered_business_value),
        planned_business_value=planned,
        actual_business_value=progress.delivered_business_value,
        completed=len(completed),
        failed=len(ended[Status.FAILED]),
        dead=len(ended[Status.DEAD]),
        success_rate=len(completed) / finished if finished else None,
        throughput=len(completed),
        throughput_by_iteration={
            it.key: len(figures.within(completed, it)) for it in calendar.iterations_of(period.pi)
        },
        times_by_role=role_times(completed),
        failure_causes=causes,
    )


CEREMONY = Ceremony(
    name="inspect-adapt",
    title="Inspect & Adapt",
    report_type=InspectAdaptReport,
    due=due,
    compute=compute,
)
