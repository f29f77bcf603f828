"""The ledger's side of delivery: an item is owed a queue message from the moment it is pending
until an agent claims it (README, "Nothing waits on a lost message").

- The outbox holds owed items whose message is not known to be sent: ``due_dispatches`` hands
  each due entry to one sweeper, ``dispatched`` confirms a send.
- A confirmed send moves the item to its role's sent set, where it stays until a claim.
- ``claim_delivery`` is a worker's claim for a message: the role's most urgent, longest-owed
  sent item (normally the message's own), so that any message of a role stands in for any other
  and a lost message delays no item.
- ``redeliver`` compares the sent set with what the caller saw in the broker and puts back the
  messages the broker lost.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from swarm import codec, validation
from swarm.errors import BadInput
from swarm.models import Priority, Role, WorkItem
from swarm.queries import LedgerQueries
from swarm.routing import Dispatch
from swarm.scripts import Scripts

DISPATCH_BATCH = 200  # outbox entries taken per sweep; the rest wait for the next sweep
REDELIVER_BATCH = 500  # lost messages re-sent per role and pass; the rest wait for the next pass
SENT_RANK_SPAN_MS = 2**42  # _lib.lua: a sent set's score is rank * this + the send time (ms)


def _handled_types(handles: Collection[str] | None) -> list[str]:
    """``claim_delivery.lua``'s type filter: the types, sorted, or nothing for any type."""
    if isinstance(handles, str):
        raise BadInput("handles must be a collection of work types, not one string")
    if handles is None or "*" in handles:
        return []
    if not handles:
        raise BadInput("handles must name at least one work type (None: any)")
    return sorted({validation.work_type(t) for t in handles})


def _dispatches(flat: Sequence[str]) -> list[Dispatch]:
    return [
        Dispatch(wid, wtype, Role(role), Priority(prio), int(fence) if fence else None, parent or None)
        for wid, fence, wtype, role, prio, parent in zip(*[iter(flat)] * 6, strict=True)
    ]


class LedgerDeliveries(LedgerQueries):
    """Delivery bookkeeping over one ledger namespace; ``Ledger`` provides the script calls."""

    _scripts: Scripts
    _script_keys: list[str]
    _common_argv: list[str | int]

    def _call(self, script: str, *args: str | int, agent: str | None = None) -> list[Any]:
        raise NotImplementedError  # Ledger._call

    def _lease(self, seconds: float | None) -> int:
        raise NotImplementedError  # Ledger._lease

    def due_dispatches(self, limit: int = DISPATCH_BATCH) -> list[Dispatch]:
        """Takes the outbox's due entries: pending items whose queue message must be sent (again).

        Each taken entry is held for the dispatch grace, so concurrent sweepers do not send it
        twice; confirm each send with ``dispatched``, or it is taken again after the grace.
        """
        return _dispatches(self._call("dispatch_due", validation.positive_int(limit, "limit"))[1])

    def dispatched(self, dispatch: Dispatch) -> bool:
        """Confirms that ``dispatch`` was sent: its outbox entry goes (unless the item moved on),
        and the item stays owed, in its role's sent set, until an agent claims it."""
        fence = "" if dispatch.fence is None else str(dispatch.fence)
        return bool(self._call("dispatched", validation.work_id(dispatch.work_id), fence)[1])

    def claim_delivery(
        self,
        work_id: str,
        agent_id: str,
        role: Role | str,
        *,
        lease_seconds: float | None = None,
        delivery_id: str | None = None,
        handles: Collection[str] | None = None,
    ) -> WorkItem:
        """Claims for a queue message of ``role`` naming ``work_id``: the role's most urgent,
        longest-owed item, which is normally the message's own (``claim_delivery.lua`` says when
        it is not); with nothing to claim, the named item's refusal (``ClaimConflict``,
        ``InvalidTransition``, ``NotFound``; ``Misrouted`` when it is of another role,
        ``Unhandled`` when its type is not in ``handles``).

        Items filed for manual claims, and items in a retry's backoff, are not claimed this way.
        ``delivery_id`` (the message's task id) makes the claim idempotent: the same delivery by
        the same agent within the lease gets back the item it claimed (a lost reply, a retry).
        ``handles`` (default: any) are the work types the claimer has handlers for; an item of
        another type is not claimed, and stays owed to a worker that has one.
        """
        wid, agent = validation.work_id(work_id), validation.agent_id(agent_id)
        checked_role = validation.enum_value(Role, role, "role").value
        delivery = validation.note(delivery_id or "")
        types = _handled_types(handles)
        reply = self._call(
            "claim_delivery", wid, agent, self._lease(lease_seconds), checked_role, delivery, *types,
            agent=agent,
        )  # fmt: skip
        return codec.item_from_hash(codec.pairs(reply[1]))

    def redeliver(
        self,
        role: Role | str,
        *,
        seen_ms: int,
        queued: int,
        hold_ms: int = 0,
        limit: int = REDELIVER_BATCH,
    ) -> tuple[int, list[Dispatch]]:
        """Puts back the messages of ``role`` that the broker lost; returns how many were missing,
        and what to send (no confirmation needed: a send that never happens is missing again at
        the next pass).

        ``seen_ms`` (Redis server time) and ``queued`` are one atomic observation of the broker:
        the messages waiting in the role's queues. At most ``limit`` are sent, and a re-send
        holds off other passes for the role for ``hold_ms``. ``redeliver.lua`` explains the
        arithmetic.
        """
        checked = validation.enum_value(Role, role, "role")
        return self.redeliver_roles({checked: (queued, limit)}, seen_ms=seen_ms, hold_ms=hold_ms)[checked]

    def redeliver_roles(
        self, roles: Mapping[Role, tuple[int, int]], *, seen_ms: int, hold_ms: int = 0
    ) -> dict[Role, tuple[int, list[Dispatch]]]:
        """``redeliver`` for several roles, each given as ``(queued, limit)``, in one round trip."""
        seen, hold = validation.count(seen_ms, "seen_ms"), validation.count(hold_ms, "hold_ms")
        checked = {
            validation.enum_value(Role, role, "role"): (
                validation.count(queued, "queued"),
                min(validation.count(limit, "limit"), REDELIVER_BATCH),
            )
            for role, (queued, limit) in roles.items()
        }
        pipe = self.client.pipeline(transaction=False)
        script = self._scripts["redeliver"]
        for role, (queued, limit) in checked.items():
            script(
                self._script_keys, [*self._common_argv, role.value, seen, queued, hold, limit], client=pipe
            )
        replies: list[list[Any]] = self._read(pipe.execute)
        return {
            role: (int(reply[1]), _dispatches(reply[2])) for role, reply in zip(checked, replies, strict=True)
        }
