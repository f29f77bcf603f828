"""System Demo (SPEC §8): at the end of each iteration, what it completed and how far the PI got.

Velocity here counts the points of *every* item completed in the iteration (per team and per
role): each workflow stage is real work done by its role, and a per-role figure would be empty
for all but the last role otherwise. That differs from the ledger's own velocity, which counts a
workflow once, at its last stage; ``workflow_velocity_by_team`` gives that figure (points of
completed items with no ``next_id``), the one PI Planning's capacity is measured in.

Objectives are those of the iteration's PI, each followed along its handoff chain as of the
iteration's end, so the report for an iteration says the same thing whenever it is computed.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from ceremonies import figures, history
from ceremonies.pi_planning import ObjectivesProgress, objectives_progress
from ceremonies.registry import Ceremony
from ceremonies.report import CeremonyReport
from swarm.calendar import Calendar, Period
from swarm.ledger import Ledger
from swarm.models import Role, Status, WorkItem


class CompletedItem(BaseModel):
    work_id: str
    type: str
    role: Role
    team: str
    points: int
    workflow_end: bool  # no next stage: the ledger counted its velocity
    completed_at: datetime


class SystemDemoReport(CeremonyReport):
    completed: list[CompletedItem]  # in completion order
    velocity_by_team: dict[str, int]  # every completed item's points
    velocity_by_role: dict[str, int]
    workflow_velocity_by_team: dict[str, int]  # workflow ends only
    objectives: ObjectivesProgress


def due(calendar: Calendar, now: datetime) -> Period | None:
    return calendar.previous_iteration(now)


def demo_figures(completed: list[WorkItem]) -> dict[str, dict[str, int]]:
    """The three velocities of the items completed in one iteration."""
    return {
        "velocity_by_team": figures.points_by(completed, lambda i: i.team),
        "velocity_by_role": figures.points_by(completed, lambda i: i.role.value),
        "workflow_velocity_by_team": figures.points_by(figures.workflow_ends(completed), lambda i: i.team),
    }


def compute(ledger: Ledger, calendar: Calendar, period: Period, now: datetime) -> SystemDemoReport:
    completed = figures.within(history.entered(ledger, Status.COMPLETED, period.start, period.end), period)
    completed.sort(key=lambda i: (i.completed_at, i.id))
    velocities = demo_figures(completed)
    return SystemDemoReport(
        ceremony=CEREMONY.name,
        period=period,
        generated_at=now,
        completed=[
            CompletedItem(
                work_id=i.id,
                type=i.type,
                role=i.role,
                team=i.team,
                points=i.points,
                workflow_end=i.next_id is None,
                completed_at=i.completed_at,
            )
            for i in completed
            if i.completed_at is not None
        ],
        velocity_by_team=velocities["velocity_by_team"],
        velocity_by_role=velocities["velocity_by_role"],
        workflow_velocity_by_team=velocities["workflow_velocity_by_team"],
        objectives=objectives_progress(ledger, period.pi, period.end),
    )


CEREMONY = Ceremony(
    name="system-demo", title="System Demo", report_type=SystemDemoReport, due=due, compute=compute
)
