"""What the ledger hands to senders: a queue message's needs, and a completed stage's next step."""

from __future__ import annotations

from dataclasses import dataclass

from swarm.models import Priority, Role, WorkItem


@dataclass(frozen=True)
class Dispatch:
    """What sending an item's queue message needs; ``fence`` is the item's when it was read.

    ``traceparent`` is the item's (the span that submitted its work, when tracing was on): the
    message is sent in that trace (``swarm.tracing.item_context``).
    """

    work_id: str
    type: str
    role: Role
    priority: Priority
    fence: int | None = None
    traceparent: str | None = None

    @classmethod
    def of(cls, item: WorkItem) -> Dispatch:
        return cls(item.id, item.type, item.role, item.priority, item.fence, item.traceparent)


@dataclass(frozen=True)
class Handoff:
    """Where a completed workflow stage goes next."""

    role: Role | str
    stage: str
    loops: int = 0
