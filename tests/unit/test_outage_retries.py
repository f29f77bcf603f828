"""A holder's writes ride out a Redis outage within its lease (workers.outage, issue #10 item 6).

The ledger is real (fakeredis running the ledger's own Lua scripts); only the wire fails:
``FlakyLedger`` makes chosen script calls fail as a dropped connection does, either before the
command reaches Redis (nothing written) or after it ran (written, but the reply lost).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from ledger_helpers import expire_lease

from swarm.errors import LeaseLost, RedisUnavailable, SwarmError
from swarm.ledger import Ledger
from swarm.models import EventKind, Role, Status, WorkItem
from swarm.workflows import load_workflows
from tests.integration.polling import wait_until
from workers.context import HandlerContext
from workers.execute import Outcome, execute
from workers.handlers import HandlerRegistry, TransientError
from workers.lease import LeaseKeeper
from workers.outage import LeaseClock, OutageOutlastedLease, within_lease

A, B = "agent-a", "agent-b"
UNREACHABLE = "unreachable"  # the command never reached Redis
REPLY_LOST = "reply_lost"  # the command ran; its reply was lost with the connection
RESENT = "resent"  # the command ran, its reply was lost, and the Redis client sent it again


class FlakyLedger(Ledger):
    """A ledger whose next calls of a script fail as planned in ``faults[script]``."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger.client, ledger.settings)
        self.faults: dict[str, list[str]] = {}
        self.calls: dict[str, int] = {}
        self.before_fault: Callable[[], None] | None = None  # what happens on the server meanwhile

    def _call(self, script: str, *args: str | int, agent: str | None = None) -> list[Any]:
        self.calls[script] = self.calls.get(script, 0) + 1
        plan = self.faults.get(script)
        fault = plan.pop(0) if plan else None
        if fault == UNREACHABLE:
            if self.before_fault is not None:
                self.before_fault()
            raise RedisUnavailable("injected: connection refused")
        if fault == RESENT:
            with contextlib.suppress(SwarmError):
                super()._call(script, *args, agent=agent)
        reply = super()._call(script, *args, agent=agent)
        if fault == REPLY_LOST:
            raise RedisUnavailable("injected: connection lost before the reply")
        return reply


def registry_with(
    fn: Callable[[WorkItem, HandlerContext], Any], role: Role = Role.DEVELOPER
) -> HandlerRegistry:
    handlers = HandlerRegistry()
    handlers.register("*", role, fn)
    return handlers


def kinds(ledger: Ledger, work_id: str) -> list[EventKind]:
    return [e.event for e in ledger.events(1000) if e.work_id == work_id]


def done(item: WorkItem, ctx: HandlerContext) -> dict[str, bool]:
    return {"ok": True}


def test_a_completion_whose_reply_was_lost_is_recognised_as_landed_and_hands_off_once(
    fake_ledger: Ledger,
) -> None:
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.submit("feature", "x", role="pm", workflow="feature", stage="pm")
    flaky.faults["finish"] = [REPLY_LOST]
    workflows = load_workflows(fake_ledger.settings.workflows_file)
    run = execute(flaky, item.id, A, handlers=registry_with(done, Role.PM), workflows=workflows)
    assert flaky.calls["finish"] == 2, "the completion was tried again after its reply was lost"
    assert run.outcome is Outcome.COMPLETED
    assert run.next_id is not None
    assert run.next_dispatch is not None, "the handoff is sent on"
    stored = fake_ledger.get(item.id)
    assert (stored.status, stored.next_id) == (Status.COMPLETED, run.next_id)
    assert kinds(fake_ledger, item.id).count(EventKind.COMPLETED) == 1
    stages = [i for i in fake_ledger.list(role="architect") if i.parent_id == item.id]
    assert [s.id for s in stages] == [run.next_id], "exactly one next stage"


def test_a_completion_resent_by_the_redis_client_after_a_lost_reply_is_recognised_as_landed(
    fake_ledger: Ledger,
) -> None:
    """redis-py retries a command whose connection dropped: the completion ran, and its resend
    is refused, with no connection error ever reaching us."""
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.submit("feature", "x", role="pm", workflow="feature", stage="pm")
    flaky.faults["finish"] = [RESENT]
    workflows = load_workflows(fake_ledger.settings.workflows_file)
    run = execute(flaky, item.id, A, handlers=registry_with(done, Role.PM), workflows=workflows)
    assert run.outcome is Outcome.COMPLETED
    assert run.next_dispatch is not None
    assert fake_ledger.get(item.id).next_id == run.next_id
    assert kinds(fake_ledger, item.id).count(EventKind.COMPLETED) == 1


