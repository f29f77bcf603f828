"""The redelivery pass: finds queue messages the broker lost and has the ledger put them back.

kombu's Redis transport pops a message (BRPOP) and only then writes its ``unacked`` copy, from
the client: a consumer killed in between loses the message outright, and one killed just after
leaves it parked in ``unacked`` until the visibility timeout (an hour by default). Either way the
ledger still owes the item a delivery: it stays in its role's sent set until an agent claims it,
and any message of the role claims the role's most urgent owed item (``Ledger.claim_delivery``),
so the item is taken by the next message of its role. What the loss leaves behind is one
message too few for the role's owed items, which this pass puts right.

Each pass observes the broker in one atomic step (MULTI): the Redis clock, the length of each of
the role's queues (with kombu's priority sub-queues), and the messages consumers took within the
in-flight window (``unacked_index``, scored by kombu with the taking host's clock). Their work ids
are read from the ``unacked`` copies. ``Ledger.redeliver`` then counts the owed items that
neither a queued nor an in-flight message covers, and sends that many messages, but never more
than the previous pass also found missing: a message seen in the instant between a pop and its
``unacked`` write is not taken for a lost one. A lost message is so replaced two passes after it
was lost (``redeliver_interval``, lease / 4 by default), or one in-flight window later if it was
parked. Every worker runs the pass (``UpkeepThread``); a re-send holds off the other workers'
passes for the role for one interval, by which time the new messages are there to be counted.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from swarm.celery_app import EXECUTE_TASK, broker_transport_options, role_queues
from swarm.ledger import Dispatch, Ledger
from swarm.models import Role

log = structlog.get_logger("swarm.redelivery")

KOMBU_PRIORITY_SEP = "\x06\x16"  # kombu.transport.redis.Channel.sep
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)  # kombu.transport.redis.PRIORITY_STEPS: 0 is the queue itself
UNACKED_KEY, UNACKED_INDEX_KEY = "unacked", "unacked_index"  # kombu's defaults

Send = Callable[[Dispatch], None]


@dataclass(frozen=True)
class Observation:
    """One atomic look at the broker."""

    seen_ms: int  # Redis server time
    queued: dict[Role, int]  # messages waiting in each role's queues
    in_flight: dict[Role, list[str]]  # work ids of messages taken within the in-flight window


def _sub_queues(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{KOMBU_PRIORITY_SEP}{step}" for step in KOMBU_PRIORITY_STEPS]


def execute_work_id(raw: str) -> tuple[str, str] | None:
    """The routing key and work id of one ``unacked`` entry (``[envelope, exchange, routing_key]``)
    holding a ``swarm.execute`` message; None for anything else."""
    try:
        envelope, _exchange, routing_key = json.loads(raw)
        if envelope.get("headers", {}).get("task") != EXECUTE_TASK:
            return None
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        work_id = args[0]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, binascii.Error):
        return None
    if not isinstance(work_id, str) or not isinstance(routing_key, str):
        return None
    return routing_key, work_id


class Redelivery:
    """The pass for one ledger namespace, with the shortfall each role showed at the last pass."""

    def __init__(self, ledger: Ledger, send: Send) -> None:
        self.ledger = ledger
        self.send = send
        settings = ledger.settings
        options: Mapping[str, object] = broker_transport_options(settings)
        self.unacked_key = str(options.get("unacked_key", UNACKED_KEY))
        self.unacked_index_key = str(options.get("unacked_index_key", UNACKED_INDEX_KEY))
        self.queues = {r: [q for queue in role_queues(settings, r) for q in _sub_queues(queue)] for r in Role}
        self.role_of_queue = {queue: role for role in Role for queue in role_queues(settings, role)}
        self.window_s = settings.in_flight_seconds
        self.hold_s = settings.redeliver_interval_seconds
        self._missing: dict[Role, int] = dict.fromkeys(Role, 0)

    def observe(self) -> Observation:
        client = self.ledger.client
        pipe = client.pipeline(transaction=True)
        pipe.time()
        for role in Role:
            for queue in self.queues[role]:
                pipe.llen(queue)
        pipe.zrangebyscore(self.unacked_index_key, time.time() - self.window_s, "+inf")
        reply = iter(self.ledger.read(pipe.execute))
        seconds, micros = next(reply)
        queued = {role: sum(int(next(reply)) for _ in self.queues[role]) for role in Role}
        tags: list[str] = next(reply)
        in_flight: dict[Role, list[str]] = {role: [] for role in Role}
        if tags:
            for raw in self.ledger.read(client.hmget, self.unacked_key, tags):
                found = execute_work_id(raw) if raw else None
                if found is not None and found[0] in self.role_of_queue:
                    in_flight[self.role_of_queue[found[0]]].append(found[1])
        return Observation(int(seconds) * 1000 + int(micros) // 1000, queued, in_flight)

    def run_once(self) -> int:
        """One pass over every role; returns how many messages were re-sent."""
        seen = self.observe()
        resent = 0
        for role in Role:
            missing, due = self.ledger.redeliver(
                role,
                seen_ms=seen.seen_ms,
                queued=seen.queued[role],
                in_flight=seen.in_flight[role],
                hold_ms=round(self.hold_s * 1000),
                limit=self._missing[role],
            )
            self._missing[role] = max(0, missing)
            for dispatch in due:
                self.send(dispatch)
                log.warning("redelivered", work_id=dispatch.work_id, role=role.value, missing=missing)
            resent += len(due)
        return resent
