"""Revoke means cancel: Celery's own ``control.revoke`` of a swarm task, queued or running, cancels
its item in the ledger, and ``swarm health`` does not blame the workers for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery.signals import after_task_publish

from swarm import Settings, Status, Swarm
from swarm.celery_app import EXECUTE_TASK, create_app
from swarm.health import check_health
from swarm.models import EventKind, WorkItem

from .polling import wait_until
from .workers_harness import item_events, running_worker

pytestmark = pytest.mark.integration

LEASE_S = 3.0  # heartbeats every second: a running handler sees its cancel within about one
REPLY_TIMEOUT_S = 10.0  # the worker's answer to the revoke broadcast, on a loaded machine
DEADLINE_S = 30.0


@contextmanager
def published_task_ids() -> Iterator[dict[str, str]]:
    """The task id of every execute message this process publishes, by work id."""
    ids: dict[str, str] = {}

    def record(sender: Any = None, headers: Any = None, body: Any = None, **_: Any) -> None:
        if sender == EXECUTE_TASK and headers and body:
            ids[body[0][0]] = headers["id"]

    after_task_publish.connect(record, weak=False)
    try:
        yield ids
    finally:
        after_task_publish.disconnect(record)


def revoked_by(item: WorkItem, client: Swarm, task_id: str) -> bool:
    return any(e.detail == f"revoked: Celery task {task_id}" for e in item_events(client.ledger, item.id))


def test_celerys_revoke_cancels_a_running_and_a_queued_swarm_task(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    client = Swarm(redis_url, agent_id="pm-1", settings=settings)
    app = create_app(settings, redis_url)
    env = {"SWARM_LEASE_SECONDS": str(LEASE_S)}
    with (
        published_task_ids() as task_ids,
        running_worker(redis_url, prefix, "qa", tmp_path / "qa.log", "-c", "1", env=env),
    ):
        running = client.submit("review", "runs until revoked", role="qa", payload={"duration_s": 60})
        wait_until(lambda: client.get(running.id).status.held, "the item to run")
        queued = client.submit("review", "queued behind it: one slot", role="qa")

        replies = app.control.revoke(task_ids[queued.id], reply=True, timeout=REPLY_TIMEOUT_S)
        assert replies, "the worker heard the revoke"
        assert client.get(queued.id).status is Status.PENDING, "cancelled when a worker takes its message"

        replies = app.control.revoke(task_ids[running.id], reply=True, timeout=REPLY_TIMEOUT_S)
        assert replies
        for item, what in ((running, "the running item to stop"), (queued, "the queued item's message")):
            wait_until(lambda item=item: client.get(item.id).status is Status.CANCELLED, what, DEADLINE_S)

        assert revoked_by(running, client, task_ids[running.id])
        assert revoked_by(queued, client, task_ids[queued.id])
        kinds = [e.event for e in item_events(client.ledger, queued.id)]
        assert kinds == [EventKind.SUBMITTED, EventKind.CANCELLED], "never claimed"
        health = check_health(client.ledger)
        assert health.check("consuming:qa").ok, health.check("consuming:qa").reason
    client.close()
