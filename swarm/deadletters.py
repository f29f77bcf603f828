"""Dead-lettered broker messages: messages a worker acknowledged without running, because they were
no well-formed call of a swarm task (``workers/poison.py`` decides).

One dead letter is written in one transaction: a ``dead_lettered`` event in the ledger's event
stream (``detail`` names the reason), one more in the metrics hash's ``dead_letters:<reason>``
counter (``swarm_dead_letters_total{reason}``), and the message itself, truncated, at the head of
the capped list ``Keys.dead_letters`` for inspection. ``swarm health`` reports the dead letters
recorded since the last acknowledgement (``acknowledge``), as it does dead items.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from swarm.ledger import Ledger
from swarm.models import EventKind

KEPT = 1_000  # dead letters kept in the list; the counters and events count every one
DETAIL_CHARS = 500  # of each reason's detail, in the event and the copy
RAW_KEPT_CHARS = 8_192  # of each message's raw text: enough to see what it was, never a huge body
COUNTER_PREFIX = "dead_letters:"  # metrics hash field ``dead_letters:<reason>``


class DeadLetterReason(StrEnum):
    """Why a message was dead-lettered: a small fixed set, the counter's ``reason`` label."""

    ENVELOPE = "envelope"  # a queue item that is no kombu message at all (not delivered, dropped)
    CONTENT_TYPE = "content_type"  # not JSON (pickle stays refused), or not UTF-8
    TOO_LARGE = "too_large"  # a body larger than any swarm task call
    NOT_JSON = "not_json"  # a body that does not parse
    HEADERS = "headers"  # a missing, or wrongly typed, protocol-2 header
    UNKNOWN_TASK = "unknown_task"  # a task name no swarm worker runs
    BODY = "body"  # not ``[args, kwargs, embed]`` of the right types
    ARGS = "args"  # the task's arguments are not what it takes
    EMBED = "embed"  # callbacks, errbacks, chains or chords: swarm sends none
    REFUSED = "refused"  # passed the checks, yet Celery could not take it as a task


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message set aside: why, and what it was."""

    reason: DeadLetterReason
    detail: str  # what exactly was wrong, for a human
    queue: str | None  # where it was delivered from (its routing key)
    task: str | None  # its ``task`` header, when it was a string
    message_id: str | None  # its ``id`` header, when it was a string
    raw: str  # the message as delivered (headers, properties, body), truncated

    def as_json(self) -> str:
        fields = {**asdict(self), "detail": self.detail[:DETAIL_CHARS], "raw": self.raw[:RAW_KEPT_CHARS]}
        return json.dumps(fields, sort_keys=True)


def record(ledger: Ledger, letter: DeadLetter) -> None:
    """Writes one dead letter: its event, its counter and its copy, in one transaction."""
    keys = ledger.keys
    pipe = ledger.client.pipeline(transaction=True)
    event: dict[Any, Any] = {
        "event": EventKind.DEAD_LETTERED.value,
        "detail": f"{letter.reason.value}: {letter.detail[:DETAIL_CHARS]}",
    }
    pipe.xadd(keys.events, event, maxlen=ledger.settings.events_max_len, approximate=True)
    pipe.hincrby(keys.metrics, COUNTER_PREFIX + letter.reason.value, 1)
    pipe.lpush(keys.dead_letters, letter.as_json())
    pipe.ltrim(keys.dead_letters, 0, KEPT - 1)
    ledger.read(pipe.execute)


def counts(metrics_fields: Mapping[str, str]) -> dict[str, int]:
    """Dead letters per reason, from the metrics hash's fields."""
    return {
        name.removeprefix(COUNTER_PREFIX): int(value)
        for name, value in metrics_fields.items()
        if name.startswith(COUNTER_PREFIX)
    }


def total(ledger: Ledger) -> int:
    """Every dead letter ever recorded in this namespace."""
    fields: dict[str, str] = ledger.read(ledger.client.hgetall, ledger.keys.metrics)
    return sum(counts(fields).values())


def recent(ledger: Ledger, count: int = 10) -> list[dict[str, str | None]]:
    """The newest ``count`` dead letters kept, newest first."""
    entries: list[str] = ledger.read(ledger.client.lrange, ledger.keys.dead_letters, 0, count - 1)
    return [json.loads(entry) for entry in entries]


def acknowledge(ledger: Ledger) -> int:
    """Records every dead letter so far as seen; returns how many that is."""
    seen = total(ledger)
    seconds, micros = ledger.read(ledger.client.time)
    at_ms = int(seconds) * 1000 + int(micros) // 1000
    ledger.read(ledger.client.hset, ledger.keys.health_dead_letters_ack, mapping={"count": seen, "at": at_ms})
    return seen


def unacknowledged(ledger: Ledger) -> int:
    """How many dead letters were recorded since the last ``acknowledge``."""
    acked = ledger.read(ledger.client.hget, ledger.keys.health_dead_letters_ack, "count")
    return max(0, total(ledger) - int(acked or 0))
