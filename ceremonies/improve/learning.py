"""Monitoring and learning: each deployed action is judged by a later cycle on its own metric.

The target metric is measured over the time since the action was deployed (``discovery.measure``
from ``deployed_at`` to now) and compared with its value when it was deployed. A change beyond
``TOLERANCE`` in the better direction keeps it as *improved*; one in the worse direction rolls
it back from its before-snapshot; anything smaller is *no change* and kept. An action observed
for less than ``improve_min_observation`` (default a quarter of the window) waits for a later
cycle, as does one whose metric could not be measured yet, until a whole window has passed (then
it is *inconclusive* and kept). Filed work items are not judged: their effect is the work they
ask for.

Every step is written as it happens, so a cycle that dies part way leaves a record the next one
can finish: a rollback is marked (``rollback_by``) before it acts, and a marked deployment is
never rolled back twice; each judgement is written at once. A cycle left *running* by a dead
process is closed as *abandoned* (``close_abandoned``): its applied deployments are judged as
any other, and one it wrote ahead but never confirmed is reconciled from its snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from enum import StrEnum

import structlog
from celery import Celery

from ceremonies.improve import records
from ceremonies.improve.deploy import Deployment, DeployStatus, Judgement, reconcile, rollback
from ceremonies.improve.discovery import measure
from ceremonies.improve.guardrails import targets
from ceremonies.improve.records import Cycle, CycleStatus, Learned
from ceremonies.improve.vocabulary import Direction, FileWorkItem, Metric, ScaleRole, SetRateLimit
from swarm.ledger import Ledger

TOLERANCE = 0.10  # a relative change smaller than this is no change
LOOK_BACK_CYCLES = 50  # past cycles searched for deployments still to judge

log = structlog.get_logger("swarm.improve")


class Outcome(StrEnum):
    IMPROVED = "improved"
    NO_CHANGE = "no_change"
    WORSE = "worse"  # rolled back
    INCONCLUSIVE = "inconclusive"  # not measurable over a whole window; kept
    NOT_JUDGED = "not_judged"  # a filed work item
    ABANDONED = "abandoned"  # its cycle died while applying it: undone from its snapshot


def decide(
    metric: Metric, before: float | None, after: float | None, tolerance: float = TOLERANCE
) -> Outcome:
    """Improved, worse, or no change: the change in the metric's better direction, relative to
    the larger of the two values."""
    if before is None or after is None:
        return Outcome.INCONCLUSIVE
    gain = after - before if metric.better is Direction.HIGHER else before - after
    scale = max(abs(before), abs(after))
    if scale == 0 or abs(gain) <= tolerance * scale:
        return Outcome.NO_CHANGE
    return Outcome.IMPROVED if gain > 0 else Outcome.WORSE


def after_value(deployment: Deployment, ledger: Ledger, now: datetime) -> float | None:
    """The deployment's target metric over the time since it was deployed."""
    if deployment.role is None:
        return None
    metrics = measure(ledger, deployment.deployed_at, now)[deployment.role]
    value = metrics.value(deployment.metric.value)
    if value is not None and deployment.metric.cumulative:
        value /= max((now - deployment.deployed_at).total_seconds(), 1e-9)
    return value


def _pending(ledger: Ledger) -> Iterator[tuple[Cycle, int, Deployment]]:
    """Deployments of recent cycles that are still to be judged, oldest cycle first."""
    for cycle in reversed(records.past_cycles(ledger, LOOK_BACK_CYCLES)):
        if cycle.dry_run:
            continue
        for index, deployment in enumerate(cycle.deployments):
            if deployment.ok and deployment.judgement is None:
                yield cycle, index, deployment


def deployed_targets(deployment: Deployment) -> frozenset[str]:
    """What a deployment changed: the nodes it reached, as the guardrails name them."""
    action = deployment.action
    nodes: set[str] = set()
    if isinstance(action, ScaleRole):
        nodes = set(deployment.before.get("pool", {})) | set(deployment.after.get("applied", {}))
    elif isinstance(action, SetRateLimit):
        nodes = set(deployment.before.get("rate_limit", {}))
    return targets(action, sorted(nodes))


