"""The dispatch outbox: every pending item is owed a queue message until one is confirmed sent."""

from __future__ import annotations

import pytest
from ledger_helpers import A, B, assert_consistent, expire_lease, with_settings

from swarm.errors import BadInput, InvalidTransition, NotFound
from swarm.ledger import Dispatch, Ledger
from swarm.models import Priority, Role


def _outbox(ledger: Ledger) -> dict[str, float]:
    return dict(ledger.client.zrange(ledger.keys.outbox, 0, -1, withscores=True))


def _server_ms(ledger: Ledger) -> int:
    seconds, micros = ledger.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_a_submitted_item_is_owed_a_send_until_its_sender_confirms(fake_ledger: Ledger) -> None:
    before = _server_ms(fake_ledger)
    item = fake_ledger.submit("feature", "x", role="qa", priority="high")
    due = _outbox(fake_ledger)[item.id]
    grace_ms = fake_ledger.settings.dispatch_grace_seconds * 1000
    assert before + grace_ms <= due <= _server_ms(fake_ledger) + grace_ms, "a sweep waits one grace"
    assert fake_ledger.due_dispatches() == [], "not due while its sender has the grace to send it"
    assert fake_ledger.dispatched(Dispatch.of(item)) is True
    assert item.id not in _outbox(fake_ledger)
    assert_consistent(fake_ledger)


