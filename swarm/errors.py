"""Typed errors, each with the stable CLI exit code of SPEC §6."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swarm.models import WorkItem


class SwarmError(Exception):
    """Base of every error the swarm raises on purpose."""

    exit_code = 1


class BadInput(SwarmError, ValueError):
    """The request was refused before anything was written."""

    exit_code = 2


class AlreadyExists(BadInput):
    """An item with the id given to ``submit`` exists already (nothing was written)."""


class ClaimConflict(SwarmError):
    """Another agent holds the item."""

    exit_code = 3

    def __init__(self, work_id: str, holder: str | None, detail: str = "") -> None:
        self.work_id = work_id
        self.holder = holder
        held = f"is held by {holder}" if holder else "is not claimable"
        super().__init__(f"{work_id} {held}{detail}")


class NotFound(SwarmError, LookupError):
    """No such work item or agent."""

    exit_code = 4


class NotOwner(SwarmError):
    """The caller does not hold the item's claim."""

    exit_code = 5

    def __init__(self, message: str, holder: str | None = None) -> None:
        self.holder = holder
        super().__init__(message)


class LeaseLost(NotOwner):
    """The caller held the item, but its lease expired or a newer claim superseded it."""


class InvalidTransition(SwarmError):
    """The item's status does not allow the operation (e.g. completing a completed item)."""

    exit_code = 6

    def __init__(self, message: str = "", *, status: str | None = None) -> None:
        self.status = status  # the item's status, when the ledger said it
        super().__init__(message)


class WaitTimeout(SwarmError, TimeoutError):
    """``wait`` ran out of time before the item (or its workflow's last stage) finished;
    ``item`` is where it stood."""

    exit_code = 11

    def __init__(self, message: str, item: WorkItem) -> None:
        self.item = item
        super().__init__(message)


class RedisUnavailable(SwarmError, ConnectionError):
    """Redis could not be reached; the message names the URL without its password."""

    exit_code = 7


class Misrouted(InvalidTransition):
    """A queue message of one role named an item of another role: nothing was claimed.

    ``role``, ``priority`` and ``type`` are the item's own: where its message belongs."""

    def __init__(self, work_id: str, role: str, priority: str, type: str, message_role: str) -> None:
        self.work_id, self.role, self.priority, self.type = work_id, role, priority, type
        super().__init__(f"{work_id} is a {role} item, not {message_role}: nothing was claimed")


class Unhandled(InvalidTransition):
    """The claimer has no handler for the item's type (nor for any other item its role is owed):
    nothing was claimed, and the item is left for a worker that has one."""

    def __init__(self, work_id: str, type: str, role: str) -> None:
        self.work_id, self.type, self.role = work_id, type, role
        super().__init__(f"no handler for type {type!r} on role {role} here; {work_id} is left for others")
