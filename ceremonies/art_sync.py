"""ART Sync (SPEC §8): each team's work in flight and what stands in its way, in each sync slot.

Per team, from the registries (never a scan): items held now (claimed or in progress); those
*blocked*, i.e. held with no update (claim, progress) for ``blocked_after_seconds``; expired
leases, both held items whose lease ran out and the reaper's ``lease_expired`` events of this
iteration so far; *impediments*, held or pending items on attempt ``impediment_attempts`` or
later, with their last error; and handoffs waiting, pending next stages of a workflow with the
time since the handoff. Then the PI's objectives as of now, from its PI Planning report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel

from ceremonies import history
from ceremonies.pi_planning import ObjectivesProgress, objectives_progress
from ceremonies.registry import Ceremony
from ceremonies.report import CeremonyReport
from swarm.calendar import Calendar, Period
from swarm.ledger import Ledger
from swarm.models import Event, EventKind, Role, Status, WorkItem


class HeldItem(BaseModel):
    work_id: str
    type: str
    role: Role
    status: Status
    agent_id: str | None
    progress: int
    idle_seconds: float  # since its last update (claim or progress)


class ExpiredLease(BaseModel):
    work_id: str
    type: str
    role: Role
    agent_id: str | None
    source: str  # "held": still held past its lease; "reaped": a lease_expired event
    at: datetime  # when the lease ran out, or when it was reaped


class Impediment(BaseModel):
    work_id: str
    type: str
    role: Role
    status: Status
    attempts: int
    error: str | None


class WaitingHandoff(BaseModel):
    work_id: str
    type: str
    role: Role
    stage: str | None
    parent_id: str
    waiting_seconds: float


class TeamSync(BaseModel):
    team: str
    in_progress: list[HeldItem]
    blocked: list[HeldItem]
    expired_leases: list[ExpiredLease]
    impediments: list[Impediment]
    handoffs_waiting: list[WaitingHandoff]


class ARTSyncReport(CeremonyReport):
    iteration: str
    blocked_after_seconds: float
    impediment_attempts: int
    teams: list[TeamSync]
    objectives: ObjectivesProgress


def due(calendar: Calendar, now: datetime) -> Period:
    return calendar.current_sync(now)


def _seconds(since: datetime, now: datetime) -> float:
    return round(max(0.0, (now - since).total_seconds()), 3)


def held_row(item: WorkItem, now: datetime) -> HeldItem:
    return HeldItem(
        work_id=item.id,
        type=item.type,
        role=item.role,
        status=item.status,
        agent_id=item.agent_id,
        progress=item.progress,
        idle_seconds=_seconds(item.updated_at, now),
    )


def expired_leases(
    held: Iterable[WorkItem], reaped: Iterable[Event], items: dict[str, WorkItem], now: datetime
) -> list[ExpiredLease]:
    """Held items past their lease, then the iteration's ``lease_expired`` events (oldest first)."""
    found = [
        ExpiredLease(
            work_id=i.id, type=i.type, role=i.role, agent_id=i.agent_id, source="held", at=i.lease_expires_at
        )
        for i in held
        if i.lease_expires_at is not None and i.lease_expires_at < now
    ]
    for event in reaped:
        item = items.get(event.work_id or "")
        if item is not None:
            found.append(
                ExpiredLease(
                    work_id=item.id,
                    type=item.type,
                    role=item.role,
                    agent_id=event.agent_id,
                    source="reaped",
                    at=event.at,
                )
            )
    return found


def team_sync(
    team: str,
    held: Sequence[WorkItem],
    pending: Sequence[WorkItem],
    leases: Sequence[ExpiredLease],
    *,
    now: datetime,
    blocked_after: float,
    impediment_attempts: int,
) -> TeamSync:
    """One team's rows; ``held``, ``pending`` and ``leases`` are that team's already."""
    rows = [held_row(i, now) for i in held]
    return TeamSync(
        team=team,
        in_progress=rows,
        blocked=[r for r in rows if r.idle_seconds > blocked_after],
        expired_leases=list(leases),
        impediments=[
            Impediment(
                work_id=i.id, type=i.type, role=i.role, status=i.status, attempts=i.attempts, error=i.error
            )
            for i in [*held, *pending]
            if i.attempts >= impediment_attempts
        ],
        handoffs_waiting=[
            WaitingHandoff(
                work_id=i.id,
                type=i.type,
                role=i.role,
                stage=i.stage,
                parent_id=i.parent_id,
                waiting_seconds=_seconds(i.created_at, now),
            )
            for i in pending
            if i.parent_id is not None
        ],
    )


def compute(ledger: Ledger, calendar: Calendar, period: Period, now: datetime) -> ARTSyncReport:
    s = calendar.applied_to(ledger.settings)  # blocked after: the agreed iteration / 10 by default
    assert period.iteration is not None, "an ART Sync period is a slot of an iteration"
    iteration = calendar.iteration(period.pi, period.iteration)
    held = history.in_status(ledger, Status.CLAIMED, Status.IN_PROGRESS)
    pending = history.in_status(ledger, Status.PENDING)
    reaped = history.events(ledger, iteration.start, iteration.end, [EventKind.LEASE_EXPIRED])
    reaped_items = {
        i.id: i for i in ledger.fetch(list(dict.fromkeys(e.work_id for e in reaped if e.work_id)))
    }
    leases = expired_leases(held, reaped, reaped_items, now)
    team_of = {**{i.id: i.team for i in reaped_items.values()}, **{i.id: i.team for i in held}}
    teams = sorted({i.team for i in held} | {i.team for i in pending} | set(team_of.values()))
    return ARTSyncReport(
        ceremony=CEREMONY.name,
        period=period,
        generated_at=now,
        iteration=iteration.key,
        blocked_after_seconds=s.blocked_after_seconds,
        impediment_attempts=s.impediment_attempts,
        teams=[
            team_sync(
                team,
                [i for i in held if i.team == team],
                [i for i in pending if i.team == team],
                [row for row in leases if team_of.get(row.work_id) == team],
                now=now,
                blocked_after=s.blocked_after_seconds,
                impediment_attempts=s.impediment_attempts,
            )
            for team in teams
        ],
        objectives=objectives_progress(ledger, period.pi, now),
    )


CEREMONY = Ceremony(name="art-sync", title="ART Sync", report_type=ARTSyncReport, due=due, compute=compute)
