"""Deployment and rollback: Celery remote control for pools and rate limits, the ledger for the
rest, and a before-snapshot kept with every deployed action.

A deployment is made in two steps so that a crash between them is never lost: ``plan`` takes
the before-snapshot (and each node's pid) and the cycle writes it ahead as *pending*; then
``execute`` applies it and the cycle writes it again, *applied* or *failed*. A pending
deployment found by a later cycle is reconciled (``reconcile``) from its snapshot.

Pool changes are undone *relatively* (``pool_shrink`` what was grown on each node, and the
reverse), so that an undo composes with any other change made to the pool meanwhile, never past
``improve_min_concurrency``..``improve_max_concurrency``; a node that restarted since (another
pid) is left alone: its pool is no longer the one that was changed. Rate limits, leases and
priorities are settings, restored to their snapshot value.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import structlog
from celery import Celery
from pydantic import BaseModel, ConfigDict, Field

from ceremonies.improve import pool
from ceremonies.improve.discovery import Discovery
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
from ceremonies.report import Filing
from ceremonies.store import file_item
from swarm.errors import NotFound, SwarmError
from swarm.ids import new_work_id
from swarm.ledger import Ledger
from swarm.models import Priority, Role, Status
from swarm.settings import Settings
from workers.lease import lease_field

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


class DeployStatus(StrEnum):
    PENDING = "pending"  # written ahead of being applied
    APPLIED = "applied"
    FAILED = "failed"
    ABANDONED = "abandoned"  # its cycle died while applying it; reconciled by a later cycle


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
    status: DeployStatus = DeployStatus.APPLIED
    rollback_by: str = ""  # the cycle that started rolling it back, written before it acts
    judgement: Judgement | None = None


def plan(
    action: Action, source: Source, discovery: Discovery, ledger: Ledger, app: Celery, *, at: datetime
) -> Deployment:
    """The deployment about to be made, *pending*, with its before-snapshot (nothing changes)."""
    role = action_role(action)
    before: dict[str, Any] = {}
    error = ""
    try:
        if isinstance(action, ScaleRole):
            states = pool.pool_states(app, [n.node for n in discovery.nodes_of(action.role)])
            before["pool"] = {node: state.size for node, state in states.items()}
            before["pids"] = {node: state.pid for node, state in states.items()}
        elif isinstance(action, SetRateLimit):
            before["rate_limit"] = {n.node: n.rate_limit for n in discovery.nodes_of(action.role)}
        elif isinstance(action, SetLease):
            old: str | None = ledger.read(
                ledger.client.hget, ledger.keys.tuning, lease_field(action.role.value)
            )
            before["lease_seconds"] = None if old is None else float(old)
        elif isinstance(action, Reprioritise):
            item = ledger.get(action.work_id)
            role = item.role
            before.update(priority=item.priority.value, role=role.value)
        else:
            before["work_id"] = new_work_id()  # filed under this id: a retry cannot file it twice
    except SwarmError as exc:
        error = f"{type(exc).__name__}: {exc}"
    value = discovery.roles[role].value(action.metric.value) if role is not None else None
    if value is not None and action.metric.cumulative:
        value /= max(discovery.window_s, 1e-9)
    status = DeployStatus.FAILED if error else DeployStatus.PENDING
    return Deployment(
        action=action, source=source, role=role, metric=action.metric, before_value=value,
        deployed_at=at, ok=False, error=error, before=before, status=status,
    )  # fmt: skip


def execute(deployment: Deployment, discovery: Discovery, ledger: Ledger, app: Celery) -> Deployment:
    """Applies a pending deployment; a failure is recorded in it, not raised."""
    if deployment.status is not DeployStatus.PENDING:
        return deployment
    action = deployment.action
    after: dict[str, Any] = {}
    error = ""
    try:
        if isinstance(action, ScaleRole):
            error = _scale(action, discovery, app, after)
        elif isinstance(action, SetRateLimit):
            error = _rate(action, discovery, app, after)
        elif isinstance(action, SetLease):
            field = lease_field(action.role.value)
            ledger.read(ledger.client.hset, ledger.keys.tuning, field, repr(float(action.seconds)))
            after["lease_seconds"] = action.seconds
        elif isinstance(action, Reprioritise):
            after["priority"] = ledger.reprioritise(action.work_id, action.priority).priority.value
        else:
            after["work_id"] = _file(action, ledger, deployment.before["work_id"])
    except SwarmError as exc:
        error = f"{type(exc).__name__}: {exc}"
    log.info("deployed", action=action.describe(), ok=not error, error=error or None)
    status = DeployStatus.FAILED if error else DeployStatus.APPLIED
    return deployment.model_copy(update={"after": after, "ok": not error, "error": error, "status": status})


def apply(
    action: Action, source: Source, discovery: Discovery, ledger: Ledger, app: Celery, *, at: datetime
) -> Deployment:
    """``plan`` then ``execute``, with nothing written between (the cycle writes ahead instead)."""
    return execute(plan(action, source, discovery, ledger, app, at=at), discovery, ledger, app)


def _scale(action: ScaleRole, discovery: Discovery, app: Celery, after: dict[str, Any]) -> str:
    nodes = [n.node for n in discovery.nodes_of(action.role)]
    problems = pool.resize(app, nodes, action.delta)
    after["applied"] = {n: action.delta for n in nodes if n not in problems}
    after["pool"] = pool.pool_sizes(app, nodes)
    return "; ".join(problems.values())


def _rate(action: SetRateLimit, discovery: Discovery, app: Celery, after: dict[str, Any]) -> str:
    nodes = [n.node for n in discovery.nodes_of(action.role)]
    problems = pool.set_rate_limit(app, nodes, action.rate)
    after["rate_limit"] = {n: action.rate for n in nodes if n not in problems}
    return "; ".join(problems.values())


def _file(action: FileWorkItem, ledger: Ledger, work_id: str) -> str:
    """Files the item into the backlog under its planned id, as ceremonies file theirs: undispatched
    (it waits for planning, never for an executor), and once, even if a crashed cycle filed it."""
    filing = Filing(
        work_id=work_id,
        type=action.type,
        description=action.description,
        role=action.role,
        team=action.team,
        priority=action.priority,
        points=action.points,
        payload={"filed_by": "improve", "evidence": action.evidence, "reason": action.reason},
    )
    file_item(ledger, filing)
    return work_id


def rollback(deployment: Deployment, ledger: Ledger, app: Celery) -> tuple[bool, str]:
    """Undoes a deployment from its before-snapshot: (succeeded, what was done)."""
    action = deployment.action
    try:
        if isinstance(action, ScaleRole):
            return _undo_scale(deployment, app, ledger.settings)
        if isinstance(action, SetRateLimit):
            return _undo_rate(deployment, app)
        if isinstance(action, SetLease):
            return True, _undo_lease(deployment, ledger)
        if isinstance(action, Reprioritise):
            return _undo_priority(deployment, ledger)
    except SwarmError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, "a filed work item is not withdrawn"


def undo_step(delta: int, size: int, settings: Settings) -> int:
    """The resize that undoes ``delta`` on a pool of ``size`` now: the opposite way, at most
    ``abs(delta)``, and never past ``improve_min_concurrency``..``improve_max_concurrency``."""
    least, most = settings.improve_min_concurrency, settings.improve_max_concurrency
    if delta > 0:
        return min(0, max(-delta, least - size))
    return max(0, min(-delta, most - size))


def _undo_scale(deployment: Deployment, app: Celery, settings: Settings) -> tuple[bool, str]:
    """Shrinks back what was grown on each node (or grows back what was shrunk)."""
    applied: dict[str, int] = deployment.after.get("applied", {})
    pids: dict[str, int | None] = deployment.before.get("pids", {})
    states = pool.pool_states(app, sorted(applied))
    problems: list[str] = []
    done: list[str] = []
    for node, delta in sorted(applied.items()):
        state = states.get(node)
        if state is None:
            problems.append(f"{node} did not answer")
            continue
        was = pids.get(node)
        if was is not None and state.pid is not None and state.pid != was:
            done.append(f"{node}: skipped, it restarted (pid {was} -> {state.pid}); its pool is a new one")
            continue
        undo = undo_step(delta, state.size, settings)
        if not undo:
            done.append(f"{node}: nothing to undo within the guardrails ({state.size} slot(s))")
            continue
        problems += pool.resize(app, [node], undo).values()
        command = "pool_grow" if undo > 0 else "pool_shrink"
        done.append(f"{node}: {command} {abs(undo)} ({state.size} -> {state.size + undo})")
    return not problems, "; ".join(problems or done)


def reconcile(deployment: Deployment, ledger: Ledger, app: Celery) -> tuple[Deployment, bool, str]:
    """A *pending* deployment whose cycle died: what of it was applied, undone from its snapshot.

    Returns the deployment as found (``after`` filled in), whether the undo succeeded, and what
    was done. Settings are restored to their snapshot whether or not they were changed; a pool
    counts as changed only on a node with the same pid whose size is its snapshot plus the delta.
    A filed item (found under its planned id) is kept.
    """
    action = deployment.action
    found = deployment
    if isinstance(action, ScaleRole):
        before: dict[str, int] = deployment.before.get("pool", {})
        pids: dict[str, int | None] = deployment.before.get("pids", {})
        states = pool.pool_states(app, sorted(before))
        applied = {
            node: action.delta
            for node, size in before.items()
            if node in states
            and states[node].pid == pids.get(node)
            and states[node].size == size + action.delta
        }
        found = deployment.model_copy(update={"after": {"applied": applied}})
        if not applied:
            return found, True, "no pool shows the change: nothing to undo"
    elif isinstance(action, FileWorkItem):
        wid = deployment.before.get("work_id", "")
        try:
            ledger.get(wid)
        except NotFound:
            return found, True, "the item was not filed"
        return deployment.model_copy(update={"after": {"work_id": wid}}), True, f"filed as {wid} (kept)"
    ok, detail = rollback(found, ledger, app)
    return found, ok, detail


def _undo_rate(deployment: Deployment, app: Celery) -> tuple[bool, str]:
    old: dict[str, str | None] = deployment.before.get("rate_limit", {})
    problems = [
        p for node, rate in sorted(old.items()) for p in pool.set_rate_limit(app, [node], rate).values()
    ]
    return not problems, "; ".join(problems) or f"rate limit restored: {old}"


def _undo_lease(deployment: Deployment, ledger: Ledger) -> str:
    assert isinstance(deployment.action, SetLease)
    field = lease_field(deployment.action.role.value)
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
