"""Faults survived by real ``swarm worker`` (celery worker) processes on a real Redis (SPEC §7, §13).

Each test shapes one fault (a killed pool child, a duplicate delivery, a failing or crashing
handler, a cancel) and then reads the outcome from the ledger: item statuses, the event stream
(one ``completed`` event per item) and the agents' metrics. Results are awaited by polling a
condition against a deadline, never by sleeping.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from swarm import Settings, Status, Swarm
from swarm.ledger import Ledger
from swarm.models import Event, EventKind, Role

from .polling import wait_until
from .workers_harness import event_kinds, item_events, running_beat, running_worker, task_outcomes

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0  # generous: a loaded 2-core VM; every wait returns as soon as its condition holds
LEASE_S = 1.5  # short leases, so that a lost holder is reaped (and a cancel seen) within seconds
STREAM_ID_RESOLUTION_S = 0.001  # event times come from stream ids, in whole milliseconds


def client_for(redis_url: str, prefix: str, **overrides: object) -> Swarm:
    settings = Settings.model_validate({"key_prefix": prefix, "redis_url": None, **overrides})
    return Swarm(redis_url, agent_id="pm-1", settings=settings)


def status_is(ledger: Ledger, work_id: str, status: Status) -> bool:
    return ledger.get(work_id).status is status


def of_kind(events: list[Event], kind: EventKind) -> list[Event]:
    return [e for e in events if e.event is kind]


def developer_agents_completed(ledger: Ledger) -> int:
    return sum(a.completed for a in ledger.agents() if a.role is Role.DEVELOPER)


def parent_pid(pid: int) -> int:
    """The parent of a live process, from /proc (field 4 of its stat line)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_kill_9_of_a_prefork_child_mid_task_completes_its_item_exactly_once(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = client_for(redis_url, prefix)
    ledger = client.ledger
    log = tmp_path / "prefork.log"
    env = {"SWARM_LEASE_SECONDS": str(LEASE_S)}
    with (
        running_beat(redis_url, prefix, tmp_path / "beat.log", env=env),
        running_worker(
            redis_url, prefix, "developer", log, "--pool", "prefork", "-c", "2", env=env
        ) as worker,
    ):
        item = client.submit("feature", "survives its child's kill -9", payload={"duration_s": 3})
        wait_until(lambda: ledger.get(item.id).agent_id is not None, "a pool child to claim the item")
        holder = ledger.get(item.id).agent_id
        assert holder is not None
        child = ledger.agent(holder).pid
        assert child is not None
        assert child != worker.pid, "the item runs in a pool child, not in the worker's main process"
        assert parent_pid(child) == worker.pid, "the holder is a child of our worker"
        os.kill(child, signal.SIGKILL)
        wait_until(lambda: status_is(ledger, item.id, Status.COMPLETED), "the item to be completed")
        # task_reject_on_worker_lost requeues the dead child's message once Celery notices the
        # child is gone (at once, or at its next pool check, every 5 s): that duplicate delivery
        # must do nothing.
        wait_until(lambda: "skipped" in task_outcomes(log), "the requeued delivery to be consumed")
        assert worker.poll() is None, "the worker survived the loss of one child"
    done = ledger.get(item.id)
    events = item_events(ledger, item.id)
    assert len(of_kind(events, EventKind.COMPLETED)) == 1, "completed exactly once"
    assert done.agent_id != holder, "another (restarted) child finished it"
    # The dead child's claim stays live until its lease runs out, so the redelivery finds the
    # item held (or already finished) and is skipped: only the lease reaper can give the item
    # back, once, counting one lost attempt.
    expired = of_kind(events, EventKind.LEASE_EXPIRED)
    assert [(e.agent_id, e.status) for e in expired] == [(holder, Status.PENDING)]
    assert done.attempts == 1
    assert [e.agent_id for e in of_kind(events, EventKind.CLAIMED)] == [holder, done.agent_id]
    assert ledger.velocity() == {"core": 1}, "velocity counted once"
    assert developer_agents_completed(ledger) == 1
    assert ledger.agent(holder).completed == 0
    assert sorted(task_outcomes(log)) == ["completed", "skipped"], "one delivery did the work"
    assert "WorkerLostError" in log.read_text(errors="replace")
    client.close()


def test_duplicate_deliveries_while_running_and_after_completion_do_the_work_once(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = client_for(redis_url, prefix)
    ledger = client.ledger
    log = tmp_path / "dev.log"
    with running_worker(redis_url, prefix, "developer", log, "-c", "2"):
        items = []
        for n in range(3):
            item = client.submit("feature", f"delivered twice {n}", payload={"duration_s": 1})
            client.dispatch(item)  # a second message for the same item, while the first may run
            items.append(item)
        wait_until(
            lambda: all(status_is(ledger, i.id, Status.COMPLETED) for i in items), "every item to complete"
        )
        for item in items:
            client.dispatch(item)  # a late redelivery of a finished item
        wait_until(lambda: len(task_outcomes(log)) == 3 * len(items), "every delivery to be consumed")
    for item in items:
        kinds = event_kinds(ledger, item.id)
        assert kinds.count(EventKind.CLAIMED) == 1, f"{item.id} claimed once: {kinds}"
        assert kinds.count(EventKind.COMPLETED) == 1, f"{item.id} completed once: {kinds}"
        assert ledger.get(item.id).attempts == 0
    assert sorted(task_outcomes(log)) == ["completed"] * 3 + ["skipped"] * 6
    agents = [a for a in ledger.agents() if a.role is Role.DEVELOPER]
    assert len(agents) == 1, "one agent for the worker process"
    assert (agents[0].completed, agents[0].failed) == (len(items), 0)
    assert ledger.velocity() == {"core": len(items)}
    client.close()


def test_a_transient_failure_is_retried_with_exponential_backoff_then_goes_dead(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    max_attempts = 4
    client = client_for(redis_url, prefix, max_attempts=max_attempts)
    ledger = client.ledger
    env = {"SWARM_MAX_ATTEMPTS": str(max_attempts)}
    with running_worker(redis_url, prefix, "developer", tmp_path / "dev.log", "-c", "2", env=env):
        item = client.submit("feature", "always fails transiently", payload={"fail": "transient"})
        wait_until(lambda: status_is(ledger, item.id, Status.DEAD), "the item to go dead")
    done = ledger.get(item.id)
    assert done.attempts == max_attempts
    assert done.error is not None
    assert done.error.startswith("transient:")
    events = item_events(ledger, item.id)
    claims = of_kind(events, EventKind.CLAIMED)
    failures = of_kind(events, EventKind.FAILED)
    assert len(claims) == max_attempts
    assert [f.status for f in failures] == [Status.PENDING] * (max_attempts - 1) + [Status.DEAD]
    assert len(of_kind(events, EventKind.DEAD)) == 1
    assert not of_kind(events, EventKind.COMPLETED)
    # Each retry waits about 1 s, 2 s, 4 s (+-10% jitter), plus delivery and the dispatch
    # sweeper's granularity (up to ~0.5 s), measured on the Redis clock of the event stream.
    gaps = [
        (claim.at - failure.at).total_seconds() for failure, claim in zip(failures, claims[1:], strict=False)
    ]
    for base, gap in zip([1.0, 2.0, 4.0], gaps, strict=True):
        assert 0.9 * base - STREAM_ID_RESOLUTION_S <= gap < base + 1.5, f"retry gaps {gaps}"
    print(f"retry gaps: {', '.join(f'{g:.3f}s' for g in gaps)} (bases 1 s, 2 s, 4 s)")
    agent = ledger.agent(claims[0].agent_id or "")
    assert (agent.completed, agent.failed) == (0, max_attempts)
    assert ledger.velocity() == {}
    client.close()


def test_a_permanent_failure_is_not_retried(redis_url: str, prefix: str, tmp_path: Path) -> None:
    client = client_for(redis_url, prefix)
    ledger = client.ledger
    with running_worker(redis_url, prefix, "developer", tmp_path / "dev.log", "-c", "2"):
        item = client.submit("feature", "fails for good", payload={"fail": "permanent"})
        wait_until(lambda: status_is(ledger, item.id, Status.FAILED), "the item to fail")
    done = ledger.get(item.id)
    assert done.attempts == 0, "a permanent failure is not a retried attempt"
    assert done.error is not None
    assert done.error.startswith("permanent:")
    kinds = event_kinds(ledger, item.id)
    assert kinds == [EventKind.SUBMITTED, EventKind.CLAIMED, EventKind.FAILED], kinds
    agent = ledger.agent(done.agent_id or "")
    assert (agent.completed, agent.failed) == (0, 1)
    assert ledger.velocity() == {}
    client.close()


POISON_MODULE = """
import swarm


@swarm.handler("poison", role="developer")
def crash(item, ctx):
    raise RuntimeError("poisoned " + item.id)
"""


def test_a_poison_item_whose_handler_always_crashes_goes_dead_after_max_attempts(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    max_attempts = 3
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "poison_handlers.py").write_text(POISON_MODULE)
    client = client_for(redis_url, prefix, max_attempts=max_attempts)
    ledger = client.ledger
    python_path = os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")]))
    env = {"SWARM_MAX_ATTEMPTS": str(max_attempts), "PYTHONPATH": python_path}
    log = tmp_path / "dev.log"
    with running_worker(
        redis_url, prefix, "developer", log, "-c", "2", "--handlers", "poison_handlers", env=env
    ):
        item = client.submit("poison", "crashes its handler every time")
        wait_until(lambda: status_is(ledger, item.id, Status.DEAD), "the poison item to go dead")
    done = ledger.get(item.id)
    assert done.attempts == max_attempts
    assert done.error == f"RuntimeError: poisoned {item.id}"
    kinds = event_kinds(ledger, item.id)
    assert kinds.count(EventKind.CLAIMED) == max_attempts, kinds
    assert kinds.count(EventKind.FAILED) == max_attempts, kinds
    assert kinds[-1] is EventKind.DEAD
    assert EventKind.COMPLETED not in kinds
    assert "handler_crashed" in log.read_text(errors="replace"), "the crash was logged"
    client.close()


def test_a_cancelled_queued_item_never_starts_even_once_the_worker_is_free(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = client_for(redis_url, prefix)
    ledger = client.ledger
    log = tmp_path / "dev.log"
    with running_worker(redis_url, prefix, "developer", log, "-c", "1"):
        busy = client.submit("feature", "holds the only slot", payload={"duration_s": 3})
        wait_until(lambda: ledger.get(busy.id).agent_id is not None, "the only slot to be busy")
        queued = client.submit("feature", "cancelled while queued")
        after = client.submit("feature", "queued behind it")
        assert client.cancel(queued.id).status is Status.CANCELLED
        # Two messages for one owed item: the first consumed claims the item behind (any message
        # of a role claims its most urgent owed item), the second finds nothing owed and skips.
        wait_until(lambda: status_is(ledger, after.id, Status.COMPLETED), "the item queued behind it")
        wait_until(lambda: "skipped" in task_outcomes(log), "the second message to be consumed")
    assert ledger.get(busy.id).status is Status.COMPLETED
    assert ledger.get(queued.id).status is Status.CANCELLED
    kinds = event_kinds(ledger, queued.id)
    assert kinds == [EventKind.SUBMITTED, EventKind.CANCELLED], kinds
    assert task_outcomes(log).count("skipped") == 1, "one message delivered, and skipped"
    assert developer_agents_completed(ledger) == 2
    client.close()


def test_a_running_item_that_is_cancelled_stops_at_its_next_heartbeat(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    duration = 10.0
    client = client_for(redis_url, prefix)
    ledger = client.ledger
    env = {"SWARM_LEASE_SECONDS": str(LEASE_S)}  # heartbeats every 0.5 s
    with running_worker(redis_url, prefix, "developer", tmp_path / "dev.log", "-c", "1", env=env):
        item = client.submit("feature", "cancelled while it runs", payload={"duration_s": duration})
        wait_until(lambda: ledger.get(item.id).agent_id is not None, "the item to start")
        holder = ledger.get(item.id).agent_id
        assert client.cancel(item.id).cancel_requested
        wait_until(lambda: status_is(ledger, item.id, Status.CANCELLED), "the running item to stop")
    events = item_events(ledger, item.id)
    kinds = [e.event for e in events]
    assert EventKind.COMPLETED not in kinds, kinds
    assert kinds.count(EventKind.CLAIMED) == 1, kinds
    released = of_kind(events, EventKind.RELEASED)
    assert [(e.agent_id, e.status) for e in released] == [(holder, Status.CANCELLED)], (
        "the handler saw ctx.cancelled and its holder gave the item up"
    )
    assert kinds.count(EventKind.PROGRESSED) < 4, "the handler stopped before its last step"
    ran = (
        of_kind(events, EventKind.CANCELLED)[0].at - of_kind(events, EventKind.CLAIMED)[0].at
    ).total_seconds()
    assert ran < duration - 3, f"cancelled after {ran:.2f}s of a {duration}s item"
    agent = ledger.agent(holder or "")
    assert (agent.completed, agent.failed) == (0, 0)
    assert ledger.velocity() == {}
    client.close()
