"""Enqueueing: one Celery message per item, on its role's queue for its priority."""

from __future__ import annotations

from celery import Celery

from swarm.celery_app import EXECUTE_TASK, create_app, queue_name
from swarm.models import WorkItem
from swarm.settings import Settings


def enqueue(app: Celery, settings: Settings, item: WorkItem, *, countdown: float | None = None) -> None:
    """Sends the execute task for ``item``; Flower shows its id, type and role as the arguments."""
    app.send_task(
        EXECUTE_TASK,
        args=[item.id, item.type, item.role.value],
        queue=queue_name(settings, item.role, item.priority),
        countdown=countdown,
    )


class Dispatcher:
    """Enqueues items on a broker, creating its Celery app on first use (producers stay light)."""

    def __init__(self, settings: Settings, broker_url: str) -> None:
        self.settings = settings
        self.broker_url = broker_url
        self._app: Celery | None = None

    def __call__(self, item: WorkItem, *, countdown: float | None = None) -> None:
        if self._app is None:
            self._app = create_app(self.settings, self.broker_url)
        enqueue(self._app, self.settings, item, countdown=countdown)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
