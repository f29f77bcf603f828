"""Windows of the ledger's history, read from its registries and its stream (never a scan).

A status registry scores each id by its last update, so the items that reached a terminal status
within a window are one ``ZRANGEBYSCORE`` away; the event stream's ids are millisecond times, so
a window of events is one ``XRANGE`` (older events are trimmed at ``events_max_len``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from swarm import codec
from swarm.ledger import Ledger
from swarm.models import Event, EventKind, Role, Status, WorkItem

PAGE = 500  # ids fetched per round trip


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _fetch_all(ledger: Ledger, ids: list[str]) -> list[WorkItem]:
    items: list[WorkItem] = []
    for start in range(0, len(ids), PAGE):
        items += ledger.fetch(ids[start : start + PAGE])
    return items


def entered(ledger: Ledger, status: Status, start: datetime, end: datetime) -> list[WorkItem]:
    """Items now in ``status`` whose last update falls in [start, end): for a terminal status,
    the items that ended that way in the window."""
    ids: list[str] = ledger.read(
        ledger.client.zrangebyscore, ledger.keys.status(status), _ms(start), f"({_ms(end)}"
    )
    return _fetch_all(ledger, ids)


def in_status(ledger: Ledger, *statuses: Status) -> list[WorkItem]:
    """Every item now in any of ``statuses``."""
    ids: list[str] = []
    for status in statuses:
        ids += ledger.read(ledger.client.zrange, ledger.keys.status(status), 0, -1)
    return _fetch_all(ledger, ids)


def backlog(ledger: Ledger, roles: Iterable[Role] = tuple(Role)) -> list[WorkItem]:
    """The pending items of ``roles``, each role's in claim order (priority, then age)."""
    ids: list[str] = []
    for role in roles:
        ids += ledger.read(ledger.client.zrange, ledger.keys.ready(role), 0, -1)
    return _fetch_all(ledger, ids)


def queue_depths(ledger: Ledger) -> dict[Role, int]:
    """Pending items per role (one ZCARD each, in one round trip)."""
    pipe = ledger.client.pipeline(transaction=False)
    for role in Role:
        pipe.zcard(ledger.keys.ready(role))
    return dict(zip(Role, ledger.read(pipe.execute), strict=True))


def events(
    ledger: Ledger, start: datetime, end: datetime, kinds: Iterable[EventKind] | None = None
) -> list[Event]:
    """The stream's events in [start, end), oldest first, optionally only of ``kinds``."""
    wanted = None if kinds is None else {EventKind(k) for k in kinds}
    found: list[Event] = []
    low, high = f"{_ms(start)}-0", f"{_ms(end) - 1}-18446744073709551615"
    while True:
        entries = ledger.read(ledger.client.xrange, ledger.keys.events, low, high, PAGE)
        for eid, fields in entries:
            event = codec.event_from_entry(eid, fields)
            if wanted is None or event.event in wanted:
                found.append(event)
        if len(entries) < PAGE:
            return found
        low = f"({entries[-1][0]}"
