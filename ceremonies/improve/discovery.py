"""Discovery: a window of metrics per role, from the ledger and from the live Celery pool.

Everything is read from the ledger's registries and its event stream (``ceremonies.history``),
never from a scan, and from one round of remote-control inspection. ``measure`` is the ledger
part alone, so that monitoring can measure the same metrics over the time since an action was
deployed.

Throughput is completions per second *of the time the role had work*: the union of its items'
[created, finished] intervals within the window. A role that drained its queue half way through
the window then reads as fast as it was, not half as fast.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import Celery
from pydantic import BaseModel, ConfigDict, Field

from ceremonies import history
from ceremonies.improve.pool import PoolNode, live_pool
from swarm.ledger import Ledger
from swarm.models import EventKind, Priority, Role, Status, WorkItem
from workers.lease import parse_leases

MIN_BUSY_S = 0.2  # less work time than this measures no throughput at all
STARVED_LISTED = 5  # oldest overtaken pending items kept per role, for the analyser
ROLE_NAMES = frozenset(r.value for r in Role)
TOP_ERRORS = 3  # most common errors of a role's dead items, kept as evidence


class PendingItem(BaseModel):
    """A pending item that younger items of its role have overtaken (starvation evidence)."""

    model_config = ConfigDict(frozen=True)

    work_id: str
    priority: Priority
    age_s: float
    overtaken_by: int  # younger items of the role claimed in the window


class RoleMetrics(BaseModel):
    """One role's figures over one window."""

    model_config = ConfigDict(frozen=True)

    role: Role
    queue_depth: int = 0
    oldest_wait_s: float | None = None  # age of the oldest pending item now
    mean_wait_s: float | None = None  # created -> claimed, items claimed in the window
    success_rate: float | None = None  # completed / finished in the window
    mean_duration_s: float | None = None  # claimed -> completed, items completed in the window
    throughput: float | None = None  # completions per second of busy time
    busy_s: float = 0.0
    completed: int = 0
    failed: int = 0
    dead_items: int = 0
    dead_ids: list[str] = Field(default_factory=list)
    top_errors: list[str] = Field(default_factory=list)  # of the dead items, most common first
    expired_leases: int = 0
    claims: int = 0
    cost_usd: float = 0.0
    in_flight: int = 0
    starved: list[PendingItem] = Field(default_factory=list)
    lease_seconds: float = 0.0  # the lease its items are claimed with now
    nodes: list[str] = Field(default_factory=list)
    concurrency: int | None = None  # slots over its nodes; None without a node that answered

    def value(self, metric: str) -> float | None:
        """The named metric (a ``vocabulary.Metric`` value) as a number."""
        raw = getattr(self, metric)
        return None if raw is None else float(raw)


class Discovery(BaseModel):
    """Phase 1's evidence: every role's metrics and the live pool."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    roles: dict[Role, RoleMetrics]
    nodes: list[PoolNode] = Field(default_factory=list)
    inspect_error: str | None = None

    @property
    def window_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def nodes_of(self, role: Role) -> list[PoolNode]:
        return [n for n in self.nodes if role in n.roles]


def lease_overrides(ledger: Ledger) -> dict[Role, float]:
    """The leases the cycle set per role (``keys.tuning``), read as the workers read them."""
    leases = parse_leases(ledger.read(ledger.client.hgetall, ledger.keys.tuning))
    return {Role(name): seconds for name, seconds in leases.items() if name in ROLE_NAMES}


def _busy_seconds(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    """The length of the union of ``intervals``."""
    total, reach = 0.0, None
    for begin, finish in sorted(intervals):
        if reach is None or begin > reach:
            total += (finish - begin).total_seconds()
            reach = finish
        elif finish > reach:
            total += (finish - reach).total_seconds()
            reach = finish
    return total


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _starved(pending: list[WorkItem], claimed: list[WorkItem], end: datetime) -> list[PendingItem]:
    """Pending items (not critical) that younger items of their role overtook in the window."""
    found: list[PendingItem] = []
    for item in sorted(pending, key=lambda i: i.created_at):
        if item.priority is Priority.CRITICAL:
            continue
        overtaken = sum(1 for c in claimed if c.created_at > item.created_at)
        if overtaken:
            age = (end - item.created_at).total_seconds()
            found.append(
                PendingItem(work_id=item.id, priority=item.priority, age_s=age, overtaken_by=overtaken)
            )
        if len(found) >= STARVED_LISTED:
            break
    return found


def _top_errors(items: list[WorkItem]) -> list[str]:
    counts = Counter((i.error or "no error recorded")[:200] for i in items)
    return [f"{n}x {error}" for error, n in counts.most_common(TOP_ERRORS)]


def _costs(ledger: Ledger, ids: list[str]) -> dict[str, float]:
    pipe = ledger.client.pipeline(transaction=False)
    for wid in ids:
        pipe.hget(ledger.keys.claude_usage(wid), "cost_usd")
    replies: list[str | None] = ledger.read(pipe.execute) if ids else []
    return {wid: float(r) for wid, r in zip(ids, replies, strict=True) if r is not None}


@dataclass
class _RoleItems:
    """One role's items as the window saw them."""

    seen: list[WorkItem] = field(default_factory=list)  # finished or claimed in the window
    done: list[WorkItem] = field(default_factory=list)
    failed: list[WorkItem] = field(default_factory=list)
    dead: list[WorkItem] = field(default_factory=list)
    claimed: list[WorkItem] = field(default_factory=list)
    waiting: list[WorkItem] = field(default_factory=list)  # pending now
    holding: list[WorkItem] = field(default_factory=list)  # claimed or in progress now
    expired_leases: int = 0


