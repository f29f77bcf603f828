"""Which waiting work no live worker can run: ``swarm health``'s ``handlers`` check.

Every worker's agents record the work types their worker has handlers for (``Agent.handles``,
``"*"`` for any; workers register one agent per role they serve, renewed while they run). A
worker without a handler for an item leaves it untouched for one that has: so an item whose
type no live agent of its role handles waits until such a worker starts. The check samples the
head of each role's queue (as the consuming check does: no scan) and names the types nobody
handles, once their oldest item has waited ``health_consuming_within``.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm.ledger import Ledger
from swarm.metrics import is_live
from swarm.models import Priority, Role, Status

HEAD_SAMPLE = 25  # ids read from the head of each priority of a role's queue
ANY = "*"


@dataclass(frozen=True)
class Unhandled:
    """Waiting items of one type that no live agent of their role handles."""

    role: Role
    type: str
    waiting: int  # among the sampled heads of the queue
    oldest_ms: int  # how long the oldest of them has waited


def _live_handled(ledger: Ledger, now_ms: int) -> dict[Role, set[str]]:
    """The types live agents handle, by role (``ANY`` for a catch-all or an agent that does not
    say: an agent registered by hand, or by an older worker)."""
    keys, lease = ledger.keys, ledger.settings.lease_seconds
    since = now_ms - lease * 1000
    seen = ledger.read(ledger.client.zrangebyscore, keys.agents, since, "+inf", withscores=True)
    pipe = ledger.client.pipeline(transaction=False)
    for agent_id, _ in seen:
        pipe.hmget(keys.agent(agent_id), "role", "status", "handles")
    handled: dict[Role, set[str]] = {role: set() for role in Role}
    roles = {r.value for r in Role}
    for (_, at), (role, status, handles) in zip(seen, ledger.read(pipe.execute) if seen else [], strict=True):
        if role in roles and is_live(at, status, now_ms, lease):
            handled[Role(role)].update({ANY} if handles is None else filter(None, handles.split(",")))
    return handled


def unhandled_work(ledger: Ledger, now_ms: int) -> list[Unhandled]:
    """Waiting work (at the heads of the queues) whose type no live agent of its role handles."""
    keys = ledger.keys
    handled = _live_handled(ledger, now_ms)
    pipe = ledger.client.pipeline(transaction=False)
    for role in Role:
        for priority in Priority:
            pipe.zrangebyscore(keys.ready(role), priority.rank, priority.rank, 0, HEAD_SAMPLE)
    heads = iter(ledger.read(pipe.execute))
    sampled: list[tuple[Role, str]] = []
    for role in Role:
        for _ in Priority:
            ids: list[str] = next(heads)
            if ANY not in handled[role]:  # a catch-all handles whatever waits
                sampled += [(role, wid) for wid in ids]
    if not sampled:
        return []
    pipe = ledger.client.pipeline(transaction=False)
    for _, wid in sampled:
        pipe.hmget(keys.item(wid), "type", "manual")
    pipe.zmscore(keys.status(Status.PENDING), [wid for _, wid in sampled])
    *fields, since = ledger.read(pipe.execute)
    found: dict[tuple[Role, str], list[float]] = {}
    for (role, _), (type_, manual), at in zip(sampled, fields, since, strict=True):
        if type_ is None or manual == "1" or at is None or type_ in handled[role]:
            continue
        found.setdefault((role, type_), []).append(at)
    return [Unhandled(role, t, len(ats), int(now_ms - min(ats))) for (role, t), ats in sorted(found.items())]
