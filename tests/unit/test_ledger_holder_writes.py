"""The holder's fenced writes (SPEC §4-§5): heartbeat, progress, complete, fail and release."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from ledger_helpers import (
    A,
    B,
    assert_consistent,
    claimed,
    events_of,
    expire_lease,
    snapshot,
    stored_field,
)

from swarm.errors import BadInput, InvalidTransition, LeaseLost, NotOwner
from swarm.ledger import Handoff, Ledger
from swarm.models import AgentStatus, EventKind, Role, Status

# -- heartbeat ---------------------------------------------------------------------------------


def test_heartbeat_renews_the_lease(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=5)
    beat = fake_ledger.heartbeat(item.id, A, fence=item.fence, lease_seconds=60)
    assert beat.lease_expires_at is not None
    assert item.lease_expires_at is not None
    assert beat.lease_expires_at >= item.lease_expires_at + timedelta(seconds=55)
    assert beat.status is Status.CLAIMED
    assert fake_ledger.client.pttl(fake_ledger.keys.claim(item.id)) > 55_000
    assert_consistent(fake_ledger)  # the lease registry moved with the claim key


def _lease_renewed_at(ledger: Ledger, work_id: str, agent: str) -> int:
    """Microseconds from the holder's last touch (its heartbeat time) to its lease's expiry."""
    beat = int(ledger.client.hget(ledger.keys.agent(agent), "last_heartbeat") or 0)
    return int(stored_field(ledger, work_id, "lease_expires_at") or 0) - beat


def test_heartbeat_without_lease_seconds_renews_for_the_claims_own_length(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=120)
    beat = fake_ledger.heartbeat(item.id, A)
    assert beat.lease_expires_at is not None
    assert item.lease_expires_at is not None
    assert beat.lease_expires_at >= item.lease_expires_at
    assert _lease_renewed_at(fake_ledger, item.id, A) == 120_000_000
    assert 115_000 < fake_ledger.client.pttl(fake_ledger.keys.claim(item.id)) <= 120_000
    assert_consistent(fake_ledger)


def test_heartbeat_returns_cancel_requested(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    assert fake_ledger.heartbeat(item.id, A).cancel_requested is False
    fake_ledger.cancel(item.id, B)
    beat = fake_ledger.heartbeat(item.id, A, fence=item.fence)
    assert beat.cancel_requested is True
    assert beat.status is Status.CLAIMED


def test_heartbeat_marks_the_agent_active(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.register_agent(A, role="developer")  # re-registering sets it idle
    assert fake_ledger.agent(A).status is AgentStatus.IDLE
    fake_ledger.heartbeat(item.id, A)
    assert fake_ledger.agent(A).status is AgentStatus.ACTIVE


# -- progress ----------------------------------------------------------------------------------


def test_progress_moves_a_claimed_item_to_in_progress_with_its_note(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    got = fake_ledger.progress(item.id, A, 40, 'half way, "quoted"\nsecond line', fence=item.fence)
    assert got.status is Status.IN_PROGRESS
    assert got.progress == 40
    assert got.note == 'half way, "quoted"\nsecond line'
    assert fake_ledger.get(item.id) == got
    assert_consistent(fake_ledger)
    again = fake_ledger.progress(item.id, A, "75")
    assert (again.status, again.progress) == (Status.IN_PROGRESS, 75)
    assert_consistent(fake_ledger)


def test_progress_renews_the_lease_for_the_claims_own_length(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=120)
    got = fake_ledger.progress(item.id, A, 10)
    renewed_from = int(stored_field(fake_ledger, item.id, "updated_at") or 0)
    assert int(stored_field(fake_ledger, item.id, "lease_expires_at") or 0) - renewed_from == 120_000_000
    assert got.lease_expires_at is not None
    assert item.lease_expires_at is not None
    assert got.lease_expires_at >= item.lease_expires_at
    assert fake_ledger.client.pttl(fake_ledger.keys.claim(item.id)) > 115_000
    assert_consistent(fake_ledger)


def test_progress_by_a_non_holder_is_not_owner_naming_the_holder(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(NotOwner) as caught:
        fake_ledger.progress(item.id, B, 50)
    assert not isinstance(caught.value, LeaseLost)
    assert caught.value.holder == A
    assert f"{B} does not hold {item.id}; {A} does" in str(caught.value)
    assert caught.value.exit_code == 5
    assert snapshot(fake_ledger) == before


def test_progress_with_a_superseded_fence_is_lease_lost(fake_ledger: Ledger) -> None:
    first = claimed(fake_ledger, A)
    fake_ledger.release(first.id, A)
    second = fake_ledger.claim(first.id, A)
    before = snapshot(fake_ledger)
    with pytest.raises(LeaseLost, match=f"newer claim \\(fence {second.fence}\\) superseded it"):
        fake_ledger.progress(first.id, A, 50, fence=first.fence)
    assert snapshot(fake_ledger) == before
    assert fake_ledger.progress(first.id, A, 50, fence=second.fence).progress == 50


def test_holder_superseded_by_another_agent_after_reap_gets_lease_lost(fake_ledger: Ledger) -> None:
    old = claimed(fake_ledger, A)
    expire_lease(fake_ledger, old.id)
    fake_ledger.reap()
    new = fake_ledger.claim(old.id, B)
    before = snapshot(fake_ledger)
    with pytest.raises(LeaseLost, match="superseded"):
        fake_ledger.progress(old.id, A, 90, fence=old.fence)
    with pytest.raises(LeaseLost):
        fake_ledger.complete(old.id, A, fence=old.fence)
    with pytest.raises(NotOwner) as caught:  # without its token, A is simply not the owner
        fake_ledger.complete(old.id, A)
    assert caught.value.holder == B
    assert snapshot(fake_ledger) == before
    assert fake_ledger.complete(new.id, B, fence=new.fence).status is Status.COMPLETED


def test_holder_whose_lease_lapsed_gets_lease_lost_and_changes_nothing(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    before = snapshot(fake_ledger)
    for write in (
        lambda: fake_ledger.progress(item.id, A, 10, fence=item.fence),
        lambda: fake_ledger.heartbeat(item.id, A),
        lambda: fake_ledger.complete(item.id, A, fence=item.fence),
        lambda: fake_ledger.fail(item.id, A, "x"),
        lambda: fake_ledger.release(item.id, A),
    ):
        with pytest.raises(LeaseLost, match="lease expired"):
            write()
    assert snapshot(fake_ledger) == before


def test_holder_of_a_reaped_item_gets_lease_lost(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    fake_ledger.reap()
    with pytest.raises(LeaseLost, match="went back to pending"):
        fake_ledger.heartbeat(item.id, A, fence=item.fence)


def test_holder_showing_a_token_newer_than_its_claim_gets_lease_lost(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    assert item.fence is not None
    with pytest.raises(LeaseLost, match="is not the current claim"):
        fake_ledger.progress(item.id, A, 10, fence=item.fence + 1)


def test_stranger_showing_a_token_on_a_pending_item_is_not_owner(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.release(item.id, A)
    with pytest.raises(NotOwner) as caught:
        fake_ledger.progress(item.id, B, 10, fence=item.fence)
    assert not isinstance(caught.value, LeaseLost)
    with pytest.raises(LeaseLost):  # the last holder, though, lost its lease
        fake_ledger.progress(item.id, A, 10, fence=item.fence)


def test_progress_on_a_pending_item_is_not_owner(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    with pytest.raises(NotOwner, match="not claimed"):
        fake_ledger.progress(item.id, A, 10)


@pytest.mark.parametrize("value", ["abc", "-1", "101", "NaN", "inf", "50.5", -1, 101, float("nan"), True])
def test_bad_progress_is_refused_and_changes_nothing(fake_ledger: Ledger, value: Any) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(BadInput, match="progress must be"):
        fake_ledger.progress(item.id, A, value)
    assert snapshot(fake_ledger) == before


# -- complete ----------------------------------------------------------------------------------


def test_complete_succeeds_once(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A, points=3)
    fake_ledger.progress(item.id, A, 60)
    done = fake_ledger.complete(item.id, A, fence=item.fence, result={"ok": True, "files": ["a.py"]})
    assert done.status is Status.COMPLETED
    assert done.progress == 100
    assert done.result == {"ok": True, "files": ["a.py"]}
    assert done.completed_at is not None
    assert done.agent_id == A  # who did it stays on the item
    assert_consistent(fake_ledger)
    before = snapshot(fake_ledger)
    with pytest.raises(InvalidTransition, match=f"cannot complete {item.id}: it is already completed"):
        fake_ledger.complete(item.id, A, fence=item.fence)
    assert snapshot(fake_ledger) == before


def test_velocity_is_counted_once(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A, points=5, team="blue")
    fake_ledger.complete(item.id, A)
    with pytest.raises(InvalidTransition):
        fake_ledger.complete(item.id, A)
    with pytest.raises(InvalidTransition):
        fake_ledger.complete(item.id, B)
    assert fake_ledger.velocity() == {"blue": 5}


def test_complete_points_override_the_items_points_and_velocity(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A, points=2)
    done = fake_ledger.complete(item.id, A, points=8)
    assert done.points == 8
    assert fake_ledger.velocity() == {"core": 8}


def test_velocity_is_kept_per_team(fake_ledger: Ledger) -> None:
    for team, pts in [("red", 1), ("blue", 3), ("red", 2), ("blue", 0)]:
        fake_ledger.complete(claimed(fake_ledger, A, team=team, points=pts).id, A)
    fake_ledger.fail(claimed(fake_ledger, A, team="red", points=13).id, A, "no")
    assert fake_ledger.velocity() == {"red": 3, "blue": 3}


def test_complete_by_a_non_holder_is_not_owner(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(NotOwner):
        fake_ledger.complete(item.id, B)
    assert snapshot(fake_ledger) == before
    assert fake_ledger.velocity() == {}


def test_complete_with_a_result_that_is_not_json_is_refused(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(BadInput, match="result is not JSON-serialisable"):
        fake_ledger.complete(item.id, A, result={"x": float("inf")})
    assert snapshot(fake_ledger) == before


# -- fail --------------------------------------------------------------------------------------


def test_fail_without_retry_is_final(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    failed = fake_ledger.fail(item.id, A, "compiler said no", fence=item.fence)
    assert failed.status is Status.FAILED
    assert failed.error == "compiler said no"
    assert failed.attempts == 0
    assert failed.completed_at is not None
    assert_consistent(fake_ledger)
    with pytest.raises(InvalidTransition, match="already failed"):
        fake_ledger.fail(item.id, A, "again")


def test_fail_with_retry_returns_the_item_to_pending_with_attempts_plus_one(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    retried = fake_ledger.fail(item.id, A, "flaky network", retry=True)
    assert retried.status is Status.PENDING
    assert retried.attempts == 1
    assert retried.agent_id is None
    assert retried.error == "flaky network"
    assert_consistent(fake_ledger)
    again = fake_ledger.claim_next(Role.DEVELOPER, B)
    assert again is not None
    assert again.id == item.id
    assert again.attempts == 1


def test_fail_with_retry_goes_dead_at_max_attempts(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", max_attempts=2)
    fake_ledger.claim(item.id, A)
    assert fake_ledger.fail(item.id, A, "1st", retry=True).status is Status.PENDING
    fake_ledger.claim(item.id, A)
    dead = fake_ledger.fail(item.id, A, "2nd", retry=True)
    assert dead.status is Status.DEAD
    assert dead.attempts == 2
    assert_consistent(fake_ledger)
    assert events_of(fake_ledger, item.id)[-2:] == [EventKind.FAILED, EventKind.DEAD]
    with pytest.raises(InvalidTransition, match="already dead"):
        fake_ledger.claim(item.id, B)


def test_fail_by_a_non_holder_is_not_owner(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(NotOwner):
        fake_ledger.fail(item.id, B, "not mine", retry=True)
    assert snapshot(fake_ledger) == before


# -- release -----------------------------------------------------------------------------------


def test_release_returns_the_item_to_pending_keeping_attempts(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    fake_ledger.reap()  # attempts 1
    fake_ledger.claim(item.id, A)
    released = fake_ledger.release(item.id, A)
    assert released.status is Status.PENDING
    assert released.attempts == 1
    assert released.agent_id is None
    assert_consistent(fake_ledger)
    nxt = fake_ledger.claim_next(Role.DEVELOPER, B)
    assert nxt is not None
    assert nxt.id == item.id


@pytest.mark.parametrize("how", ["release", "reap", "fail-retry"])
def test_item_back_in_pending_is_a_fresh_start_for_the_next_claimer(fake_ledger: Ledger, how: str) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.progress(item.id, A, 60, "half done")
    if how == "release":
        fake_ledger.release(item.id, A)
    elif how == "reap":
        expire_lease(fake_ledger, item.id)
        fake_ledger.reap()
    else:
        fake_ledger.fail(item.id, A, "flaky", retry=True)
    back = fake_ledger.get(item.id)
    assert (back.status, back.progress, back.note, back.agent_id) == (Status.PENDING, 0, "", None)
    assert_consistent(fake_ledger)


def test_release_by_a_non_holder_is_not_owner(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(NotOwner):
        fake_ledger.release(item.id, B)
    assert snapshot(fake_ledger) == before


def test_release_of_a_pending_item_is_not_owner(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    with pytest.raises(NotOwner):
        fake_ledger.release(item.id, A)


def test_a_handoff_outside_a_workflow_creates_the_next_item(fake_ledger: Ledger) -> None:
    # Ledger.complete(handoff=...) on an item submitted without a workflow: the child has none
    # either, and the completion and the handoff happen together (a Lua error here used to
    # leave the parent completed without its registry move).
    item = claimed(fake_ledger, role="developer")
    done = fake_ledger.complete(item.id, A, fence=item.fence, handoff=Handoff(Role.QA, "review"))
    assert done.status is Status.COMPLETED
    assert done.next_id is not None
    child = fake_ledger.get(done.next_id)
    assert (child.status, child.role, child.stage, child.workflow, child.parent_id) == (
        Status.PENDING,
        Role.QA,
        "review",
        None,
        item.id,
    )
    assert_consistent(fake_ledger)
