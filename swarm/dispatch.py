"""Sending work to its queue: one Celery message per item, confirmed against the ledger's outbox.

An item enters the outbox in the same atomic step that makes it pending. Whoever wrote it sends
the message and confirms (``Ledger.dispatched``); if that never happens, e.g. the process died in
between, a worker's sweep sends it after ``requeue_after_seconds``. A message sent twice is
harmless: the second delivery finds the item claimed or finished and does nothing.

Every message is sent in its item's trace (``tracing.item_context``), so the worker's span
continues the trace the item was submitted in.

Celery is imported with the first message sent: ``swarm submit --claim`` (or ``--no-enqueue``)
sends none and never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarm import tracing
from swarm.ledger import Dispatch, Ledger
from swarm.models import WorkItem

if TYPE_CHECKING:
    from celery import Celery

    from swarm.settings import Settings


def enqueue(app: Celery, settings: Settings, dispatch: Dispatch) -> None:
    """Sends the execute task; Flower shows the item's id, type and role as its arguments."""
    from swarm.celery_app import EXECUTE_TASK, queue_name  # noqa: PLC0415 - see the module's docstring

    with tracing.item_context(dispatch.traceparent):
        app.send_task(
            EXECUTE_TASK,
            args=[dispatch.work_id, dispatch.type, dispatch.role.value],
            queue=queue_name(settings, dispatch.role, dispatch.priority),
        )


def send(app: Celery, ledger: Ledger, work: WorkItem | Dispatch) -> None:
    """Sends ``work``'s message, then confirms it so that no sweep sends it again."""
    dispatch = work if isinstance(work, Dispatch) else Dispatch.of(work)
    enqueue(app, ledger.settings, dispatch)
    ledger.dispatched(dispatch)


class Dispatcher:
    """Sends items for one ledger, creating its Celery app on first use (producers stay light)."""

    def __init__(self, ledger: Ledger, broker_url: str) -> None:
        self.ledger = ledger
        self.broker_url = broker_url
        self._app: Celery | None = None

    def __call__(self, work: WorkItem | Dispatch) -> None:
        if self._app is None:
            from swarm.celery_app import create_app  # noqa: PLC0415 - see the module's docstring

            self._app = create_app(self.ledger.settings, self.broker_url)
        send(self._app, self.ledger, work)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