def test_an_unconfirmed_send_is_due_after_the_grace_and_taken_by_one_sweeper(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("feature", "lost send", role="qa", priority="high", payload={"k": 1})
    fake_ledger.client.zadd(fake_ledger.keys.outbox, {item.id: 0})  # its grace ran out
    taken = fake_ledger.due_dispatches()
    assert taken == [Dispatch(item.id, "feature", Role.QA, Priority.HIGH, None)]
    again = fake_ledger.due_dispatches()  # a second sweeper, within the taker's grace
    assert again == [], "a taken entry is held for the taker"
    assert fake_ledger.dispatched(taken[0]) is True
    assert _outbox(fake_ledger) == {}


def test_the_grace_comes_from_the_writers_settings(fake_ledger: Ledger) -> None:
    quick = with_settings(fake_ledger, requeue_after_seconds=0.001)
    before = _server_ms(quick)
    item = quick.submit("feature", "x")
    assert before + 1 <= _outbox(quick)[item.id] <= _server_ms(quick) + 1


def test_a_manual_item_is_never_sent(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("feature", "for a human", dispatch=False)
    assert item.id not in _outbox(fake_ledger)
    claimed = fake_ledger.submit("feature", "claimed at once", claim_for=A)
    assert claimed.id not in _outbox(fake_ledger), "an item claimed in the same step is not sent"
    assert_consistent(fake_ledger)


def test_a_claim_or_a_cancel_ends_the_debt(fake_ledger: Ledger) -> None:
    claimed = fake_ledger.submit("feature", "a")
    cancelled = fake_ledger.submit("feature", "b")
    fake_ledger.claim(claimed.id, A)
    fake_ledger.cancel(cancelled.id)
    assert _outbox(fake_ledger) == {}
    assert_consistent(fake_ledger)


def test_a_retry_is_due_after_its_backoff(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("feature", "flaky")
    fake_ledger.dispatched(Dispatch.of(item))
    held = fake_ledger.claim(item.id, A)
    before = _server_ms(fake_ledger)
    fake_ledger.fail(item.id, A, "transient", fence=held.fence, retry=True, backoff_seconds=2.0)
    due = _outbox(fake_ledger)[item.id]
    assert before + 2000 <= due <= _server_ms(fake_ledger) + 2000
    assert fake_ledger.due_dispatches() == [], "not before its backoff"
    fake_ledger.client.zadd(fake_ledger.keys.outbox, {item.id: before})  # the backoff is over
    (taken,) = fake_ledger.due_dispatches()
    assert taken.work_id == item.id
    assert taken.fence == held.fence
    assert_consistent(fake_ledger)


@pytest.mark.parametrize("how", ["reap", "release"])
def test_a_reaped_or_released_item_is_due_at_once(fake_ledger: Ledger, how: str) -> None:
    item = fake_ledger.submit("feature", "x")
    fake_ledger.dispatched(Dispatch.of(item))
    held = fake_ledger.claim(item.id, A)
    if how == "reap":
        expire_lease(fake_ledger, item.id)
        fake_ledger.reap()
    else:
        fake_ledger.release(item.id, A, fence=held.fence)
    (taken,) = fake_ledger.due_dispatches()
    assert taken.work_id == item.id
    assert_consistent(fake_ledger)


def test_a_late_confirmation_leaves_a_later_episodes_debt_alone(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("feature", "x")
    sent = Dispatch.of(item)  # read for sending, before any claim
    held = fake_ledger.claim(item.id, B)  # the message was fast: claimed ...
    fake_ledger.fail(item.id, B, "flaky", fence=held.fence, retry=True, backoff_seconds=5)  # ... and back
    assert fake_ledger.dispatched(sent) is False, "the retry's own send is still owed"
    assert item.id in _outbox(fake_ledger)


def test_bad_arguments_are_refused(fake_ledger: Ledger) -> None:
    with pytest.raises(BadInput):
        fake_ledger.due_dispatches(0)
    item = fake_ledger.submit("feature", "x")
    held = fake_ledger.claim(item.id, A)
    for bad in (-1.0, float("nan"), "1"):
        with pytest.raises(BadInput):
            fake_ledger.fail(item.id, A, "x", fence=held.fence, retry=True, backoff_seconds=bad)  # type: ignore[arg-type]
    assert item.id not in _outbox(fake_ledger)


def test_reprioritise_reranks_a_pending_item_and_sends_it_to_its_new_queue(fake_ledger: Ledger) -> None:
    low = fake_ledger.submit("feature", "starved", role="qa", priority="low")
    other = fake_ledger.submit("feature", "newer", role="qa", priority="medium")
    for item in (low, other):
        fake_ledger.dispatched(Dispatch.of(item))
    moved = fake_ledger.reprioritise(low.id, "high")
    assert moved.priority is Priority.HIGH
    ready = fake_ledger.client.zrange(fake_ledger.keys.ready(Role.QA), 0, -1)
    assert ready == [low.id, other.id], "it now comes first for claim_next"
    assert [d.work_id for d in fake_ledger.due_dispatches()] == [low.id], "owed a send at once"
    kinds = [e.event.value for e in fake_ledger.events(10) if e.work_id == low.id]
    assert kinds[-1] == "reprioritised"
    assert_consistent(fake_ledger)


def test_reprioritise_keeps_a_retry_in_its_backoff(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("feature", "flaky", role="qa").id, A)
    fake_ledger.fail(item.id, A, "boom", retry=True, backoff_seconds=600)
    fake_ledger.reprioritise(item.id, "critical")
    assert fake_ledger.due_dispatches() == [], "still waiting out its 600 s backoff"
    assert _outbox(fake_ledger)[item.id] > _server_ms(fake_ledger) + 500_000


def test_reprioritise_leaves_manual_items_out_of_the_queues_and_refuses_others(fake_ledger: Ledger) -> None:
    manual = fake_ledger.submit("feature", "by hand", role="qa", dispatch=False)
    fake_ledger.reprioritise(manual.id, "critical")
    assert manual.id not in _outbox(fake_ledger)
    held = fake_ledger.claim(fake_ledger.submit("feature", "held", role="qa").id, B)
    with pytest.raises(InvalidTransition):
        fake_ledger.reprioritise(held.id, "high")
    with pytest.raises(NotFound):
        fake_ledger.reprioritise("work_1_nothing", "high")
    with pytest.raises(BadInput):
        fake_ledger.reprioritise(manual.id, "urgent")
    assert_consistent(fake_ledger)
