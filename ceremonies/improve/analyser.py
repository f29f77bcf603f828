"""The deterministic analyser: proposals from a window's metrics, by rules a reader can check.

Each rule looks at one symptom and proposes one action in the vocabulary, with the figures that
triggered it in its reason:

- **backlog**: a role whose backlog would take longer than the window to drain at its measured
  throughput, or whose oldest item has waited over half a window, gets its pool grown enough to
  drain within a window, bounded by ``improve_max_concurrency`` (a rate-limited role has its rate
  limit cleared instead: more slots would not help it);
- **expired leases**: many leases running out (handlers outliving their lease) → a longer lease;
- **starvation**: an old pending item that younger items of its role keep overtaking → one
  priority level up;
- **dead items**: repeated dead items of a role, not filed before → a work item to investigate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ceremonies.improve.discovery import Discovery, RoleMetrics
from ceremonies.improve.guardrails import lease_bounds
from ceremonies.improve.vocabulary import (
    Action,
    Direction,
    FileWorkItem,
    Metric,
    Reprioritise,
    ScaleRole,
    SetLease,
    SetRateLimit,
)
from swarm.models import Priority, Role
from swarm.settings import Settings

WAIT_HIGH_FRACTION = 0.5  # an oldest wait over this fraction of the window is high
EXPIRED_LEASES_MIN = 3  # fewer expired leases than this in a window is noise
EXPIRED_LEASES_SHARE = 0.2  # ... and so is a smaller share of the window's claims
LEASE_GROWTH = 2.0  # a lease that keeps expiring is doubled
DEAD_ITEMS_MIN = 2  # dead items of a role in a window before one is filed
STARVED_FRACTION = 0.5  # an overtaken item waiting over this fraction of the window is starved
_MORE_URGENT = {
    Priority.LOW: Priority.MEDIUM,
    Priority.MEDIUM: Priority.HIGH,
    Priority.HIGH: Priority.CRITICAL,
}


def analyse(discovery: Discovery, settings: Settings, filed: Iterable[str] = ()) -> list[Action]:
    """Every rule's proposals, most pressing first; ``filed`` are dead item ids filed before."""
    already = set(filed)
    window = discovery.window_s
    proposals: list[Action] = []
    for role, metrics in discovery.roles.items():
        proposals += _backlog(discovery, role, metrics, settings)
    for metrics in discovery.roles.values():
        proposals += _expired_leases(metrics, window, settings)
        proposals += _starved(metrics, window)
        proposals += _dead(metrics, settings, already)
    return proposals


def drain_seconds(metrics: RoleMetrics) -> float:
    """How long the backlog would take at the measured throughput (inf without one)."""
    if metrics.queue_depth == 0:
        return 0.0
    if not metrics.throughput:
        return math.inf
    return metrics.queue_depth / metrics.throughput


def _backlog(discovery: Discovery, role: Role, m: RoleMetrics, settings: Settings) -> list[Action]:
    nodes = [n for n in discovery.nodes_of(role) if n.concurrency is not None]
    if m.queue_depth == 0 or not nodes:
        return []
    window = discovery.window_s
    drain = drain_seconds(m)
    wait_high = m.oldest_wait_s is not None and m.oldest_wait_s > WAIT_HIGH_FRACTION * window
    if drain <= window and not wait_high:
        return []
    why = (
        f"{m.queue_depth} pending would take {drain:.1f}s to drain at {m.throughput or 0:.2f}/s "
        f"(window {window:.0f}s); oldest waited {m.oldest_wait_s or 0:.1f}s"
    )
    if any(n.rate_limit for n in nodes):
        why += "; its nodes are rate limited"
        return [
            SetRateLimit(
                role=role,
                rate=None,
                metric=Metric.THROUGHPUT,
                better=Direction.HIGHER,
                reason=why,
            )
        ]
    slots = sum(n.concurrency or 0 for n in nodes)
    needed = math.ceil(slots * drain / window) if math.isfinite(drain) else 2 * slots
    per_node = math.ceil(max(needed - slots, 1) / len(nodes))
    room = settings.improve_max_concurrency - max(n.concurrency or 0 for n in nodes)
    delta = min(per_node, room)
    if delta <= 0:
        return []
    return [
        ScaleRole(
            role=role,
            delta=delta,
            metric=Metric.THROUGHPUT,
            better=Direction.HIGHER,
            reason=f"{why}; {slots} slot(s) on {len(nodes)} node(s), about {needed} needed",
        )
    ]


def _expired_leases(m: RoleMetrics, window: float, settings: Settings) -> list[Action]:
    share = m.expired_leases / max(m.claims, 1)
    if m.expired_leases < EXPIRED_LEASES_MIN or share < EXPIRED_LEASES_SHARE:
        return []
    longer = min(m.lease_seconds * LEASE_GROWTH, lease_bounds(settings)[1])  # within the guardrails
    if longer <= m.lease_seconds:
        return []
    return [
        SetLease(
            role=m.role,
            seconds=round(longer, 3),
            metric=Metric.EXPIRED_LEASES,
            better=Direction.LOWER,
            reason=f"{m.expired_leases} leases of {m.claims} claims expired in {window:.0f}s "
            f"with a lease of {m.lease_seconds:g}s",
        )
    ]


def _starved(m: RoleMetrics, window: float) -> list[Action]:
    for item in m.starved:
        if item.age_s > STARVED_FRACTION * window and item.priority in _MORE_URGENT:
            return [
                Reprioritise(
                    work_id=item.work_id,
                    priority=_MORE_URGENT[item.priority],
                    metric=Metric.OLDEST_WAIT_S,
                    better=Direction.LOWER,
                    reason=f"{item.work_id} ({item.priority.value}) has waited {item.age_s:.0f}s while "
                    f"{item.overtaken_by} younger {m.role.value} item(s) started",
                )
            ]
    return []


def _dead(m: RoleMetrics, settings: Settings, filed: set[str]) -> list[Action]:
    fresh = [wid for wid in m.dead_ids if wid not in filed]
    if m.dead_items < DEAD_ITEMS_MIN or not fresh:
        return []
    causes = "; ".join(m.top_errors) or "no error recorded"
    return [
        FileWorkItem(
            type="improvement",
            description=f"Investigate {m.dead_items} dead {m.role.value} items. Top causes: {causes}. "
            f"Items: {', '.join(fresh[:20])}",
            role=m.role,
            team=settings.default_team,
            priority=Priority.HIGH,
            points=2,
            evidence=fresh,
            metric=Metric.DEAD_ITEMS,
            better=Direction.LOWER,
            reason=f"{m.dead_items} {m.role.value} items went dead in the window",
        )
    ]
