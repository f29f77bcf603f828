"""The live Celery pool: which nodes consume a role's queues, how big their pools are, and the
remote-control commands that change them (``pool_grow``, ``pool_shrink``, ``rate_limit``).

Namespaces are kept apart by the Celery app's control exchange (``<prefix>.control``, see
``swarm.celery_app``): a broadcast reaches only the workers of this namespace. Within it, a node
is taken as one of ours only if it consumes one of this ledger's role queues, and commands are
sent to named destinations, waiting for exactly their replies.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from celery import Celery
from pydantic import BaseModel, ConfigDict

from swarm.celery_app import EXECUTE_TASK, role_queues
from swarm.models import Role
from swarm.settings import Settings

INSPECT_TIMEOUT_S = 1.0  # how long a broadcast waits for the nodes' replies
RESIZABLE_POOLS = frozenset({"celery.concurrency.prefork:TaskPool", "workers.pool:TaskPool"})
_RATE_RE = re.compile(r"rate_limit=(\S+?)\]?$")


class PoolNode(BaseModel):
    """One live Celery node that consumes some of this ledger's role queues."""

    model_config = ConfigDict(frozen=True)

    node: str
    roles: list[Role]
    concurrency: int | None = None  # pool.max-concurrency, None when stats did not answer
    pool: str = ""  # the pool's implementation, e.g. workers.pool:TaskPool
    rate_limit: str | None = None  # the execute task's rate limit on this node


def live_pool(app: Celery, settings: Settings, timeout: float = INSPECT_TIMEOUT_S) -> list[PoolNode]:
    """The Celery nodes consuming this ledger's role queues, with their pool sizes and rate limits.

    A node is ours only if it consumes one of our queues (``<prefix>.<role>.<priority>``).
    """
    wanted = {q: role for role in Role for q in role_queues(settings, role)}
    answered: dict[str, Any] = app.control.inspect(timeout=timeout).active_queues() or {}
    roles_of: dict[str, list[Role]] = {}
    for node, queues in answered.items():
        roles = sorted(
            {wanted[q["name"]] for q in queues or [] if q.get("name") in wanted}, key=list(Role).index
        )
        if roles:
            roles_of[node] = roles
    if not roles_of:
        return []
    nodes = sorted(roles_of)
    focused = app.control.inspect(timeout=timeout, destination=nodes, limit=len(nodes))
    stats: dict[str, Any] = focused.stats() or {}
    registered: dict[str, list[str]] = focused.registered("rate_limit") or {}
    return [
        PoolNode(
            node=node,
            roles=roles_of[node],
            concurrency=stats.get(node, {}).get("pool", {}).get("max-concurrency"),
            pool=str(stats.get(node, {}).get("pool", {}).get("implementation", "")),
            rate_limit=_rate_limit(registered.get(node, [])),
        )
        for node in nodes
    ]


def _rate_limit(registered: list[str]) -> str | None:
    """The execute task's rate limit from ``registered('rate_limit')``: ``name [rate_limit=10/m]``."""
    for entry in registered:
        if entry.split(" ", 1)[0] == EXECUTE_TASK:
            found = _RATE_RE.search(entry)
            return found.group(1) if found and found.group(1) not in ("0", "None") else None
    return None


def ping(app: Celery, nodes: list[str], timeout: float = INSPECT_TIMEOUT_S) -> set[str]:
    """The ``nodes`` that answer a ping now."""
    if not nodes:
        return set()
    replies = app.control.ping(destination=nodes, timeout=timeout, limit=len(nodes)) or []
    return {node for reply in replies for node in reply if node in nodes}


class NodeState(NamedTuple):
    """A node's pool size and its process id (which changes when the node restarts)."""

    size: int
    pid: int | None


def pool_states(app: Celery, nodes: list[str], timeout: float = INSPECT_TIMEOUT_S) -> dict[str, NodeState]:
    """Each answering node's ``pool.max-concurrency`` and ``pid``, from ``stats()``."""
    if not nodes:
        return {}
    stats: dict[str, Any] = (
        app.control.inspect(timeout=timeout, destination=nodes, limit=len(nodes)).stats() or {}
    )
    states: dict[str, NodeState] = {}
    for node, info in stats.items():
        size, pid = (info or {}).get("pool", {}).get("max-concurrency"), (info or {}).get("pid")
        if node in nodes and isinstance(size, int):
            states[node] = NodeState(size, pid if isinstance(pid, int) else None)
    return states


def pool_sizes(app: Celery, nodes: list[str], timeout: float = INSPECT_TIMEOUT_S) -> dict[str, int]:
    """Each answering node's ``pool.max-concurrency``."""
    return {node: state.size for node, state in pool_states(app, nodes, timeout).items()}


def _refusals(replies: list[dict[str, Any]] | None, nodes: list[str]) -> dict[str, str]:
    """What went wrong with a command sent to ``nodes``, by node: no answer, or a refusal."""
    answered: dict[str, Any] = {}
    for reply in replies or []:
        answered.update(reply)
    problems = {node: f"{node} did not answer" for node in nodes if node not in answered}
    for node, body in answered.items():
        if node in nodes and not (isinstance(body, dict) and "ok" in body):
            problems[node] = f"{node}: {body.get('error', body) if isinstance(body, dict) else body}"
    return problems


def resize(app: Celery, nodes: list[str], delta: int, timeout: float = INSPECT_TIMEOUT_S) -> dict[str, str]:
    """``pool_grow`` (delta > 0) or ``pool_shrink`` by ``abs(delta)`` on ``nodes``; the problems,
    by node."""
    command = app.control.pool_grow if delta > 0 else app.control.pool_shrink
    replies = command(abs(delta), destination=nodes, reply=True, timeout=timeout, limit=len(nodes))
    return _refusals(replies, nodes)


def set_rate_limit(
    app: Celery, nodes: list[str], rate: str | None, timeout: float = INSPECT_TIMEOUT_S
) -> dict[str, str]:
    """The execute task's rate limit on ``nodes`` (None clears it: Celery takes 0 as none); the
    problems, by node."""
    replies = app.control.rate_limit(
        EXECUTE_TASK, rate or 0, destination=nodes, reply=True, timeout=timeout, limit=len(nodes)
    )
    return _refusals(replies, nodes)