def _by_role(ledger: Ledger, start: datetime, end: datetime) -> dict[Role, _RoleItems]:
    """The window's items, grouped by role: a handful of range reads and one fetch."""
    finished = {
        s: history.entered(ledger, s, start, end) for s in (Status.COMPLETED, Status.FAILED, Status.DEAD)
    }
    events = history.events(ledger, start, end, (EventKind.CLAIMED, EventKind.LEASE_EXPIRED))
    known = {i.id: i for items in finished.values() for i in items}
    missing = sorted({e.work_id for e in events if e.work_id and e.work_id not in known})
    known.update({i.id: i for i in ledger.fetch(missing)} if missing else {})
    groups = {role: _RoleItems() for role in Role}
    for item in known.values():
        groups[item.role].seen.append(item)
    for status, bucket in ((Status.COMPLETED, "done"), (Status.FAILED, "failed"), (Status.DEAD, "dead")):
        for item in finished[status]:
            getattr(groups[item.role], bucket).append(item)
    claimed_ids = {e.work_id for e in events if e.event is EventKind.CLAIMED and e.work_id}
    for wid in sorted(claimed_ids & known.keys()):
        if known[wid].claimed_at is not None:
            groups[known[wid].role].claimed.append(known[wid])
    for event in events:
        if event.event is EventKind.LEASE_EXPIRED and event.work_id and event.work_id in known:
            groups[known[event.work_id].role].expired_leases += 1
    for item in history.backlog(ledger):
        groups[item.role].waiting.append(item)
    for item in history.in_status(ledger, Status.CLAIMED, Status.IN_PROGRESS):
        groups[item.role].holding.append(item)
    return groups


def _seconds(pairs: Iterable[tuple[datetime | None, datetime | None]]) -> list[float]:
    return [(b - a).total_seconds() for a, b in pairs if a is not None and b is not None]


def _role_metrics(
    role: Role, g: _RoleItems, start: datetime, end: datetime, *, depth: int, cost: float, lease: float
) -> RoleMetrics:
    busy = _busy_seconds(_intervals([*g.seen, *g.waiting, *g.holding], start, end))
    ended = len(g.done) + len(g.failed) + len(g.dead)
    return RoleMetrics(
        role=role,
        queue_depth=depth,
        oldest_wait_s=max(((end - i.created_at).total_seconds() for i in g.waiting), default=None),
        mean_wait_s=_mean(_seconds((i.created_at, i.claimed_at) for i in g.claimed)),
        success_rate=len(g.done) / ended if ended else None,
        mean_duration_s=_mean(_seconds((i.claimed_at, i.completed_at) for i in g.done)),
        throughput=len(g.done) / busy if busy >= MIN_BUSY_S else None,
        busy_s=round(busy, 3),
        completed=len(g.done),
        failed=len(g.failed),
        dead_items=len(g.dead),
        dead_ids=sorted(i.id for i in g.dead),
        top_errors=_top_errors(g.dead),
        expired_leases=g.expired_leases,
        claims=len(g.claimed),
        cost_usd=round(cost, 6),
        in_flight=len(g.holding),
        starved=_starved(g.waiting, g.claimed, end),
        lease_seconds=lease,
    )


def measure(ledger: Ledger, start: datetime, end: datetime) -> dict[Role, RoleMetrics]:
    """Every role's ledger metrics over [start, end) (``end`` is now: pending means pending now)."""
    groups = _by_role(ledger, start, end)
    depths = history.queue_depths(ledger)
    costs = _costs(ledger, sorted(i.id for g in groups.values() for i in g.seen))
    leases = lease_overrides(ledger)
    return {
        role: _role_metrics(
            role,
            g,
            start,
            end,
            depth=depths[role],
            cost=sum(costs.get(i.id, 0.0) for i in g.seen),
            lease=leases.get(role, ledger.settings.lease_seconds),
        )
        for role, g in groups.items()
    }


def _intervals(items: Iterable[WorkItem], start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """When each item was the role's work, clipped to [start, end): from its creation until it
    finished (or until now, while it is pending or held)."""
    spans = []
    for item in items:
        finish = item.completed_at if item.status.terminal and item.completed_at else end
        begin, finish = max(item.created_at, start), min(finish, end)
        if finish > begin:
            spans.append((begin, finish))
    return spans


def discover(ledger: Ledger, app: Celery, now: datetime) -> Discovery:
    """Phase 1: the window ending ``now`` (``improve_window_seconds`` long) and the live pool."""
    start = now - timedelta(seconds=ledger.settings.improve_window_seconds)
    found = Discovery(start=start, end=now, roles=measure(ledger, start, now))
    return refresh_pool(found, ledger, app)


def refresh_pool(discovery: Discovery, ledger: Ledger, app: Celery) -> Discovery:
    """``discovery`` with the live pool read again (e.g. after a rollback resized it)."""
    error = None
    try:
        nodes = live_pool(app, ledger.settings)
    except Exception as exc:  # a broker hiccup must not lose the ledger's evidence
        nodes, error = [], f"{type(exc).__name__}: {exc}"
    roles = {}
    for role, metrics in discovery.roles.items():
        mine = [n for n in nodes if role in n.roles]
        sizes = [n.concurrency for n in mine if n.concurrency is not None]
        roles[role] = metrics.model_copy(
            update={"nodes": [n.node for n in mine], "concurrency": sum(sizes) if sizes else None}
        )
    return discovery.model_copy(update={"roles": roles, "nodes": nodes, "inspect_error": error})
