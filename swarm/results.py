"""Results without a result backend: the ledger holds every item's outcome, so waiting for one is
following the ledger's event stream, and a workflow's result is its last stage's.

``wait`` follows an item, and the stages it hands off to (``next_id``), until one ends: completed
with no next stage, failed, dead or cancelled. It blocks on the stream (XREAD BLOCK) and reads
the item again only when an event names it; an item already finished returns at once.
``chain`` is a workflow's stages in order, from any one of them.
"""

from __future__ import annotations

import time

from swarm import validation
from swarm.errors import NotFound, WaitTimeout
from swarm.ledger import Ledger
from swarm.models import Status, WorkItem

EVENTS_PER_READ = 1000  # stream entries taken per XREAD; the rest come with the next one
BLOCK_MAX_S = 2.0  # one XREAD blocks at most this long (and well within the socket timeout)
CHAIN_MAX = 10_000  # a sanity bound on a chain's length: handoffs never loop, but data may be damaged


def finished(item: WorkItem) -> bool:
    """True once nothing more will happen to the work: a terminal status that handed off nothing."""
    return item.status.terminal and not (item.status is Status.COMPLETED and item.next_id)


def wait(ledger: Ledger, work_id: str, timeout: float | None = None) -> WorkItem:
    """The item, or the workflow stage it handed off to, once it has ``finished``.

    ``timeout`` (seconds; None waits for ever) runs out with ``WaitTimeout``, which carries the
    item as it stood. ``NotFound`` when there is no such item.
    """
    limit = None if timeout is None else validation.seconds(timeout, "timeout", allow_zero=True)
    deadline = None if limit is None else time.monotonic() + limit
    # The stream's tail first, then the item: a transition made after the read is in the stream
    # after this entry, so none is missed between the two.
    last = _tail(ledger)
    item = _settle(ledger, ledger.get(work_id))
    # One XREAD never blocks past the client's socket timeout (it would be taken for an outage).
    block_max = min(BLOCK_MAX_S, ledger.settings.socket_timeout / 2)
    while not finished(item):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise WaitTimeout(_still(item, work_id, limit or 0.0), item)
        block_s = block_max if left is None else min(left, block_max)
        last, touched = _read_after(ledger, last, item.id, block_s)
        if touched:
            item = _settle(ledger, ledger.get(item.id))
    return item


def chain(ledger: Ledger, work_id: str) -> list[WorkItem]:
    """The workflow stages ``work_id`` belongs to, first to last (just the item outside one).

    It walks back through ``parent_id`` while the parent handed off to the child (``next_id``),
    and forward through ``next_id``; a stage that has expired ends the walk there.
    """
    item = ledger.get(work_id)
    before: list[WorkItem] = []
    current = item
    while current.parent_id and len(before) < CHAIN_MAX:
        try:
            parent = ledger.get(current.parent_id)
        except NotFound:
            break
        if parent.next_id != current.id:
            break  # a parent_id given by hand, not a handoff
        before.append(parent)
        current = parent
    stages = [*reversed(before), item]
    while stages[-1].next_id and len(stages) < CHAIN_MAX:
        try:
            stages.append(ledger.get(stages[-1].next_id))
        except NotFound:
            break
    return stages


def _settle(ledger: Ledger, item: WorkItem) -> WorkItem:
    """Follows the handoffs of completed stages to the stage the work is at now."""
    for _ in range(CHAIN_MAX):
        if not (item.status is Status.COMPLETED and item.next_id):
            return item
        try:
            item = ledger.get(item.next_id)
        except NotFound:
            raise NotFound(f"{item.id} handed off to {item.next_id}, which no longer exists") from None
    return item


def _tail(ledger: Ledger) -> str:
    entries = ledger.read(ledger.client.xrevrange, ledger.keys.events, "+", "-", 1)
    return str(entries[0][0]) if entries else "0-0"


def _read_after(ledger: Ledger, last: str, work_id: str, block_s: float) -> tuple[str, bool]:
    """Blocks up to ``block_s`` for events after ``last``; returns the newest entry id read and
    whether any of them named ``work_id``."""
    reply = ledger.read(
        ledger.client.xread, {ledger.keys.events: last}, EVENTS_PER_READ, max(1, round(block_s * 1000))
    )
    touched = False
    for _stream, entries in reply or []:
        for entry_id, fields in entries:
            last = entry_id
            touched = touched or fields.get("work_id") == work_id
    return last, touched


def _still(item: WorkItem, first_id: str, timeout: float) -> str:
    where = f"{item.id} is still {item.status.value}"
    if item.id != first_id:
        where += f" (stage {item.stage or item.role.value} of the work {first_id} started)"
    return f"{where} after {timeout:g}s"