def test_an_outcome_refused_as_another_run_finished_the_item_is_a_lost_lease(fake_ledger: Ledger) -> None:
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.submit("task", "x")

    def b_takes_over_and_completes() -> None:
        expire_lease(fake_ledger, item.id)
        fake_ledger.reap()
        fake_ledger.complete(item.id, B, fence=fake_ledger.claim(item.id, B).fence, result="b's")

    flaky.faults["finish"] = [UNREACHABLE]
    flaky.before_fault = b_takes_over_and_completes
    run = execute(flaky, item.id, A, handlers=registry_with(done))
    assert run.outcome is Outcome.LEASE_LOST
    stored = fake_ledger.get(item.id)
    assert (stored.agent_id, stored.result) == (B, "b's")


def test_a_completion_that_cannot_reach_redis_lands_when_it_comes_back(fake_ledger: Ledger) -> None:
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.submit("task", "x")
    flaky.faults["finish"] = [UNREACHABLE, UNREACHABLE, UNREACHABLE]
    run = execute(flaky, item.id, A, handlers=registry_with(done))
    assert flaky.calls["finish"] == 4
    assert run.outcome is Outcome.COMPLETED
    stored = fake_ledger.get(item.id)
    assert (stored.status, stored.attempts, stored.result) == (Status.COMPLETED, 0, {"ok": True})


def test_a_retried_failure_whose_reply_was_lost_is_recognised_as_landed(fake_ledger: Ledger) -> None:
    def flaky_handler(item: WorkItem, ctx: HandlerContext) -> None:
        raise TransientError("try again")

    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.submit("task", "x")
    flaky.faults["finish"] = [REPLY_LOST]
    run = execute(flaky, item.id, A, handlers=registry_with(flaky_handler))
    assert flaky.calls["finish"] == 2
    assert run.outcome is Outcome.RETRY
    stored = fake_ledger.get(item.id)
    assert (stored.status, stored.attempts) == (Status.PENDING, 1), "one attempt, counted once"
    assert kinds(fake_ledger, item.id).count(EventKind.FAILED) == 1


def test_an_outcome_write_finds_the_lease_gone_and_reports_it_lost(fake_ledger: Ledger) -> None:
    """Meanwhile the lease expired, the reaper returned the item and another agent claimed it:
    the retry is refused by the fence, and the item is left to its new holder."""
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.submit("task", "x")
    taken: list[WorkItem] = []

    def lease_runs_out_and_b_claims() -> None:
        expire_lease(fake_ledger, item.id)  # the claim key's TTL ran out
        assert [wid for wid, _ in fake_ledger.reap()] == [item.id]
        taken.append(fake_ledger.claim(item.id, B))

    flaky.before_fault = lease_runs_out_and_b_claims
    flaky.faults["finish"] = [UNREACHABLE]
    run = execute(flaky, item.id, A, handlers=registry_with(done))
    assert run.outcome is Outcome.LEASE_LOST
    stored = fake_ledger.get(item.id)
    assert (stored.status, stored.agent_id, stored.fence) == (Status.CLAIMED, B, taken[0].fence)
    assert EventKind.COMPLETED not in kinds(fake_ledger, item.id)


def test_a_lost_reply_followed_by_a_reclaim_is_not_mistaken_for_our_write(fake_ledger: Ledger) -> None:
    """The failure's reply was lost, but before the retry the item moved on (reaped, claimed by
    B): the item no longer shows this holder's fence, so the write counts as lost."""
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.submit("task", "x")

    def b_takes_over() -> None:
        expire_lease(fake_ledger, item.id)
        fake_ledger.reap()
        fake_ledger.claim(item.id, B)

    def failing(item: WorkItem, ctx: HandlerContext) -> None:
        raise TransientError("boom")

    flaky.faults["finish"] = [UNREACHABLE]
    flaky.before_fault = b_takes_over
    run = execute(flaky, item.id, A, handlers=registry_with(failing))
    assert run.outcome is Outcome.LEASE_LOST
    assert fake_ledger.get(item.id).agent_id == B


