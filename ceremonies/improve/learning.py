"""Monitoring and learning: each deployed action is judged by a later cycle on its own metric.

The target metric is measured over the time since the action was deployed (``discovery.measure``
from ``deployed_at`` to now) and compared with its value when it was deployed. A change beyond
``TOLERANCE`` in the better direction keeps it as *improved*; one in the worse direction rolls
it back from its before-snapshot; anything smaller is *no change* and kept. An action observed
for less than ``MIN_OBSERVE_S`` waits for a later cycle, as does one whose metric could not be
measured yet, until a whole window has passed (then it is *inconclusive* and kept). Filed work
items are not judged: their effect is the work they ask for.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum

import structlog
from celery import Celery

from ceremonies.improve import records
from ceremonies.improve.deploy import Deployment, Judgement, rollback
from ceremonies.improve.discovery import measure
from ceremonies.improve.guardrails import target
from ceremonies.improve.records import Cycle, Learned
from ceremonies.improve.vocabulary import Direction, FileWorkItem, Metric
from swarm.ledger import Ledger

TOLERANCE = 0.10  # a relative change smaller than this is no change
MIN_OBSERVE_S = 1.0  # an action deployed more recently than this is judged by a later cycle
LOOK_BACK_CYCLES = 50  # past cycles searched for deployments still to judge

log = structlog.get_logger("swarm.improve")


class Outcome(StrEnum):
    IMPROVED = "improved"
    NO_CHANGE = "no_change"
    WORSE = "worse"  # rolled back
    INCONCLUSIVE = "inconclusive"  # not measurable over a whole window; kept
    NOT_JUDGED = "not_judged"  # a filed work item


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


def judge(
    deployment: Deployment, ledger: Ledger, app: Celery, cycle_id: str, now: datetime
) -> Judgement | None:
    """The deployment's judgement (rolling it back if it made things worse), or None if it is too
    early to tell."""
    observed = (now - deployment.deployed_at).total_seconds()
    if isinstance(deployment.action, FileWorkItem):
        outcome, after = Outcome.NOT_JUDGED, None
    else:
        if observed < MIN_OBSERVE_S:
            return None
        after = after_value(deployment, ledger, now)
        outcome = decide(deployment.metric, deployment.before_value, after)
        if outcome is Outcome.INCONCLUSIVE and observed < ledger.settings.improve_window_seconds:
            return None
    rolled_back, detail = False, ""
    if outcome is Outcome.WORSE:
        rolled_back, detail = rollback(deployment, ledger, app)
        log.warning("rolled_back", action=deployment.action.describe(), ok=rolled_back, detail=detail)
    return Judgement(
        cycle_id=cycle_id, judged_at=now, observed_s=round(observed, 3), before_value=deployment.before_value,
        after_value=after, outcome=outcome.value, rolled_back=rolled_back, rollback=detail,
    )  # fmt: skip


def learn(ledger: Ledger, app: Celery, cycle_id: str, now: datetime) -> tuple[list[Learned], frozenset[str]]:
    """Judges every deployment still to be judged; writes each judgement back into its cycle's
    record. Returns what was judged, and the targets still being monitored."""
    learned: list[Learned] = []
    monitored: set[str] = set()
    changed: dict[str, Cycle] = {}
    for cycle, index, deployment in _pending(ledger):
        judgement = judge(deployment, ledger, app, cycle_id, now)
        if judgement is None:
            key = target(deployment.action)
            if key is not None:
                monitored.add(key)
            continue
        cycle.deployments[index] = deployment.model_copy(update={"judgement": judgement})
        changed[cycle.id] = cycle
        learned.append(
            Learned(cycle_id=cycle.id, index=index, action=deployment.action.describe(), judgement=judgement)
        )
        log.info("judged", action=deployment.action.describe(), outcome=judgement.outcome,
                 before=judgement.before_value, after=judgement.after_value)  # fmt: skip
    for cycle in changed.values():
        records.save(ledger, cycle)
    return learned, frozenset(monitored)
