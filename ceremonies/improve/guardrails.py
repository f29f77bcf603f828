"""Validation: guardrails on every proposal, then a dry run of each one before anything changes.

Guardrails are bounds that hold whoever proposed the action:

- a role's pool stays within [``improve_min_concurrency``, ``improve_max_concurrency``] slots on
  every node;
- at most ``improve_max_actions`` actions per cycle, and one per target (a role's pool, a role's
  lease, an item), so that the next cycle can tell which change moved its metric; a target whose
  previous change is still being monitored is left alone;
- the advisor's proposals only if its run stayed within ``improve_budget_usd``;
- a lease within ``lease_bounds`` (a lease must stay well below the visibility timeout);
- only pending items are re-prioritised.

The dry run then checks that the action could be applied now: the role's nodes answer a ping and
their pools can be resized, the item exists and is pending, the filing is a valid item.
"""

from __future__ import annotations

from celery import Celery
from celery.utils.time import rate as parse_rate
from pydantic import BaseModel, ConfigDict

from ceremonies.improve import pool
from ceremonies.improve.discovery import Discovery
from ceremonies.improve.vocabulary import (
    Action,
    FileWorkItem,
    Proposal,
    Reprioritise,
    ScaleRole,
    SetLease,
    SetRateLimit,
    Source,
)
from swarm import validation
from swarm.errors import NotFound, SwarmError
from swarm.ledger import Ledger
from swarm.models import Status
from swarm.settings import Settings

LEASE_MIN_S = 1.0  # shorter leases make every slow heartbeat a lost item
LEASE_MAX_S = 3600.0  # longer ones leave a killed worker's item stuck for an hour


class Verdict(BaseModel):
    """One proposal's validation: accepted or why not, and what its dry run found."""

    model_config = ConfigDict(frozen=True)

    proposal: Proposal
    accepted: bool
    reason: str = ""  # why it was rejected ("" when accepted)
    dry_run: str = ""  # what the dry run checked


def lease_bounds(settings: Settings) -> tuple[float, float]:
    """The leases the cycle may set: at most half the visibility timeout, which must outlast it."""
    return LEASE_MIN_S, min(LEASE_MAX_S, settings.visibility_timeout_seconds / 2)


def target(action: Action) -> str | None:
    """What the action changes; two actions on one target in a cycle could not be told apart."""
    if isinstance(action, ScaleRole | SetRateLimit):
        return f"pool:{action.role.value}"  # both change the role's throughput
    if isinstance(action, SetLease):
        return f"lease:{action.role.value}"
    if isinstance(action, Reprioritise):
        return f"item:{action.work_id}"
    return None  # filings are independent of each other


def validate(
    proposals: list[Proposal],
    discovery: Discovery,
    ledger: Ledger,
    app: Celery,
    *,
    advisor_cost: float | None = None,
    monitored: frozenset[str] = frozenset(),
) -> list[Verdict]:
    """Every proposal's verdict, in order: guardrails first, then the dry run of what passed them."""
    verdicts: list[Verdict] = []
    taken: set[str] = set()
    for proposal in proposals:
        key = target(proposal.action)
        accepted = sum(v.accepted for v in verdicts)
        reason = _guardrail(proposal, discovery, ledger.settings, advisor_cost, accepted) or (
            _conflict(key, taken, monitored)
        )
        if reason:
            verdicts.append(Verdict(proposal=proposal, accepted=False, reason=reason))
            continue
        problem, checked = _dry_run(proposal.action, discovery, ledger, app)
        verdicts.append(Verdict(proposal=proposal, accepted=not problem, reason=problem, dry_run=checked))
        if not problem and key is not None:
            taken.add(key)
    return verdicts


def _guardrail(
    proposal: Proposal, discovery: Discovery, settings: Settings, advisor_cost: float | None, accepted: int
) -> str:
    """The bound this proposal breaks ("" when none)."""
    reason = _bounds(proposal.action, discovery, settings)
    budget = settings.improve_budget_usd
    if not reason and proposal.source is Source.ADVISOR and (advisor_cost or 0.0) > budget:
        reason = f"the advisor spent ${advisor_cost or 0.0:g}, over the budget of ${budget:g}"
    if not reason and accepted >= settings.improve_max_actions:
        reason = f"over the cycle's limit of {settings.improve_max_actions} action(s)"
    return reason


def _conflict(key: str | None, taken: set[str], monitored: frozenset[str]) -> str:
    if key is None:
        return ""
    if key in taken:
        return f"another action on {key} was accepted first"
    if key in monitored:
        return f"the previous change to {key} is still being monitored"
    return ""


def _bounds(action: Action, discovery: Discovery, settings: Settings) -> str:
    """The guardrail this action breaks ("" when none)."""
    if isinstance(action, ScaleRole):
        nodes = discovery.nodes_of(action.role)
        if not nodes:
            return f"no live node consumes {action.role.value}'s queues"
        least, most = settings.improve_min_concurrency, settings.improve_max_concurrency
        for node in nodes:
            if node.concurrency is None:
                return f"{node.node} did not report its pool size"
            size = node.concurrency + action.delta
            if not least <= size <= most:
                return f"{node.node} would have {size} slot(s), outside {least}..{most}"
    if isinstance(action, SetRateLimit) and not discovery.nodes_of(action.role):
        return f"no live node consumes {action.role.value}'s queues"
    if isinstance(action, SetLease):
        lo, hi = lease_bounds(settings)
        if not lo <= action.seconds <= hi:
            return f"a lease of {action.seconds:g}s is outside {lo:g}..{hi:g}s"
    return ""


def _dry_run(action: Action, discovery: Discovery, ledger: Ledger, app: Celery) -> tuple[str, str]:
    """(problem, what was checked): whether the action could be applied now, changing nothing."""
    if isinstance(action, ScaleRole | SetRateLimit):
        nodes = discovery.nodes_of(action.role)
        names = [n.node for n in nodes]
        silent = sorted(set(names) - pool.ping(app, names))
        if silent:
            return f"no answer from {', '.join(silent)}", f"pinged {', '.join(names)}"
        if isinstance(action, ScaleRole):
            fixed = [f"{n.node} ({n.pool})" for n in nodes if n.pool not in pool.RESIZABLE_POOLS]
            if fixed:
                return f"pool cannot be resized: {', '.join(fixed)}", f"pinged {', '.join(names)}"
            return "", f"pinged {', '.join(names)}; resizable pools"
        try:
            if action.rate is not None:
                parse_rate(action.rate)
        except ValueError as exc:
            return f"not a rate limit: {exc}", ""
        return "", f"pinged {', '.join(names)}; rate {action.rate or 'none'} parses"
    if isinstance(action, Reprioritise):
        return _dry_run_item(action, ledger)
    if isinstance(action, FileWorkItem):
        try:
            validation.work_type(action.type)
            validation.team(action.team)
            validation.description(action.description, ledger.settings.description_max_bytes)
        except SwarmError as exc:
            return f"not a valid work item: {exc}", "validated the item's fields"
        return "", "validated the item's fields"
    least, most = lease_bounds(ledger.settings)
    return "", f"lease within {least:g}..{most:g}s"


def _dry_run_item(action: Reprioritise, ledger: Ledger) -> tuple[str, str]:
    try:
        item = ledger.get(action.work_id)
    except NotFound:
        return f"no item {action.work_id}", "read the item"
    if item.status is not Status.PENDING:
        return f"{action.work_id} is {item.status.value}, not pending", "read the item"
    if item.priority is action.priority:
        return f"{action.work_id} is {item.priority.value} already", "read the item"
    return "", f"{action.work_id} is pending at {item.priority.value}"
