"""Validation: guardrails on every proposal, then a dry run of each one before anything changes.

Guardrails are bounds that hold whoever proposed the action:

- pools and rate limits are changed only on nodes that serve the one role: a node consuming
  several roles' queues has one pool for them all, so a change meant for one role would change
  the others' throughput too;
- a node's pool stays within [``improve_min_concurrency``, ``improve_max_concurrency``] slots,
  counting every change accepted before in the same cycle;
- at most ``improve_max_actions`` actions per cycle, and one per target (a node's pool, a role's
  lease, an item), so that the next cycle can tell which change moved its metric; a target whose
  previous change is still being monitored is left alone;
- a filed work item is an ``improvement``, at most ``high`` priority and ``FILED_MAX_POINTS``
  points (it is filed undispatched, into the backlog, for planning);
- the advisor's proposals only if its run stayed within ``improve_budget_usd``;
- a lease within ``lease_bounds`` (a lease must stay well below the visibility timeout);
- only pending items are re-prioritised.

The dry run then checks that the action could be applied now: the role's nodes answer a ping and
their pools can be resized, the item exists and is pending, the filing is a valid item.
"""

from __future__ import annotations

from collections.abc import Iterable

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
from swarm.models import Priority, Status
from swarm.settings import Settings

LEASE_MIN_S = 1.0  # shorter leases make every slow heartbeat a lost item
LEASE_MAX_S = 3600.0  # longer ones leave a killed worker's item stuck for an hour
FILED_TYPE = "improvement"  # the only type of work item a cycle files
FILED_MAX_PRIORITY = Priority.HIGH  # nothing filed jumps the critical queue
FILED_MAX_POINTS = 8


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


def targets(action: Action, nodes: Iterable[str] = ()) -> frozenset[str]:
    """What the action changes (``nodes``: the nodes a pool change reaches); two actions on one
    target in a cycle could not be told apart."""
    if isinstance(action, ScaleRole | SetRateLimit):
        return frozenset(f"pool:{node}" for node in nodes)  # both change the node's throughput
    if isinstance(action, SetLease):
        return frozenset({f"lease:{action.role.value}"})
    if isinstance(action, Reprioritise):
        return frozenset({f"item:{action.work_id}"})
    return frozenset()  # filings are independent of each other


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
    planned: dict[str, int] = {}  # the pool deltas accepted so far, per node
    for proposal in proposals:
        action = proposal.action
        nodes = (
            [n.node for n in discovery.nodes_of(action.role)]
            if isinstance(action, ScaleRole | SetRateLimit)
            else []
        )
        keys = targets(action, nodes)
        accepted = sum(v.accepted for v in verdicts)
        reason = _guardrail(
            proposal, discovery, ledger.settings, advisor_cost, accepted=accepted, planned=planned
        ) or (_conflict(keys, taken, monitored))
        if reason:
            verdicts.append(Verdict(proposal=proposal, accepted=False, reason=reason))
            continue
        problem, checked = _dry_run(action, discovery, ledger, app)
        verdicts.append(Verdict(proposal=proposal, accepted=not problem, reason=problem, dry_run=checked))
        if not problem:
            taken |= keys
            if isinstance(action, ScaleRole):
                for node in nodes:
                    planned[node] = planned.get(node, 0) + action.delta
    return verdicts


def _guardrail(
    proposal: Proposal,
    discovery: Discovery,
    settings: Settings,
    advisor_cost: float | None,
    *,
    accepted: int,
    planned: dict[str, int],
) -> str:
    """The bound this proposal breaks ("" when none)."""
    reason = _bounds(proposal.action, discovery, settings, planned)
    budget = settings.improve_budget_usd
    if not reason and proposal.source is Source.ADVISOR and (advisor_cost or 0.0) > budget:
        reason = f"the advisor spent ${advisor_cost or 0.0:g}, over the budget of ${budget:g}"
    if not reason and accepted >= settings.improve_max_actions:
        reason = f"over the cycle's limit of {settings.improve_max_actions} action(s)"
    return reason


def _conflict(keys: frozenset[str], taken: set[str], monitored: frozenset[str]) -> str:
    for key in sorted(keys):
        if key in taken:
            return f"another action on {key} was accepted first"
        if key in monitored:
            return f"the previous change to {key} is still being monitored"
    return ""


def _bounds(action: Action, discovery: Discovery, settings: Settings, planned: dict[str, int]) -> str:
    """The guardrail this action breaks ("" when none); ``planned``: pool deltas accepted already."""
    if isinstance(action, ScaleRole | SetRateLimit):
        nodes = discovery.nodes_of(action.role)
        if not nodes:
            return f"no live node consumes {action.role.value}'s queues"
        shared = [f"{n.node} serves {', '.join(r.value for r in n.roles)}" for n in nodes if len(n.roles) > 1]
        if shared:
            return (
                f"{'; '.join(shared)}: a node serving more than one role is not resized or rate limited "
                f"(it would change the other roles' throughput too)"
            )
    if isinstance(action, ScaleRole):
        least, most = settings.improve_min_concurrency, settings.improve_max_concurrency
        for node in discovery.nodes_of(action.role):
            if node.concurrency is None:
                return f"{node.node} did not report its pool size"
            earlier = planned.get(node.node, 0)
            size = node.concurrency + earlier + action.delta
            if not least <= size <= most:
                also = f" with {earlier:+d} accepted before" if earlier else ""
                return f"{node.node} would have {size} slot(s){also}, outside {least}..{most}"
    if isinstance(action, SetLease):
        lo, hi = lease_bounds(settings)
        if not lo <= action.seconds <= hi:
            return f"a lease of {action.seconds:g}s is outside {lo:g}..{hi:g}s"
    if isinstance(action, FileWorkItem):
        return _filing_bounds(action)
    return ""


def _filing_bounds(action: FileWorkItem) -> str:
    if action.type != FILED_TYPE:
        return f"only {FILED_TYPE!r} work items are filed, not {action.type!r}"
    if action.priority.rank < FILED_MAX_PRIORITY.rank:
        return f"a filed item's priority is at most {FILED_MAX_PRIORITY.value}, not {action.priority.value}"
    if action.points > FILED_MAX_POINTS:
        return f"a filed item has at most {FILED_MAX_POINTS} points, not {action.points}"
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