def test_progress_rides_out_an_outage_shorter_than_the_lease(fake_ledger: Ledger) -> None:
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.claim(fake_ledger.submit("task", "x").id, A, lease_seconds=30)
    ctx = HandlerContext(flaky, item, A, lease_seconds=30)
    flaky.faults["progress"] = [UNREACHABLE, UNREACHABLE]
    ctx.progress(40, "through the blip")
    assert flaky.calls["progress"] == 3
    assert not ctx.lease_lost
    stored = fake_ledger.get(item.id)
    assert (stored.progress, stored.status, stored.attempts) == (40, Status.IN_PROGRESS, 0)


def test_progress_in_an_outage_that_outlasts_the_lease_raises_lease_lost(fake_ledger: Ledger) -> None:
    lease = 0.6
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.claim(fake_ledger.submit("task", "x").id, A, lease_seconds=lease)
    sent = time.monotonic()
    ctx = HandlerContext(flaky, item, A, lease_seconds=lease, claim_sent_at=sent)
    flaky.faults["progress"] = [UNREACHABLE] * 100
    with pytest.raises(OutageOutlastedLease) as raised:
        ctx.progress(10)
    assert isinstance(raised.value, LeaseLost), "a handler catching LeaseLost catches it"
    assert ctx.lease_lost
    assert time.monotonic() >= sent + lease, "it kept trying until the lease ran out"
    assert 2 <= flaky.calls["progress"] < 100


def test_the_lease_keeper_marks_the_lease_lost_when_an_outage_outlasts_it(fake_ledger: Ledger) -> None:
    lease = 0.9
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.claim(fake_ledger.submit("task", "x").id, A, lease_seconds=lease)
    ctx = HandlerContext(flaky, item, A, lease_seconds=lease)
    flaky.faults["heartbeat"] = [UNREACHABLE] * 100
    with LeaseKeeper(ctx, lease):
        assert ctx._lease_lost.wait(30), "the keeper gave up once the lease ran out"
    assert flaky.calls["heartbeat"] >= 2


def test_within_lease_gives_up_at_once_when_the_lease_has_already_run_out() -> None:
    tries: list[float] = []

    def unreachable() -> None:
        tries.append(time.monotonic())
        raise RedisUnavailable("down")

    clock = LeaseClock(1.0, time.monotonic() - 2.0)
    with pytest.raises(OutageOutlastedLease):
        within_lease(unreachable, clock, "write", wait=lambda _s: False)
    assert len(tries) == 1


def test_a_release_whose_reply_was_lost_is_recognised_as_landed(fake_ledger: Ledger) -> None:
    """A cancelled run gives its item back; the release's reply is lost and its retry refused."""
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.submit("task", "x", max_attempts=5)

    def cancelled_meanwhile(item: WorkItem, ctx: HandlerContext) -> None:
        ctx.mark_cancelled()  # as the lease keeper does when a heartbeat says so

    flaky.faults["release"] = [REPLY_LOST]
    run = execute(flaky, item.id, A, handlers=registry_with(cancelled_meanwhile))
    assert flaky.calls["release"] == 2
    assert run.outcome is Outcome.RETRY, "back to pending, by our release"
    stored = fake_ledger.get(item.id)
    assert (stored.status, stored.attempts) == (Status.PENDING, 0), "a release costs no attempt"
    assert kinds(fake_ledger, item.id).count(EventKind.RELEASED) == 1


def test_the_lease_keeper_rides_out_an_outage_shorter_than_the_lease(fake_ledger: Ledger) -> None:
    lease = 30.0
    flaky = FlakyLedger(fake_ledger)
    item = fake_ledger.claim(fake_ledger.submit("task", "x").id, A, lease_seconds=lease)
    ctx = HandlerContext(flaky, item, A, lease_seconds=lease)
    flaky.faults["heartbeat"] = [UNREACHABLE, UNREACHABLE]
    keeper = LeaseKeeper(ctx, lease)
    keeper.interval = 0.05  # beat often, so that the test sees the outage and the recovery at once
    with keeper:
        wait_until(lambda: flaky.calls.get("heartbeat", 0) >= 3, "the heartbeat to be tried until it lands")
    assert not ctx.lease_lost
    assert fake_ledger.get(item.id).status is Status.CLAIMED
