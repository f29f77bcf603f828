"""The worker's poison-message guard: a Celery consumer that dead-letters what is no swarm task call.

Celery's ``Consumer.create_task_handler`` returns ``on_task_received``, the function the task
consumer calls with every message, in the worker's main process, before any strategy or pool sees
it. ``GuardedConsumer`` wraps it: each message is first checked by ``workers.poison``; one that
fails is recorded
(``swarm.deadletters``) and acknowledged, so that it neither stops the worker nor comes back.
Anything Celery itself still raises on a message that passed (other than a lost connection,
which must reach Celery's reconnect) dead-letters the message too, as ``refused``. A queue item
that is no kombu message at all never reaches Celery: the guarded transport drops it and this
guard records it (``envelope``).

``install`` selects it through Celery's ``worker_consumer`` setting, and the guarded Redis
transport (``swarm/broker_transport.py``: a Redis restart with unacked messages in flight) through
``broker_transport``: the worker's two guards on what its broker connection brings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from celery import Celery
from celery.worker.consumer import Consumer
from kombu.message import Message
from vine import promise

from swarm import deadletters
from swarm.broker_transport import on_undeliverable, transport_for
from swarm.deadletters import DeadLetter, DeadLetterReason
from swarm.errors import SwarmError
from swarm.ledger import Ledger
from workers.poison import Refusal, inspect_message

log = structlog.get_logger("swarm.poison")


class PoisonGuard:
    """Checks and dead-letters messages for one consumer; the ledger is opened on first use."""

    def __init__(self, ledger_for: Callable[[], Ledger]) -> None:
        self._ledger_for = ledger_for
        self._ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = self._ledger_for()
        return self._ledger

    def admit(self, message: Message) -> bool:
        """True for a well-formed call; otherwise dead-letters the message (False). An execute call
        for an item the ledger does not have is well-formed: it stands in for its role, claiming
        the role's most urgent owed item (``claim_delivery.lua``)."""
        verdict = inspect_message(
            message.content_type, message.content_encoding, message.headers, message.body
        )
        if isinstance(verdict, Refusal):
            self.dead_letter(message, verdict)
            return False
        return True

    def dead_letter(self, message: Message, refusal: Refusal) -> None:
        """Records the message, then acknowledges it (a connection error propagates: Celery
        reconnects, the message comes back and is dead-lettered then)."""
        headers = message.headers if isinstance(message.headers, dict) else {}
        task, message_id = headers.get("task"), headers.get("id")
        letter = DeadLetter(
            reason=refusal.reason,
            detail=refusal.detail,
            queue=(message.delivery_info or {}).get("routing_key"),
            task=task if isinstance(task, str) else None,
            message_id=message_id if isinstance(message_id, str) else None,
            raw=_raw(message),
        )
        self._record(letter)
        if not message.acknowledged:
            message.ack()

    def undeliverable(self, queue: str, item: bytes, why: str) -> None:
        """A queue item that is no kombu message (``swarm/broker_transport.py``): it is already off
        the queue and was never delivered, so it is only recorded."""
        raw = item.decode("utf-8", "replace")
        self._record(DeadLetter(DeadLetterReason.ENVELOPE, why, queue, task=None, message_id=None, raw=raw))

    def _record(self, letter: DeadLetter) -> None:
        reason = letter.reason.value
        log.error("dead_lettered", reason=reason, detail=letter.detail, queue=letter.queue, task=letter.task)
        try:
            deadletters.record(self.ledger, letter)
        except SwarmError as exc:
            log.error("dead_letter_not_recorded", reason=reason, error=str(exc), raw=letter.raw)


def _raw(message: Message) -> str:
    body = message.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    raw = {
        "headers": message.headers,
        "properties": message.properties,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "body": text[: deadletters.RAW_KEPT_CHARS],
    }
    return json.dumps(raw, default=repr)


class GuardedConsumer(Consumer):
    """Celery's consumer, with every task message checked by a ``PoisonGuard`` first."""

    ledger_for: Callable[[], Ledger]  # set by ``install``

    _guard: PoisonGuard | None = None

    @property
    def guard(self) -> PoisonGuard:
        if self._guard is None:
            self._guard = PoisonGuard(self.ledger_for)
            on_undeliverable(self._guard.undeliverable)
        return self._guard

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """kombu could not decode the message (e.g. a bad ``compression`` header): Celery's own
        handler acks it; this one dead-letters it."""
        self.guard.dead_letter(message, Refusal(DeadLetterReason.BODY, f"kombu cannot decode it: {exc!r}"))

    def create_task_handler(self, promise: Any = promise) -> Callable[[Message], Any]:
        handle: Callable[[Message], Any] = super().create_task_handler(promise)
        guard = self.guard
        connection_errors: tuple[type[BaseException], ...] = tuple(getattr(self, "connection_errors", ()))

        def on_task_received(message: Message) -> Any:
            try:
                return handle(message) if guard.admit(message) else None
            except connection_errors:
                raise
            except Exception as exc:  # no message shape may stop the worker
                guard.dead_letter(message, Refusal(DeadLetterReason.REFUSED, f"{type(exc).__name__}: {exc}"))
                return None

        return on_task_received


def install(app: Celery, ledger_for: Callable[[], Ledger]) -> None:
    """Makes ``app``'s workers consume through a ``GuardedConsumer`` writing to ``ledger_for()``,
    on the guarded Redis transport."""

    class _Consumer(GuardedConsumer):
        pass

    _Consumer.ledger_for = staticmethod(ledger_for)
    app.conf.worker_consumer = _Consumer
    app.conf.broker_transport = transport_for(str(app.conf.broker_url))
