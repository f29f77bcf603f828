"""Running one item (workers.execute): claim, handler under a lease keeper, fenced outcome.

On a real Redis, because leases, heartbeats and cancellation are about real time.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from swarm.ledger import Dispatch, Ledger
from swarm.models import EventKind, Priority, Role, Status, WorkItem
from workers.context import HandlerContext
from workers.execute import Outcome, backoff_seconds, execute
from workers.handlers import HandlerRegistry, PermanentError, TransientError

from .polling import wait_until

pytestmark = pytest.mark.integration

DEADLINE_S = 10.0


def registry_with(fn: Callable[[WorkItem, HandlerContext], Any], type_: str = "task") -> HandlerRegistry:
    handlers = HandlerRegistry()
    handlers.register(type_, Role.DEVELOPER, fn)
    return handlers


def events_of(ledger: Ledger, work_id: str, kind: EventKind) -> int:
    return sum(1 for e in ledger.events(1000) if e.work_id == work_id and e.event is kind)


def test_a_handler_runs_and_its_result_and_artifacts_are_recorded(ledger: Ledger) -> None:
    def build(item: WorkItem, ctx: HandlerContext) -> dict[str, Any]:
        ctx.progress(50, "half way")
        ctx.artifact("branch", f"swarm/{item.id}")
        return {"ok": True, "description": item.description}

    item = ledger.submit("task", 'quote " and\nnewline', artifacts={"spec": "from pm"})
    run = execute(ledger, item.id, "dev-1", handlers=registry_with(build))
    assert run.outcome is Outcome.COMPLETED
    done = ledger.get(item.id)
    assert done.status is Status.COMPLETED
    assert done.result == {"ok": True, "description": 'quote " and\nnewline'}
    assert done.artifacts == {"spec": "from pm", "branch": f"swarm/{item.id}"}
    assert ledger.agent("dev-1").completed == 1


def test_a_duplicate_delivery_does_nothing_twice(ledger: Ledger) -> None:
    calls: list[str] = []
    gate = threading.Event()

    def slow(item: WorkItem, ctx: HandlerContext) -> None:
        calls.append(ctx.agent_id)
        gate.wait(DEADLINE_S)

    handlers = registry_with(slow)
    item = ledger.submit("task", "x")
    results: list[Outcome] = []
    threads = [
        threading.Thread(
            target=lambda a=a: results.append(execute(ledger, item.id, a, handlers=handlers).outcome)
        )
        for a in ("dev-1", "dev-2")
    ]
    for t in threads:
        t.start()
    wait_until(lambda: len(calls) == 1 and len(results) == 1, "the duplicate to be skipped")
    gate.set()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([Outcome.COMPLETED, Outcome.SKIPPED])
    assert len(calls) == 1
    again = execute(ledger, item.id, "dev-3", handlers=handlers)
    assert again.outcome is Outcome.SKIPPED
    assert events_of(ledger, item.id, EventKind.COMPLETED) == 1


def test_transient_failures_retry_until_dead_at_max_attempts(ledger: Ledger) -> None:
    def flaky(item: WorkItem, ctx: HandlerContext) -> None:
        raise TransientError("upstream timeout")

    handlers = registry_with(flaky)
    item = ledger.submit("task", "x", max_attempts=3)
    outcomes = [execute(ledger, item.id, "dev-1", handlers=handlers).outcome for _ in range(3)]
    assert outcomes == [Outcome.RETRY, Outcome.RETRY, Outcome.DEAD]
    dead = ledger.get(item.id)
    assert (dead.status, dead.attempts) == (Status.DEAD, 3)
    assert dead.error == "transient: upstream timeout"
    assert execute(ledger, item.id, "dev-1", handlers=handlers).outcome is Outcome.SKIPPED


def test_an_unexpected_exception_is_retried_like_a_transient_failure(ledger: Ledger) -> None:
    def buggy(item: WorkItem, ctx: HandlerContext) -> None:
        raise KeyError("oops")

    item = ledger.submit("task", "x")
    run = execute(ledger, item.id, "dev-1", handlers=registry_with(buggy))
    assert run.outcome is Outcome.RETRY
    assert ledger.get(item.id).attempts == 1


@pytest.mark.parametrize(
    "message", ["x" * 200_000, "bad \udc80 surrogate", '\x00 nul, "quotes", \n newlines, emoji \U0001f600']
)
def test_any_exception_text_still_records_the_failure(ledger: Ledger, message: str) -> None:
    def loud(item: WorkItem, ctx: HandlerContext) -> None:
        raise PermanentError(message)

    item = ledger.submit("task", "x")
    run = execute(ledger, item.id, "dev-1", handlers=registry_with(loud))
    assert run.outcome is Outcome.FAILED
    error = ledger.get(item.id).error
    assert error is not None
    assert error.startswith("permanent: ")
    if len(message) < 1000 and "\udc80" not in message:
        assert error == f"permanent: {message}", "short valid text is kept byte-exact"
    assert len(error.encode()) <= 64 * 1024


def test_a_permanent_failure_is_not_retried(ledger: Ledger) -> None:
    def broken(item: WorkItem, ctx: HandlerContext) -> None:
        raise PermanentError("spec is contradictory")

    item = ledger.submit("task", "x")
    run = execute(ledger, item.id, "dev-1", handlers=registry_with(broken))
    assert run.outcome is Outcome.FAILED
    failed = ledger.get(item.id)
    assert (failed.status, failed.attempts, failed.error) == (
        Status.FAILED,
        0,
        "permanent: spec is contradictory",
    )


def test_an_item_without_a_handler_is_left_for_a_worker_that_has_one(ledger: Ledger) -> None:
    item = ledger.submit("unheard_of", "x")
    run = execute(ledger, item.id, "dev-1", handlers=registry_with(lambda i, c: None))
    assert run.outcome is Outcome.LEFT
    assert "no handler for type 'unheard_of' on role developer" in run.detail
    left = ledger.get(item.id)
    assert (left.status, left.attempts, left.error) == (Status.PENDING, 0, None), "no attempt spent"
    later = execute(ledger, item.id, "dev-2", handlers=registry_with(lambda i, c: "done", "unheard_of"))
    assert later.outcome is Outcome.COMPLETED


def test_a_message_naming_another_roles_item_is_handed_back_for_that_roles_queue(ledger: Ledger) -> None:
    item = ledger.submit("review", "x", role="qa", priority="high")
    run = execute(ledger, item.id, "dev-1", handlers=registry_with(lambda i, c: None), role="developer")
    assert run.outcome is Outcome.LEFT
    assert run.redirect == Dispatch(item.id, "review", Role.QA, Priority.HIGH)
    assert [e.event for e in ledger.events(100) if e.work_id == item.id] == [EventKind.SUBMITTED]


def test_a_queue_message_never_claims_what_its_worker_cannot_run(ledger: Ledger) -> None:
    item = ledger.submit("unheard_of", "x")
    handlers = registry_with(lambda i, c: None)
    run = execute(ledger, item.id, "dev-1", handlers=handlers, role="developer", handles={"task"})
    assert run.outcome is Outcome.LEFT
    assert [e.event for e in ledger.events(100) if e.work_id == item.id] == [EventKind.SUBMITTED]


def test_a_result_that_is_not_json_fails_the_item_cleanly(ledger: Ledger) -> None:
    item = ledger.submit("task", "x")
    run = execute(ledger, item.id, "dev-1", handlers=registry_with(lambda i, c: {"when": object()}))
    assert run.outcome is Outcome.FAILED
    assert "unrecordable result" in run.detail
    assert ledger.get(item.id).result is None


def test_the_lease_keeper_holds_the_lease_while_a_long_handler_runs(ledger: Ledger) -> None:
    def long_job(item: WorkItem, ctx: HandlerContext) -> str:
        threading.Event().wait(1.5)  # the handler's own work: three lease lengths
        return "done"

    item = ledger.submit("task", "x")
    run = execute(ledger, item.id, "dev-1", handlers=registry_with(long_job), lease_seconds=0.5)
    assert run.outcome is Outcome.COMPLETED
    assert ledger.reap() == []
    assert events_of(ledger, item.id, EventKind.LEASE_EXPIRED) == 0


def test_a_running_handler_sees_a_cancel_at_its_next_heartbeat(ledger: Ledger) -> None:
    started = threading.Event()

    def patient(item: WorkItem, ctx: HandlerContext) -> None:
        started.set()
        wait_until(lambda: ctx.cancelled, "ctx.cancelled")

    item = ledger.submit("task", "x")
    outcome: list[Outcome] = []
    runner = threading.Thread(
        target=lambda: outcome.append(
            execute(ledger, item.id, "dev-1", handlers=registry_with(patient), lease_seconds=0.6).outcome
        )
    )
    runner.start()
    assert started.wait(DEADLINE_S)
    ledger.cancel(item.id, "pm-1")
    runner.join(DEADLINE_S)
    assert outcome == [Outcome.CANCELLED]
    assert ledger.get(item.id).status is Status.CANCELLED


def test_a_handler_that_lost_its_lease_has_its_result_refused(ledger: Ledger) -> None:
    started, lost = threading.Event(), threading.Event()

    def stubborn(item: WorkItem, ctx: HandlerContext) -> str:
        started.set()
        wait_until(lambda: ctx.lease_lost, "ctx.lease_lost")
        lost.set()
        return "late result"

    item = ledger.submit("task", "x")
    outcome: list[Outcome] = []
    runner = threading.Thread(
        target=lambda: outcome.append(
            execute(ledger, item.id, "dev-1", handlers=registry_with(stubborn), lease_seconds=0.6).outcome
        )
    )
    runner.start()
    assert started.wait(DEADLINE_S)
    ledger.client.delete(ledger.keys.claim(item.id))  # the lease runs out, as PX expiry does
    ledger.client.zadd(ledger.keys.leases, {item.id: 0})
    assert ledger.reap() == [(item.id, Status.PENDING)]
    taken = ledger.claim(item.id, "dev-2")
    runner.join(DEADLINE_S)
    assert lost.is_set()
    assert outcome == [Outcome.LEASE_LOST]
    now = ledger.get(item.id)
    assert (now.status, now.agent_id, now.fence, now.result) == (Status.CLAIMED, "dev-2", taken.fence, None)


def test_backoff_doubles_from_one_second_with_jitter() -> None:
    rng = random.Random(7)
    for attempt, expected in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)):
        assert expected * 0.9 <= backoff_seconds(attempt, rng=rng) <= expected * 1.1
    assert backoff_seconds(30, rng=rng) <= 300 * 1.1


def test_the_demo_handler_honours_duration_and_fail(ledger: Ledger) -> None:
    import workers.demo  # noqa: F401 - registers the demo handler for every role
    from workers.handlers import registry

    ok = ledger.submit("feature", "x", role="qa", payload={"duration_s": 0.2})
    run = execute(ledger, ok.id, "qa-1", handlers=registry)
    assert run.outcome is Outcome.COMPLETED
    assert run.item is not None
    assert run.item.artifacts == {"qa": f"qa output for {ok.id}"}
    assert events_of(ledger, ok.id, EventKind.PROGRESSED) >= 1
    transient = ledger.submit("feature", "x", role="pm", payload={"fail": "transient"})
    assert execute(ledger, transient.id, "pm-1", handlers=registry).outcome is Outcome.RETRY
    permanent = ledger.submit("feature", "x", role="devops", payload={"fail": "permanent"})
    assert execute(ledger, permanent.id, "ops-1", handlers=registry).outcome is Outcome.FAILED
