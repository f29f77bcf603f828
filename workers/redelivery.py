"""The redelivery pass: finds queue messages the broker lost and has the ledger put them back.

kombu's Redis transport pops a message (BRPOP) and only then writes its ``unacked`` copy, from
the client: a consumer killed in between loses the message outright, and one killed just after
leaves it parked in ``unacked`` until the visibility timeout (an hour by default). A revoked
message is dropped by the worker that takes it. Either way the ledger still owes the item a
delivery: it stays in its role's sent set until an agent claims it, and any message of the role
claims the role's most urgent owed item (``Ledger.claim_delivery``), so the item is taken by the
next message of its role. What a loss leaves behind is one message too few for the role's owed
items, which this pass puts right.

Each pass observes the broker in one atomic step (MULTI): the Redis clock and the length of each
of the role's queues, with kombu's priority sub-queues (``Keys.broker_lists``, under the
namespace's kombu key prefix). ``Ledger.redeliver`` counts the owed items that no queued message
covers, and sends that many messages, but never more than every pass of the last in-flight
window also found missing: a message on its way from a consumer's pop to its claim looks missing
for a moment, a lost one for good. A lost message is so replaced about one in-flight window
(``in_flight_seconds``: the larger of 2 s and the pass interval) plus one pass
(``redeliver_interval``, lease / 4, at most 5 s) after it was lost. Every worker runs the pass
(``UpkeepThread``); a re-send holds off the other workers' passes for the role for one interval,
by which time the new messages are there to be counted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import structlog

from swarm.celery_app import role_queues
from swarm.ledger import Dispatch, Ledger
from swarm.models import Role

log = structlog.get_logger("swarm.redelivery")

Send = Callable[[Dispatch], None]


class Redelivery:
    """The pass for one ledger namespace, remembering what each role lacked at recent passes."""

    def __init__(self, ledger: Ledger, send: Send, clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.send = send
        self.clock = clock
        settings = ledger.settings
        keys = ledger.keys
        self.lists = {
            r: [key for queue in role_queues(settings, r) for key in keys.broker_lists(queue)] for r in Role
        }
        self.window_s = settings.in_flight_seconds
        self.hold_s = settings.redeliver_interval_seconds
        self._seen: dict[Role, deque[tuple[float, int]]] = {role: deque() for role in Role}

    def observe(self) -> tuple[int, dict[Role, int]]:
        """The Redis clock (ms) and the messages waiting in each role's queues, in one step."""
        pipe = self.ledger.client.pipeline(transaction=True)
        pipe.time()
        for role in Role:
            for key in self.lists[role]:
                pipe.llen(key)
        reply = iter(self.ledger.read(pipe.execute))
        seconds, micros = next(reply)
        queued = {role: sum(int(next(reply)) for _ in self.lists[role]) for role in Role}
        return int(seconds) * 1000 + int(micros) // 1000, queued

    def _limit(self, role: Role, now: float) -> int:
        """The least shortfall seen by the passes that span the last in-flight window: the newest
        pass at least a window old and every later one (0 until such a pass exists)."""
        seen = self._seen[role]
        while len(seen) > 1 and seen[1][0] <= now - self.window_s:
            seen.popleft()
        if not seen or seen[0][0] > now - self.window_s:
            return 0
        return max(0, min(missing for _, missing in seen))

    def run_once(self) -> int:
        """One pass over every role; returns how many messages were sent."""
        seen_ms, queued = self.observe()
        now = self.clock()
        results = self.ledger.redeliver_roles(
            {role: (queued[role], self._limit(role, now)) for role in Role},
            seen_ms=seen_ms,
            hold_ms=round(self.hold_s * 1000),
        )
        sent = 0
        for role, (missing, due) in results.items():
            self._seen[role].append((now, missing))
            for dispatch in due:
                self.send(dispatch)
                log.warning("redelivered", work_id=dispatch.work_id, role=role.value, missing=missing)
            sent += len(due)
        return sent