def judge(
    deployment: Deployment,
    ledger: Ledger,
    app: Celery,
    cycle_id: str,
    now: datetime,
    *,
    mark: Callable[[Deployment], None] = lambda _: None,
) -> Judgement | None:
    """The deployment's judgement (rolling it back if it made things worse), or None if it is too
    early to tell. ``mark`` writes the deployment, marked as being rolled back, before the
    rollback acts."""
    observed = (now - deployment.deployed_at).total_seconds()
    rolled_back, detail = False, ""
    if deployment.rollback_by:  # a rollback was started and its cycle died: never undo twice
        outcome, after = Outcome.WORSE, None
        detail = f"a rollback started by {deployment.rollback_by} did not finish; not repeated"
    elif isinstance(deployment.action, FileWorkItem):
        outcome, after = Outcome.NOT_JUDGED, None
    else:
        if observed < ledger.settings.improve_min_observation_seconds:
            return None
        after = after_value(deployment, ledger, now)
        outcome = decide(deployment.metric, deployment.before_value, after)
        if outcome is Outcome.INCONCLUSIVE and observed < ledger.settings.improve_window_seconds:
            return None
        if outcome is Outcome.WORSE:
            mark(deployment.model_copy(update={"rollback_by": cycle_id}))
            rolled_back, detail = rollback(deployment, ledger, app)
            log.warning("rolled_back", action=deployment.action.describe(), ok=rolled_back, detail=detail)
    return Judgement(
        cycle_id=cycle_id, judged_at=now, observed_s=round(observed, 3), before_value=deployment.before_value,
        after_value=after, outcome=outcome.value, rolled_back=rolled_back, rollback=detail,
    )  # fmt: skip


def close_abandoned(ledger: Ledger, app: Celery, cycle_id: str, now: datetime) -> list[Learned]:
    """Closes the cycles left *running* by a dead process (the lock is ours, so none is alive):
    each is marked *abandoned*, and each deployment it wrote ahead but never confirmed is
    reconciled from its snapshot and recorded. Returns those deployments' judgements."""
    learned: list[Learned] = []
    for cycle in reversed(records.past_cycles(ledger, LOOK_BACK_CYCLES)):
        if cycle.id == cycle_id or cycle.status is not CycleStatus.RUNNING:
            continue
        cycle.status, cycle.finished_at = CycleStatus.ABANDONED, now
        cycle.error = cycle.error or "abandoned: its process died before the cycle finished"
        records.save(ledger, cycle)  # closed first: a crash below still leaves it closed
        log.warning("cycle_abandoned", cycle_id=cycle.id)
        for index, deployment in enumerate(cycle.deployments):
            if deployment.status is not DeployStatus.PENDING:
                continue
            found, ok, detail = reconcile(deployment, ledger, app)
            judgement = Judgement(
                cycle_id=cycle_id, judged_at=now, observed_s=0.0, before_value=deployment.before_value,
                after_value=None, outcome=Outcome.ABANDONED.value, rolled_back=ok, rollback=detail,
            )  # fmt: skip
            error = "abandoned while being applied"
            cycle.deployments[index] = found.model_copy(
                update={"status": DeployStatus.ABANDONED, "ok": False, "error": error, "judgement": judgement}
            )
            records.save(ledger, cycle)
            action = deployment.action.describe()
            learned.append(Learned(cycle_id=cycle.id, index=index, action=action, judgement=judgement))
    return learned


def learn(ledger: Ledger, app: Celery, cycle_id: str, now: datetime) -> tuple[list[Learned], frozenset[str]]:
    """Closes abandoned cycles, then judges every deployment still to be judged, writing each
    judgement into its cycle's record at once. Returns what was judged, and the targets still
    being monitored."""
    learned = close_abandoned(ledger, app, cycle_id, now)
    monitored: set[str] = set()
    for cycle, index, deployment in _pending(ledger):

        def mark(marked: Deployment, cycle: Cycle = cycle, index: int = index) -> None:
            cycle.deployments[index] = marked
            records.save(ledger, cycle)

        judgement = judge(deployment, ledger, app, cycle_id, now, mark=mark)
        if judgement is None:
            monitored |= deployed_targets(deployment)
            continue
        mark(cycle.deployments[index].model_copy(update={"judgement": judgement}))
        learned.append(
            Learned(cycle_id=cycle.id, index=index, action=deployment.action.describe(), judgement=judgement)
        )
        log.info("judged", action=deployment.action.describe(), outcome=judgement.outcome,
                 before=judgement.before_value, after=judgement.after_value)  # fmt: skip
    return learned, frozenset(monitored)
