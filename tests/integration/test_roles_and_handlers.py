"""No handler is never a failure, and routing is by role wherever a message comes from.

A worker without a handler for an item leaves it untouched (no claim, no attempt) for one that
has, and says so once; ``swarm health`` names the work nobody handles. Celery's router puts an
execute call on its role's queue for ``send_task``, ``delay``, ``apply_async`` and Flower's "send
task"; a worker that takes a message of a role it does not serve sends it on, unclaimed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from swarm import Settings, Status, Swarm
from swarm.celery_app import EXECUTE_TASK, create_app, queue_name
from swarm.embedded import free_port
from swarm.health import check_health
from swarm.ledger import Ledger
from swarm.models import EventKind, Priority, Role, WorkItem

from .polling import wait_until
from .test_flower import START_DEADLINE_S, running_flower
from .workers_harness import READY_TIMEOUT_S, event_kinds, running_worker, task_outcomes

pytestmark = pytest.mark.integration

LEASE_S = 4.0  # the redelivery pass runs every second, so left items are offered again soon
DEADLINE_S = 60.0
NO_HANDLERS = {"SWARM_HANDLER_MODULES": ""}
SHORT_LEASE = {"SWARM_LEASE_SECONDS": str(LEASE_S)}


@contextmanager
def plain_celery_worker(redis_url: str, prefix: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A workers.app worker`` as a Celery user runs it: no ``-Q`` (every queue), no
    handler modules."""
    env = {**os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, **NO_HANDLERS, **SHORT_LEASE}
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-P", "threads", "-c", "1"]
    argv += ["-n", f"plain-{prefix}@%h", "-l", "INFO"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: b" ready." in log.read_bytes() or proc.poll() is not None,
            "the plain celery worker to start",
            READY_TIMEOUT_S,
            explain=lambda: log.read_text(errors="replace"),
        )
        assert proc.poll() is None, log.read_text(errors="replace")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def queued(app: Celery, prefix: str) -> dict[str, int]:
    """The messages waiting in every role queue that holds some (through kombu, as a worker sees)."""
    settings = Settings(key_prefix=prefix, redis_url=None)
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        sizes = {q: int(client.llen(q)) for q in (queue_name(settings, r, p) for r in Role for p in Priority)}
    return {q: n for q, n in sizes.items() if n}


def no_handler_warnings(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "no_handler" in line]


def test_a_worker_without_handlers_leaves_every_roles_items_untouched_and_says_so_once(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    settings = Settings(key_prefix=prefix, redis_url=None, health_consuming_within=1)
    ledger = Ledger.from_url(redis_url, settings)
    log = tmp_path / "plain.log"
    with plain_celery_worker(redis_url, prefix, log):
        items = [
            client.submit("review", "x", role="qa"),
            client.submit("plan", "x", role="pm"),
            client.submit("deploy", "x", role="devops"),
        ]
        # Each message is taken and left; the ledger offers each item again, and it is left again.
        offered_twice = lambda: task_outcomes(log).count("left") >= 2 * len(items)  # noqa: E731
        wait_until(offered_twice, "every item to be offered twice")
        for item in items:
            left = client.get(item.id)
            assert (left.status, left.attempts, left.error) == (Status.PENDING, 0, None)
            assert set(event_kinds(ledger, item.id)) <= {EventKind.SUBMITTED, EventKind.REDELIVERED}
        said = no_handler_warnings(log)
        assert len(said) == len(items), "once per type and role, however often offered"
        assert all(any(f"'{i.type}'" in line or f'"{i.type}"' in line for line in said) for i in items)
        roles = {a.role: a.handles for a in ledger.agents()}
        assert roles == {r: [] for r in Role}, "it serves every role, with no handler for any"

        report = check_health(ledger)
        handlers = report.check("handlers")
        assert not handlers.ok
        assert all(f"'{i.type}' on {i.role.value}" in handlers.reason for i in items), handlers.reason

        with running_worker(redis_url, prefix, "qa", tmp_path / "qa.log", env=SHORT_LEASE):
            done = lambda: client.get(items[0].id).status is Status.COMPLETED  # noqa: E731
            wait_until(done, "a qa worker with a handler to run it", DEADLINE_S)
    assert client.get(items[0].id).attempts == 0
    client.close()


@pytest.mark.parametrize("command", [["worker", "--role", "qa"], ["up", "--no-beat"]])
def test_swarm_worker_and_up_refuse_to_start_without_handler_modules(prefix: str, command: list[str]) -> None:
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "SWARM_KEY_PREFIX": prefix, **NO_HANDLERS}
    done = subprocess.run(
        [sys.executable, "-m", "swarm", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "--handlers" in done.stderr
    assert "--no-handlers" in done.stderr


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return dict(json.loads(response.read()))


def test_execute_calls_from_any_sender_go_to_their_roles_queue(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    client = Swarm(redis_url, agent_id="pm-1", settings=settings)
    app = create_app(settings, redis_url)

    @app.task(name=EXECUTE_TASK)
    def execute_item(work_id: str, work_type: str, role: str) -> None:  # a producer's handle on it
        raise AssertionError("only sent, never run here")

    urgent: WorkItem = client.submit("review", "x", role="qa", priority="critical", enqueue=False)
    plan: WorkItem = client.submit("plan", "x", role="pm", priority="low", enqueue=False)
    qa_queue, pm_queue = queue_name(settings, "qa", "critical"), queue_name(settings, "pm", "low")

    app.send_task(EXECUTE_TASK, args=[urgent.id, "review", "qa"])
    execute_item.delay(urgent.id, "review", "qa")
    execute_item.apply_async(args=[plan.id, "plan", "pm"])
    assert queued(app, prefix) == {qa_queue: 2, pm_queue: 1}

    port = free_port()
    with running_flower(redis_url, prefix, tmp_path / "flower.log", port):
        api = f"http://127.0.0.1:{port}/api/task/send-task/{EXECUTE_TASK}"
        sent = _post(api, {"args": [plan.id, "plan", "pm"]})
        assert sent["task-id"]
    assert queued(app, prefix) == {qa_queue: 2, pm_queue: 2}, "Flower's send-task too"
    client.close()


def test_a_worker_sends_a_message_of_a_role_it_does_not_serve_on_unclaimed(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    client = Swarm(redis_url, agent_id="pm-1", settings=settings)
    app = create_app(settings, redis_url)
    item = client.submit("review", "x", role="qa", priority="high", enqueue=False)
    log = tmp_path / "developer.log"
    with running_worker(redis_url, prefix, "developer", log, "-c", "1"):
        wrong = queue_name(settings, "developer", "medium")
        app.send_task(EXECUTE_TASK, args=[item.id, "review", "qa"], queue=wrong)  # by hand, misrouted
        wait_until(lambda: "left" in task_outcomes(log), "the developer worker to take it", START_DEADLINE_S)
        wait_until(
            lambda: queued(app, prefix) == {queue_name(settings, "qa", "high"): 1},
            "the message to be sent on to the qa queue",
        )
    assert client.get(item.id).status is Status.PENDING
    assert event_kinds(client.ledger, item.id) == [EventKind.SUBMITTED], "not claimed, no attempt"
    assert {a.role for a in client.ledger.agents()} == {Role.DEVELOPER}, "no phantom qa agent"
    client.close()
