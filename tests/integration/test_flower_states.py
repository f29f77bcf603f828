"""Flower tells the truth: each ``swarm.execute`` task ends in the state of its item's outcome, and
for a known run Flower's counts per state (its own HTTP API) agree with the ledger's."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from swarm import Settings, Status, Swarm, deadletters
from swarm.celery_app import create_app
from swarm.embedded import free_port
from swarm.models import EventKind, WorkItem

from .polling import wait_until
from .test_flower import START_DEADLINE_S, get, running_flower
from .workers_harness import item_events, running_worker

pytestmark = pytest.mark.integration

LEASE_S = 4.0  # heartbeats every 4/3 s, so a running item sees its cancel within about a second
RESUBMIT_EVERY_S = 2.0  # a probe run before Flower switched task events on shows nothing: another
RUN_DEADLINE_S = 60.0
TASKS_SHOWN = 1000  # more than the test makes: Flower's API lists every one


def flower_tasks(port: int) -> dict[str, dict[str, Any]]:
    try:
        status, body = get(f"http://127.0.0.1:{port}/api/tasks?limit={TASKS_SHOWN}")
    except OSError:
        return {}
    return dict(json.loads(body)) if status == 200 else {}


def tasks_of(port: int, items: list[WorkItem]) -> list[dict[str, Any]]:
    """Flower's execute tasks whose arguments name one of ``items``."""
    ids = {item.id for item in items}
    return [
        task
        for task in flower_tasks(port).values()
        if task.get("name") == "swarm.execute" and any(wid in str(task.get("args")) for wid in ids)
    ]


def ledger_counts(client: Swarm, items: list[WorkItem]) -> Counter[str]:
    """The ledger's side, in Flower's states: completed, failed or dead, retried, cancelled."""
    counts: Counter[str] = Counter()
    for item in items:
        status = client.get(item.id).status
        counts[
            {Status.COMPLETED: "SUCCESS", Status.FAILED: "FAILURE", Status.DEAD: "FAILURE"}.get(
                status, "REVOKED" if status is Status.CANCELLED else status.value
            )
        ] += 1
        retried = [
            e
            for e in item_events(client.ledger, item.id)
            if e.event is EventKind.FAILED and e.status == Status.PENDING.value
        ]
        counts["RETRY"] += len(retried)
    return counts


def switch_on_task_events(client: Swarm, port: int, roles: tuple[str, ...]) -> None:
    """Flower switches the workers' task events on at its start: until a probe of every role shows
    up in Flower, send another. Waits for every probe to finish, so none mixes with the run."""
    probes: list[WorkItem] = []
    for role in roles:
        sent: list[float] = []
        mine: list[WorkItem] = []

        def seen(role: str = role, sent: list[float] = sent, mine: list[WorkItem] = mine) -> bool:
            if not sent or time.monotonic() - sent[-1] > RESUBMIT_EVERY_S:
                mine.append(client.submit("task", "probe", role=role))
                sent.append(time.monotonic())
            return any(t.get("state") == "SUCCESS" for t in tasks_of(port, mine))

        wait_until(seen, f"Flower to show a {role} task", START_DEADLINE_S)
        probes += mine
    wait_until(
        lambda: all(client.get(p.id).status is Status.COMPLETED for p in probes), "every probe to finish"
    )


def test_flowers_task_states_agree_with_the_ledger_for_a_known_run(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    settings = Settings(key_prefix=prefix, redis_url=None, max_attempts=2)
    client = Swarm(redis_url, agent_id="pm-1", settings=settings)
    env = {"SWARM_LEASE_SECONDS": str(LEASE_S)}
    with (
        running_worker(redis_url, prefix, "developer", tmp_path / "developer.log", "-c", "1", env=env),
        running_worker(redis_url, prefix, "qa", tmp_path / "qa.log", "-c", "1", env=env),
        running_flower(redis_url, prefix, tmp_path / "flower.log", port),
    ):
        switch_on_task_events(client, port, ("developer", "qa"))

        done = [client.submit("task", f"done {n}", role="developer") for n in range(3)]
        failed = client.submit("task", "fails", role="developer", payload={"fail": "permanent"})
        dead = client.submit("task", "dies", role="developer", payload={"fail": "transient"})
        running = client.submit("task", "cancelled running", role="qa", payload={"duration_s": 60})
        wait_until(lambda: client.get(running.id).status.held, "the qa item to run")
        queued = client.submit("task", "cancelled queued", role="qa")  # behind it: one slot
        assert client.cancel(queued.id).status is Status.CANCELLED
        client.cancel(running.id)
        run = [*done, failed, dead, running, queued]
        expected = Counter({"SUCCESS": 3, "FAILURE": 2, "RETRY": 1, "REVOKED": 2})

        shown: Counter[str] = Counter()

        def flower_agrees() -> bool:
            shown.clear()
            shown.update(t["state"] for t in tasks_of(port, run))
            return shown == expected

        wait_until(
            flower_agrees,
            "Flower's task states for the run",
            RUN_DEADLINE_S,
            explain=lambda: f"Flower: {dict(shown)}, ledger: {dict(ledger_counts(client, run))}",
        )
        assert ledger_counts(client, run) == expected
        failures = {t["exception"] for t in tasks_of(port, [failed, dead]) if t["state"] == "FAILURE"}
        assert failures == {
            f"ItemFailed('failed: {client.get(failed.id).error}')",
            f"ItemFailed('dead: {client.get(dead.id).error} (after 2 of 2 attempts)')",
        }
        (retry,) = [t for t in tasks_of(port, [dead]) if t["state"] == "RETRY"]
        assert (
            "ItemRetried('transient: demo transient failure on developer (attempt 1 of 2;"
            in (retry["exception"])
        )
        assert {t["result"] for t in tasks_of(port, done)} == {"'completed'"}
        # Every state acknowledged its message (acks_late): none waits to be redelivered, and the
        # poison guard took none of them for a bad message.
        wait_until(lambda: unacked(client, settings) == 0, "every message to be acknowledged")
        assert deadletters.unacknowledged(client.ledger) == 0
    client.close()


def unacked(client: Swarm, settings: Settings) -> int:
    """This namespace's messages delivered and not yet acknowledged (kombu's unacked hash, as the
    workers see it; each entry is ``[message, exchange, routing key]``)."""
    app = create_app(settings, client.target.url)
    try:
        with app.connection_for_write() as conn:
            channel: Any = conn.default_channel
            # HVALS is not among the commands kombu prefixes with a global_keyprefix: prefix it here.
            entries = channel.client.hvals(getattr(channel, "global_keyprefix", "") + channel.unacked_key)
    finally:
        app.close()
    return sum(1 for e in entries if str(json.loads(e)[2]).startswith(f"{settings.key_prefix}."))
