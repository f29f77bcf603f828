"""Cancelling items and reaping lapsed leases (SPEC §4-§5)."""

from __future__ import annotations

import time

import pytest
from ledger_helpers import (
    A,
    B,
    assert_consistent,
    claimed,
    events_of,
    expire_lease,
    snapshot,
)

from swarm.errors import InvalidTransition
from swarm.ledger import Ledger
from swarm.models import AgentStatus, EventKind, Role, Status

# -- cancel ------------------------------------------------------------------------------------


def test_cancel_of_a_pending_item_cancels_it_at_once(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    got = fake_ledger.cancel(item.id, B)
    assert got.status is Status.CANCELLED
    assert got.completed_at is not None
    assert_consistent(fake_ledger)
    assert fake_ledger.claim_next(Role.DEVELOPER, A) is None
    assert events_of(fake_ledger, item.id) == [EventKind.SUBMITTED, EventKind.CANCELLED]


def test_cancel_of_a_held_item_requests_it_and_release_cancels_it(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    requested = fake_ledger.cancel(item.id, B)
    assert requested.status is Status.CLAIMED
    assert requested.cancel_requested is True
    assert requested.agent_id == A
    assert_consistent(fake_ledger)
    released = fake_ledger.release(item.id, A, fence=item.fence)
    assert released.status is Status.CANCELLED
    assert_consistent(fake_ledger)
    assert events_of(fake_ledger, item.id) == [
        EventKind.SUBMITTED,
        EventKind.CLAIMED,
        EventKind.CANCEL_REQUESTED,
        EventKind.RELEASED,
        EventKind.CANCELLED,
    ]


def test_cancel_requested_item_that_is_reaped_ends_cancelled(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.cancel(item.id)
    expire_lease(fake_ledger, item.id)
    assert fake_ledger.reap() == [(item.id, Status.CANCELLED)]
    assert fake_ledger.get(item.id).status is Status.CANCELLED
    assert_consistent(fake_ledger)


def test_cancel_requested_item_failed_for_retry_ends_cancelled(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.cancel(item.id)
    assert fake_ledger.fail(item.id, A, "stopping", retry=True).status is Status.CANCELLED
    assert_consistent(fake_ledger)


def test_cancelling_twice_records_one_request(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.cancel(item.id)
    before = snapshot(fake_ledger)
    assert fake_ledger.cancel(item.id).cancel_requested is True
    assert snapshot(fake_ledger) == before


def test_cancel_of_a_finished_item_is_an_invalid_transition(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.complete(item.id, A)
    before = snapshot(fake_ledger)
    with pytest.raises(InvalidTransition, match="cannot cancel"):
        fake_ledger.cancel(item.id)
    assert snapshot(fake_ledger) == before


# -- reap --------------------------------------------------------------------------------------


def test_reap_returns_an_expired_item_to_pending_with_attempts_plus_one(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    assert fake_ledger.reap() == [(item.id, Status.PENDING)]
    back = fake_ledger.get(item.id)
    assert back.status is Status.PENDING
    assert back.attempts == 1
    assert back.agent_id is None
    assert fake_ledger.agent(A).status is AgentStatus.IDLE
    assert_consistent(fake_ledger)
    lapsed = [e for e in fake_ledger.events() if e.event is EventKind.LEASE_EXPIRED]
    assert [(e.work_id, e.agent_id, e.fence, e.status) for e in lapsed] == [
        (item.id, A, item.fence, Status.PENDING)
    ]


def test_a_second_reap_is_a_no_op(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    fake_ledger.reap()
    before = snapshot(fake_ledger)
    assert fake_ledger.reap() == []
    assert snapshot(fake_ledger) == before
    assert fake_ledger.get(item.id).attempts == 1


def test_reap_makes_the_item_dead_at_max_attempts(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", max_attempts=2)
    fake_ledger.claim(item.id, A)
    expire_lease(fake_ledger, item.id)
    assert fake_ledger.reap() == [(item.id, Status.PENDING)]
    fake_ledger.claim(item.id, B)
    expire_lease(fake_ledger, item.id)
    assert fake_ledger.reap() == [(item.id, Status.DEAD)]
    dead = fake_ledger.get(item.id)
    assert (dead.status, dead.attempts) == (Status.DEAD, 2)
    assert_consistent(fake_ledger)
    assert events_of(fake_ledger, item.id)[-2:] == [EventKind.LEASE_EXPIRED, EventKind.DEAD]


def test_reap_leaves_a_live_lease_alone_and_realigns_its_registry_score(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.client.zadd(fake_ledger.keys.leases, {item.id: 0})  # stale score, key still live
    assert fake_ledger.reap() == []
    assert fake_ledger.get(item.id).status is Status.CLAIMED
    score = fake_ledger.client.zscore(fake_ledger.keys.leases, item.id)
    assert score is not None
    assert score > time.time() * 1000 + 25_000


def test_reap_with_nothing_expired_writes_nothing(fake_ledger: Ledger) -> None:
    claimed(fake_ledger, A)
    fake_ledger.submit("build")
    before = snapshot(fake_ledger)
    assert fake_ledger.reap() == []
    assert snapshot(fake_ledger) == before


def test_crashed_agents_item_becomes_claimable_again_when_its_lease_runs_out(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=0.001)
    deadline = time.monotonic() + 5
    reaped: list[tuple[str, Status]] = []
    while not reaped and time.monotonic() < deadline:  # the PX runs out by itself; poll for it
        reaped = fake_ledger.reap()
    assert reaped == [(item.id, Status.PENDING)]
    again = fake_ledger.claim_next(Role.DEVELOPER, B)
    assert again is not None
    assert (again.id, again.agent_id, again.attempts) == (item.id, B, 1)
    assert again.fence is not None
    assert item.fence is not None
    assert again.fence > item.fence


def test_reap_handles_many_expired_items_in_one_pass(fake_ledger: Ledger) -> None:
    items = [claimed(fake_ledger, A) for _ in range(20)]
    for item in items:
        expire_lease(fake_ledger, item.id)
    assert sorted(fake_ledger.reap()) == sorted((i.id, Status.PENDING) for i in items)
    assert_consistent(fake_ledger)
