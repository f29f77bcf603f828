"""Deployment and rollback: Celery remote control for pools and rate limits, the ledger for the
rest, and a before-snapshot kept with every deployed action.

Pool changes are undone *relatively* (``pool_shrink`` what was grown on each node, and the
reverse), so that an undo composes with any other change made to the pool meanwhile; rate
limits, leases and priorities are settings, restored to their snapshot value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from celery import Celery
from pydantic import BaseModel, ConfigDict, Field

from ceremonies.improve import pool
from ceremonies.improve.discovery import LEASE_FIELD, Discovery
from ceremonies.improve.vocabulary import (
    Action,
    FileWorkItem,
    Metric,
    Reprioritise,
    ScaleRole,
    SetLease,
    SetRateLimit,
    Source,
    action_role,
)
from swarm.errors import SwarmError
from swarm.ledger import Ledger
from swarm.models import Priority, Role, Status

log = structlog.get_logger("swarm.improve")


class Judgement(BaseModel):
    """How a deployed action did, measured by a later cycle."""

    model_config = ConfigDict(frozen=True)

    cycle_id: str  # the cycle that judged it
    judged_at: datetime
    observed_s: float  # how long it was observed
    before_value: float | None
    after_value: float | None
    outcome: str  # a learning.Outcome value
    rolled_back: bool = False
    rollback: str = ""  # what the rollback did, or why it failed


class Deployment(BaseModel):
    """One applied action, its before-snapshot, and (later) its judgement."""

    model_config = ConfigDict(frozen=True)

    action: Action
    source: Source
    role: Role | None  # whose metric judges it
    metric: Metric
    before_value: float | None  # the target metric when it was deployed
    deployed_at: datetime
    ok: bool
    error: str = ""
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)
    judgement: Judgement | None = None


def apply(
    action: Action, source: Source, discovery: Discovery, ledger: Ledger, app: Celery, *, at: datetime
) -> Deployment:
    """Applies one validated action; a failure is recorded in the deployment, not raised."""
    role = action_role(action)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    error = ""
    try:
        if isinstance(action, ScaleRole):
            error = _scale(action, discovery, app, before, after)
        elif isinstance(action, SetRateLimit):
            error = _rate(action, discovery, app, before, after)
        elif isinstance(action, SetLease):
            _lease(action, ledger, before, after)
        elif isinstance(action, Reprioritise):
            item = ledger.get(action.work_id)
            role = item.role
            before.update(priority=item.priority.value, role=role.value)
            after["priority"] = ledger.reprioritise(action.work_id, action.priority).priority.value
        else:
            after["work_id"] = _file(action, ledger).id
    except SwarmError as exc:
        error = f"{type(exc).__name__}: {exc}"
    value = discovery.roles[role].value(action.metric.value) if role is not None else None
    if value is not None and action.metric.cumulative:
        value /= max(discovery.window_s, 1e-9)
    log.info("deployed", action=action.describe(), ok=not error, error=error or None)
    return Deployment(
        action=action, source=source, role=role, metric=action.metric, before_value=value,
        deployed_at=at, ok=not error, error=error, before=before, after=after,
    )  # fmt: skip


def _scale(
    action: ScaleRole, discovery: Discovery, app: Celery, before: dict[str, Any], after: dict[str, Any]
) -> str:
    nodes = [n.node for n in discovery.nodes_of(action.role)]
    before["pool"] = pool.pool_sizes(app, nodes)
    problems = pool.resize(app, nodes, action.delta)
    after["applied"] = {n: action.delta for n in nodes if not any(p.startswith(n) for p in problems)}
    after["pool"] = pool.pool_sizes(app, nodes)
    return "; ".join(problems)


def _rate(
    action: SetRateLimit, discovery: Discovery, app: Celery, before: dict[str, Any], after: dict[str, Any]
) -> str:
    nodes = discovery.nodes_of(action.role)
    before["rate_limit"] = {n.node: n.rate_limit for n in nodes}
    problems = pool.set_rate_limit(app, [n.node for n in nodes], action.rate)
    after["rate_limit"] = {n.node: action.rate for n in nodes}
    return "; ".join(problems)


def _lease(action: SetLease, ledger: Ledger, before: dict[str, Any], after: dict[str, Any]) -> None:
    field = LEASE_FIELD + action.role.value
    old: str | None = ledger.read(ledger.client.hget, ledger.keys.tuning, field)
    before["lease_seconds"] = None if old is None else float(old)
    ledger.read(ledger.client.hset, ledger.keys.tuning, field, repr(float(action.seconds)))
    after["lease_seconds"] = action.seconds


def _file(action: FileWorkItem, ledger: Ledger) -> Any:
    return ledger.submit(
        action.type,
        action.description,
        role=action.role,
        team=action.team,
        priority=action.priority,
        points=action.points,
        payload={"filed_by": "improve", "evidence": action.evidence, "reason": action.reason},
    )


def rollback(deployment: Deployment, ledger: Ledger, app: Celery) -> tuple[bool, str]:
    """Undoes a deployment from its before-snapshot: (succeeded, what was done)."""
    action = deployment.action
    try:
        if isinstance(action, ScaleRole):
            return _undo_scale(deployment, app)
        if isinstance(action, SetRateLimit):
            return _undo_rate(deployment, app)
        if isinstance(action, SetLease):
            return True, _undo_lease(deployment, ledger)
        if isinstance(action, Reprioritise):
            return _undo_priority(deployment, ledger)
    except SwarmError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, "a filed work item is not withdrawn"


def _undo_scale(deployment: Deployment, app: Celery) -> tuple[bool, str]:
    """Shrinks back what was grown on each node (or grows back what was shrunk)."""
    applied: dict[str, int] = deployment.after.get("applied", {})
    sizes = pool.pool_sizes(app, sorted(applied))
    problems, done = [], []
    for node, delta in sorted(applied.items()):
        if node not in sizes:
            problems.append(f"{node} did not answer")
            continue
        undo = max(-delta, 1 - sizes[node])  # never below one slot
        if undo:
            problems += pool.resize(app, [node], undo)
        command = "pool_grow" if undo > 0 else "pool_shrink"
        done.append(f"{node}: {command} {abs(undo)} ({sizes[node]} -> {sizes[node] + undo})")
    return not problems, "; ".join(problems or done)


def _undo_rate(deployment: Deployment, app: Celery) -> tuple[bool, str]:
    old: dict[str, str | None] = deployment.before.get("rate_limit", {})
    problems = [p for node, rate in sorted(old.items()) for p in pool.set_rate_limit(app, [node], rate)]
    return not problems, "; ".join(problems) or f"rate limit restored: {old}"


def _undo_lease(deployment: Deployment, ledger: Ledger) -> str:
    assert isinstance(deployment.action, SetLease)
    field = LEASE_FIELD + deployment.action.role.value
    old = deployment.before.get("lease_seconds")
    if old is None:
        ledger.read(ledger.client.hdel, ledger.keys.tuning, field)
        return "lease back to the default"
    ledger.read(ledger.client.hset, ledger.keys.tuning, field, repr(float(old)))
    return f"lease back to {old:g}s"


def _undo_priority(deployment: Deployment, ledger: Ledger) -> tuple[bool, str]:
    assert isinstance(deployment.action, Reprioritise)
    wid = deployment.action.work_id
    item = ledger.get(wid)
    if item.status is not Status.PENDING:
        return True, f"{wid} is {item.status.value}: nothing to undo"
    old = Priority(deployment.before["priority"])
    ledger.reprioritise(wid, old)
    return True, f"{wid} back to {old.value}"
