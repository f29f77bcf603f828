"""Placing real ledger history at chosen instants, for the ceremony tests.

Items are written through the ledger's own operations (submit, claim, complete, fail, reap), so
their registries, handoffs and events are real. ``set_times`` then moves *only times*: the time
fields of the item's hash and its score in its status registry (the last update, in ms), which
is what ``ceremonies.history`` windows read. Nothing else is touched. Events keep the instant
they really happened at: a stream entry's id is its time and cannot be rewritten.
"""

from __future__ import annotations

from datetime import datetime

from swarm.ledger import Ledger
from swarm.models import WorkItem


def _us(at: datetime) -> str:
    return str(round(at.timestamp() * 1_000_000))


def set_times(
    ledger: Ledger,
    work_id: str,
    *,
    created: datetime | None = None,
    claimed: datetime | None = None,
    completed: datetime | None = None,
    updated: datetime | None = None,
    lease_expires: datetime | None = None,
) -> WorkItem:
    """Moves an item's times; ``updated`` defaults to the latest of the others given, and the
    item's status registry is rescored to it."""
    given = {
        "created_at": created,
        "claimed_at": claimed,
        "completed_at": completed,
        "lease_expires_at": lease_expires,
    }
    last = updated or max(
        (t for k, t in given.items() if t is not None and k != "lease_expires_at"), default=None
    )
    fields: dict[str | bytes, str] = {
        k: _us(t) for k, t in {**given, "updated_at": last}.items() if t is not None
    }
    key = ledger.keys.item(work_id)
    for name, value in fields.items():
        ledger.client.hset(key, name, value)
    if last is not None:
        status = ledger.client.hget(key, "status")
        assert isinstance(status, str), f"no work item {work_id}"
        ledger.client.zadd(ledger.keys.status(status), {work_id: int(last.timestamp() * 1000)})
    return ledger.get(work_id)
