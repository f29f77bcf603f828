"""Re-running failed and dead items (``Ledger.retry``) and a claim's handler options
(``Ledger.set_options``)."""

from __future__ import annotations

import pytest
from ledger_helpers import A, B, assert_consistent, claimed, events_of, expire_lease, snapshot

from swarm.errors import BadInput, InvalidTransition, LeaseLost, NotFound, NotOwner
from swarm.ledger import Handoff, Ledger
from swarm.models import EventKind, Role, Status

# -- retry -------------------------------------------------------------------------------------


def dead_item(ledger: Ledger, max_attempts: int = 2) -> str:
    item = ledger.submit("build", max_attempts=max_attempts)
    for _ in range(max_attempts):
        held = ledger.claim(item.id, A)
        ledger.fail(item.id, A, "flaky", fence=held.fence, retry=True)
    assert ledger.get(item.id).status is Status.DEAD
    return item.id


def test_retry_of_a_failed_item_makes_it_pending_with_a_new_budget_and_an_event(fake_ledger: Ledger) -> None:
    held = claimed(fake_ledger, A)
    fake_ledger.fail(held.id, A, "no good", fence=held.fence)
    again = fake_ledger.retry(held.id, B)
    assert again.status is Status.PENDING
    assert (again.attempts, again.agent_id, again.completed_at) == (0, None, None)
    assert again.error == "no good", "the last error stays until the next outcome"
    assert_consistent(fake_ledger)
    assert events_of(fake_ledger, held.id)[-1] is EventKind.RETRIED
    event = fake_ledger.events(1)[0]
    assert (event.agent_id, event.status, event.detail) == (B, Status.PENDING, "was failed, attempts 0/3")
    assert fake_ledger.claim(held.id, A).status is Status.CLAIMED


def test_a_retried_dead_item_gets_its_whole_attempt_budget_again(fake_ledger: Ledger) -> None:
    wid = dead_item(fake_ledger, max_attempts=2)
    assert fake_ledger.retry(wid).attempts == 0
    held = fake_ledger.claim(wid, A)
    assert fake_ledger.fail(wid, A, "flaky", fence=held.fence, retry=True).status is Status.PENDING
    held = fake_ledger.claim(wid, A)
    assert fake_ledger.fail(wid, A, "flaky", fence=held.fence, retry=True).status is Status.DEAD
    assert_consistent(fake_ledger)


def test_a_retried_item_is_owed_a_queue_message_at_once(fake_ledger: Ledger) -> None:
    wid = dead_item(fake_ledger)
    fake_ledger.retry(wid)
    due = [d.work_id for d in fake_ledger.due_dispatches()]
    assert due == [wid], "the next dispatch sweep sends it"


def test_a_retried_manual_item_stays_out_of_the_queues(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", dispatch=False)
    held = fake_ledger.claim(item.id, A)
    fake_ledger.fail(item.id, A, "no good", fence=held.fence)
    fake_ledger.retry(item.id)
    assert fake_ledger.due_dispatches() == []
    assert_consistent(fake_ledger)
    assert fake_ledger.claim_next(Role.DEVELOPER, B) is not None, "it waits for a manual claim"


def test_the_last_holder_of_a_retried_item_has_lost_its_lease(fake_ledger: Ledger) -> None:
    held = claimed(fake_ledger, A)
    fake_ledger.fail(held.id, A, "no good", fence=held.fence)
    fake_ledger.retry(held.id)
    with pytest.raises(LeaseLost):
        fake_ledger.progress(held.id, A, 50, fence=held.fence)


def test_a_retry_clears_a_cancel_request_left_on_a_failed_item(fake_ledger: Ledger) -> None:
    held = claimed(fake_ledger, A)
    fake_ledger.cancel(held.id, B)
    fake_ledger.fail(held.id, A, "gave up", fence=held.fence)
    assert fake_ledger.retry(held.id).cancel_requested is False


@pytest.mark.parametrize("state", ["pending", "claimed", "completed", "cancelled"])
def test_retry_of_an_item_that_is_not_failed_or_dead_is_refused_and_writes_nothing(
    fake_ledger: Ledger, state: str
) -> None:
    item = fake_ledger.submit("build")
    if state == "claimed":
        fake_ledger.claim(item.id, A)
    elif state == "completed":
        held = fake_ledger.claim(item.id, A)
        fake_ledger.complete(item.id, A, fence=held.fence)
    elif state == "cancelled":
        fake_ledger.cancel(item.id)
    before = snapshot(fake_ledger)
    with pytest.raises(InvalidTransition, match=f"cannot retry {item.id}: it is already {state}"):
        fake_ledger.retry(item.id)
    assert snapshot(fake_ledger) == before


def test_retry_of_an_unknown_item_is_not_found(fake_ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        fake_ledger.retry("work_1_unknown")


# -- set_options -------------------------------------------------------------------------------


def test_a_handler_lease_renews_the_claim_and_every_later_renewal_uses_it(fake_ledger: Ledger) -> None:
    held = claimed(fake_ledger, A)
    adopted = fake_ledger.set_options(held.id, A, fence=held.fence, lease_seconds=600)
    assert adopted.lease_expires_at is not None
    assert adopted.claimed_at is not None
    assert 599 < (adopted.lease_expires_at - adopted.claimed_at).total_seconds() <= 601
    assert 599_000 < fake_ledger.client.pttl(fake_ledger.keys.claim(held.id)) <= 600_000
    progressed = fake_ledger.progress(held.id, A, 10, fence=held.fence)
    assert progressed.lease_expires_at is not None
    assert progressed.claimed_at is not None
    assert (progressed.lease_expires_at - progressed.claimed_at).total_seconds() > 599
    assert_consistent(fake_ledger)


def test_a_handler_attempt_budget_is_what_failures_and_the_reaper_count_against(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")  # max_attempts 3 by default
    held = fake_ledger.claim(item.id, A)
    assert fake_ledger.set_options(item.id, A, fence=held.fence, max_attempts=1).max_attempts == 1
    expire_lease(fake_ledger, item.id)
    assert fake_ledger.reap() == [(item.id, Status.DEAD)]


def test_a_workflow_stage_hands_on_the_works_own_budget_not_its_handlers(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", max_attempts=4, workflow="feature", stage="pm", role="pm")
    held = fake_ledger.claim(item.id, A)
    fake_ledger.set_options(item.id, A, fence=held.fence, max_attempts=9)
    done = fake_ledger.complete(item.id, A, fence=held.fence, handoff=Handoff(Role.ARCHITECT, "architect"))
    assert done.next_id is not None
    assert fake_ledger.get(done.next_id).max_attempts == 4


def test_only_the_holder_sets_options(fake_ledger: Ledger) -> None:
    held = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(NotOwner):
        fake_ledger.set_options(held.id, B, lease_seconds=60)
    with pytest.raises(BadInput):
        fake_ledger.set_options(held.id, A, fence=held.fence, max_attempts=0)
    assert snapshot(fake_ledger) == before
