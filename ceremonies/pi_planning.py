"""PI Planning (SPEC §8): at the start of each PI, choose its objectives from the pending backlog.

Each team's capacity is its mean *workflow* velocity (points of completed items that ended a
workflow, see ``figures.capacities``) over the last ``velocity_history`` iterations that ended
before the PI began, or ``default_team_capacity`` without history. Each team's backlog is taken
greedily in priority-then-WSJF order while points fit. The stored report is what ART Sync,
System Demo and Inspect & Adapt measure against (``load_plan`` and ``objectives_progress``).

Pending items that a handoff created (``parent_id`` set) are the next stages of workflows
already under way, not new work: they are left out of the backlog planned here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel

from ceremonies import figures, history, store
from ceremonies.figures import Capacity, ObjectiveState
from ceremonies.registry import Ceremony
from ceremonies.report import CeremonyReport
from swarm.calendar import Calendar, Period
from swarm.ledger import Ledger
from swarm.models import Priority, Role, Status, WorkItem

PREVIEW_CHARS = 80


class PlannedItem(BaseModel):
    """A backlog item as planning saw it: a PI objective, or a leftover."""

    work_id: str
    type: str
    description: str  # its first 80 characters
    team: str
    role: Role
    priority: Priority
    points: int
    wsjf: float
    business_value: int

    @classmethod
    def of(cls, item: WorkItem) -> PlannedItem:
        return cls(
            work_id=item.id,
            type=item.type,
            description=item.description[:PREVIEW_CHARS],
            team=item.team,
            role=item.role,
            priority=item.priority,
            points=item.points,
            wsjf=round(figures.wsjf(item), 4),
            business_value=figures.business_value(item),
        )


class TeamPlan(BaseModel):
    team: str
    capacity: Capacity  # per iteration
    pi_capacity: float  # per iteration x iterations per PI
    planned_points: int
    planned_business_value: int
    objectives: int
    leftovers: int


class PIPlanningReport(CeremonyReport):
    backlog_size: int  # pending items considered
    skipped_handoffs: int  # pending next stages of workflows under way (not planned)
    teams: list[TeamPlan]
    objectives: list[PlannedItem]
    leftovers: list[PlannedItem]
    planned_business_value: dict[str, int]  # per team
    total_business_value: int


def due(calendar: Calendar, now: datetime) -> Period:
    return calendar.current_pi(now)


def history_iterations(calendar: Calendar, pi: Period, count: int) -> list[Period]:
    """The last ``count`` iterations that ended by the PI's start (fewer near the epoch)."""
    first = (pi.pi - 1) * calendar.iterations_per_pi
    return [calendar.iteration_at_index(i) for i in range(max(0, first - count), first)]


def plan(
    backlog: Sequence[WorkItem], capacity: dict[str, Capacity], pi_iterations: int
) -> tuple[list[TeamPlan], list[WorkItem], list[WorkItem]]:
    """Each team's objectives within its PI capacity: (team plans, objectives, leftovers)."""
    teams: list[TeamPlan] = []
    objectives: list[WorkItem] = []
    leftovers: list[WorkItem] = []
    for team, cap in sorted(capacity.items()):
        pi_capacity = cap.per_iteration * pi_iterations
        chosen, left = figures.choose([i for i in backlog if i.team == team], pi_capacity)
        objectives += chosen
        leftovers += left
        teams.append(
            TeamPlan(
                team=team,
                capacity=cap,
                pi_capacity=pi_capacity,
                planned_points=sum(i.points for i in chosen),
                planned_business_value=sum(figures.business_value(i) for i in chosen),
                objectives=len(chosen),
                leftovers=len(left),
            )
        )
    return teams, objectives, leftovers


def compute(ledger: Ledger, calendar: Calendar, period: Period, now: datetime) -> PIPlanningReport:
    s = ledger.settings
    iterations = history_iterations(calendar, period, s.velocity_history)
    completed = (
        history.entered(ledger, Status.COMPLETED, iterations[0].start, period.start) if iterations else []
    )
    pending = history.backlog(ledger)
    backlog = [i for i in pending if i.parent_id is None]
    teams_seen = {i.team for i in backlog}
    capacity = figures.capacities(completed, iterations, s.default_team_capacity, teams_seen)
    teams, objectives, leftovers = plan(backlog, capacity, calendar.iterations_per_pi)
    value = {t.team: t.planned_business_value for t in teams}
    return PIPlanningReport(
        ceremony=CEREMONY.name,
        period=period,
        generated_at=now,
        backlog_size=len(backlog),
        skipped_handoffs=len(pending) - len(backlog),
        teams=teams,
        objectives=[PlannedItem.of(i) for i in objectives],
        leftovers=[PlannedItem.of(i) for i in leftovers],
        planned_business_value=value,
        total_business_value=sum(value.values()),
    )


CEREMONY = Ceremony(
    name="pi-planning", title="PI Planning", report_type=PIPlanningReport, due=due, compute=compute
)


# -- what later ceremonies measure against the plan --------------------------------------------


def load_plan(ledger: Ledger, pi: int) -> PIPlanningReport | None:
    """The stored PI Planning report of PI ``pi``, if that PI was planned."""
    report = store.load(CEREMONY, ledger, f"PI{pi}")
    return report if isinstance(report, PIPlanningReport) else None


class ObjectiveStatus(BaseModel):
    work_id: str
    type: str
    team: str
    business_value: int
    points: int
    state: ObjectiveState
    stages_completed: int
    current_id: str | None  # the stage the chain has reached
    current_role: Role | None
    done_at: datetime | None


class ObjectivesProgress(BaseModel):
    """The PI's objectives as of one instant; ``plan_found`` False: the PI was never planned."""

    pi: int
    as_of: datetime
    plan_found: bool
    note: str
    objectives: list[ObjectiveStatus]
    counts: dict[ObjectiveState, int]
    planned_business_value: int
    delivered_business_value: int  # of objectives done by ``as_of``


def read_chains(ledger: Ledger, heads: Iterable[str]) -> dict[str, list[WorkItem]]:
    """Each head's handoff chain, one round trip per stage depth (never a scan)."""
    wanted = list(dict.fromkeys(heads))
    known: dict[str, WorkItem] = {}
    frontier = wanted
    for _ in range(figures.MAX_CHAIN):
        frontier = [w for w in frontier if w not in known]
        if not frontier:
            break
        fetched = ledger.fetch(frontier)
        known.update({i.id: i for i in fetched})
        frontier = [i.next_id for i in fetched if i.next_id]
    return figures.chains_from(known, wanted)


def statuses(
    planned: Sequence[PlannedItem], chains: dict[str, list[WorkItem]], as_of: datetime
) -> list[ObjectiveStatus]:
    found = []
    for objective in planned:
        at = figures.objective_state(chains.get(objective.work_id, []), as_of)
        found.append(
            ObjectiveStatus(
                work_id=objective.work_id,
                type=objective.type,
                team=objective.team,
                business_value=objective.business_value,
                points=objective.points,
                state=at.state,
                stages_completed=at.stages_completed,
                current_id=at.current.id if at.current else None,
                current_role=at.current.role if at.current else None,
                done_at=at.done_at,
            )
        )
    return found


def objectives_progress(ledger: Ledger, pi: int, as_of: datetime) -> ObjectivesProgress:
    """How far PI ``pi``'s objectives had come at ``as_of``, from its stored PI Planning report."""
    plan_report = load_plan(ledger, pi)
    if plan_report is None:
        return ObjectivesProgress(
            pi=pi,
            as_of=as_of,
            plan_found=False,
            note=f"PI{pi} has no PI Planning report: no objectives",
            objectives=[],
            counts={s: 0 for s in ObjectiveState},
            planned_business_value=0,
            delivered_business_value=0,
        )
    chains = read_chains(ledger, [o.work_id for o in plan_report.objectives])
    found = statuses(plan_report.objectives, chains, as_of)
    return ObjectivesProgress(
        pi=pi,
        as_of=as_of,
        plan_found=True,
        note="",
        objectives=found,
        counts={s: sum(1 for o in found if o.state is s) for s in ObjectiveState},
        planned_business_value=plan_report.total_business_value,
        delivered_business_value=sum(o.business_value for o in found if o.state is ObjectiveState.DONE),
    )
