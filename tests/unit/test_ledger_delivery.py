"""Delivery is owed until the claim: the sent sets, the redelivery arithmetic and claim_delivery."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from ledger_helpers import A, B, assert_consistent, expire_lease, with_settings

from swarm.deliveries import SENT_RANK_SPAN_MS
from swarm.errors import BadInput, ClaimConflict, InvalidTransition, NotFound
from swarm.ledger import Dispatch, Ledger
from swarm.models import EventKind, Role, Status, WorkItem


def _sent(ledger: Ledger, role: Role = Role.QA) -> dict[str, float]:
    return dict(ledger.client.zrange(ledger.keys.sent(role), 0, -1, withscores=True))


def _now_ms(ledger: Ledger) -> int:
    seconds, micros = ledger.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _sent_items(ledger: Ledger, n: int, role: str = "qa") -> list[WorkItem]:
    items = [ledger.submit("feature", f"item {i}", role=role) for i in range(n)]
    for item in items:
        assert ledger.dispatched(Dispatch.of(item)) is True
    return items


def _score(ledger: Ledger, work_id: str, sent_ms: int) -> float:
    rank = ledger.get(work_id).priority.rank
    return float(rank * SENT_RANK_SPAN_MS + sent_ms)


def _age(ledger: Ledger, work_ids: list[str], role: Role = Role.QA, by_ms: int = 60_000) -> None:
    """Backdates sends, as if they had been made ``by_ms`` ago (oldest first)."""
    now = _now_ms(ledger)
    for n, wid in enumerate(work_ids):
        ledger.client.zadd(ledger.keys.sent(role), {wid: _score(ledger, wid, now - by_ms + n)})


def test_a_writers_send_is_in_the_sent_set_at_once_and_in_the_outbox_until_confirmed(
    fake_ledger: Ledger,
) -> None:
    before = _now_ms(fake_ledger)
    item = fake_ledger.submit("feature", "x", role="qa")
    score = _sent(fake_ledger)[item.id]
    assert _score(fake_ledger, item.id, before) <= score <= _score(fake_ledger, item.id, _now_ms(fake_ledger))
    assert fake_ledger.client.zscore(fake_ledger.keys.outbox, item.id) is not None, "until confirmed"
    fake_ledger.dispatched(Dispatch.of(item))
    assert fake_ledger.client.zscore(fake_ledger.keys.outbox, item.id) is None
    assert _sent(fake_ledger) == {item.id: score}, "a confirmation keeps the item's place"
    assert_consistent(fake_ledger)


def test_a_sweepers_send_joins_the_sent_set_when_it_is_taken(fake_ledger: Ledger) -> None:
    (item,) = _sent_items(fake_ledger, 1)
    held = fake_ledger.claim(item.id, A)
    fake_ledger.release(item.id, A, fence=held.fence)
    assert _sent(fake_ledger) == {}, "owed a send no one has made yet"
    (taken,) = fake_ledger.due_dispatches()
    assert taken.work_id == item.id
    assert list(_sent(fake_ledger)) == [item.id]
    assert_consistent(fake_ledger)


@pytest.mark.parametrize("end", ["claim", "claim_next", "cancel"])
def test_a_claim_or_a_cancel_ends_the_delivery_debt(fake_ledger: Ledger, end: str) -> None:
    (item,) = _sent_items(fake_ledger, 1)
    if end == "claim":
        fake_ledger.claim(item.id, A)
    elif end == "claim_next":
        fake_ledger.claim_next("qa", A)
    else:
        fake_ledger.cancel(item.id)
    assert _sent(fake_ledger) == {}
    assert_consistent(fake_ledger)


def _back_to_pending(ledger: Ledger, work_id: str, how: str) -> None:
    """Claims the item, then ends that claim ``how``: a release, a retried failure or a reap."""
    held = ledger.claim(work_id, A)
    if how == "release":
        ledger.release(work_id, A, fence=held.fence)
    elif how == "retry":
        ledger.fail(work_id, A, "flaky", fence=held.fence, retry=True)
    else:
        expire_lease(ledger, work_id)
        ledger.reap()


@pytest.mark.parametrize("how", ["release", "retry", "reap"])
def test_an_item_back_in_pending_is_owed_a_new_send(fake_ledger: Ledger, how: str) -> None:
    (item,) = _sent_items(fake_ledger, 1)
    _back_to_pending(fake_ledger, item.id, how)
    assert fake_ledger.client.zscore(fake_ledger.keys.outbox, item.id) is not None
    assert _sent(fake_ledger) == {}, "not sent yet: the outbox owes it"
    assert_consistent(fake_ledger)


@pytest.mark.parametrize("how", ["release", "retry", "reap"])
def test_an_item_filed_for_manual_claims_never_enters_the_queues(fake_ledger: Ledger, how: str) -> None:
    item = fake_ledger.submit("improvement", "for a person", role="qa", dispatch=False)
    _back_to_pending(fake_ledger, item.id, how)
    assert fake_ledger.get(item.id).status is Status.PENDING
    assert fake_ledger.client.zscore(fake_ledger.keys.outbox, item.id) is None
    assert fake_ledger.dispatched(Dispatch.of(fake_ledger.get(item.id))) is False, "a stray send owes nothing"
    assert _sent(fake_ledger) == {}
    assert_consistent(fake_ledger)


def test_nothing_is_resent_while_every_owed_item_has_a_queued_message(fake_ledger: Ledger) -> None:
    items = _sent_items(fake_ledger, 5)
    _age(fake_ledger, [i.id for i in items])
    missing, due = fake_ledger.redeliver("qa", seen_ms=_now_ms(fake_ledger), queued=5, limit=100)
    assert (missing, due) == (0, [])
    missing, due = fake_ledger.redeliver("qa", seen_ms=_now_ms(fake_ledger), queued=7, limit=100)
    assert missing == -2, "surplus messages (duplicates) only lower the count"
    assert due == []


def test_lost_messages_are_replaced_up_to_the_last_shortfall_and_held_off_for_a_pass(
    fake_ledger: Ledger,
) -> None:
    items = _sent_items(fake_ledger, 5)
    ids = [i.id for i in items]
    _age(fake_ledger, ids)
    seen = _now_ms(fake_ledger)
    missing, due = fake_ledger.redeliver("qa", seen_ms=seen, queued=3, limit=0)
    assert (missing, due) == (2, []), "a first sighting only counts"
    missing, due = fake_ledger.redeliver("qa", seen_ms=seen, queued=3, hold_ms=60_000, limit=1)
    assert missing == 2
    assert [d.work_id for d in due] == ids[:1], "never more than the previous pass saw missing"
    assert due[0] == Dispatch(ids[0], "feature", Role.QA, items[0].priority, None, None)
    again = fake_ledger.redeliver("qa", seen_ms=seen, queued=3, hold_ms=60_000, limit=5)
    assert again == (2, []), "a concurrent pass is held off while the re-sent message is on its way"
    fake_ledger.client.hset(fake_ledger.keys.metrics, "redeliver_hold_ms:qa", 0)  # the hold is over
    missing, due = fake_ledger.redeliver("qa", seen_ms=_now_ms(fake_ledger), queued=4, limit=5)
    assert missing == 1, "the re-sent message is counted once queued: one more is missing"
    assert [d.work_id for d in due] == ids[:1], "messages name the most urgent owed items"
    events = [e for e in fake_ledger.events(50) if e.event is EventKind.REDELIVERED]
    assert [e.work_id for e in events] == [ids[0], ids[0]]
    metrics = fake_ledger.client.hgetall(fake_ledger.keys.metrics)
    assert metrics["redelivered:qa"] == "2"
    assert_consistent(fake_ledger)


def test_sends_made_after_the_observation_are_not_counted(fake_ledger: Ledger) -> None:
    seen = _now_ms(fake_ledger) - 10_000
    _sent_items(fake_ledger, 3)  # their messages were not in the queue when it was looked at
    assert fake_ledger.redeliver("qa", seen_ms=seen, queued=0, limit=5) == (0, [])


def test_owed_items_of_every_priority_are_counted(fake_ledger: Ledger) -> None:
    items = [fake_ledger.submit("feature", p, role="qa", priority=p) for p in ("low", "critical", "high")]
    for item in items:
        fake_ledger.dispatched(Dispatch.of(item))
    missing, due = fake_ledger.redeliver("qa", seen_ms=_now_ms(fake_ledger), queued=1, limit=5)
    assert missing == 2
    assert [d.work_id for d in due] == [items[1].id, items[2].id], "most urgent first"


def test_redelivery_is_per_role(fake_ledger: Ledger) -> None:
    qa = _sent_items(fake_ledger, 2, role="qa")
    _sent_items(fake_ledger, 2, role="developer")
    seen = _now_ms(fake_ledger)
    assert fake_ledger.redeliver("developer", seen_ms=seen, queued=2, limit=5) == (0, [])
    missing, due = fake_ledger.redeliver("qa", seen_ms=seen, queued=0, limit=5)
    assert missing == 2
    assert {d.work_id for d in due} == {i.id for i in qa}
    assert {d.role for d in due} == {Role.QA}


def test_redeliver_refuses_bad_arguments(fake_ledger: Ledger) -> None:
    with pytest.raises(BadInput):
        fake_ledger.redeliver("tester", seen_ms=0, queued=0)
    with pytest.raises(BadInput):
        fake_ledger.redeliver("qa", seen_ms=0, queued="many")  # type: ignore[arg-type]


def test_a_message_claims_its_own_item_when_it_heads_the_roles_debt(fake_ledger: Ledger) -> None:
    first, second = _sent_items(fake_ledger, 2)
    claimed = fake_ledger.claim_delivery(first.id, A, "qa")
    assert claimed.id == first.id
    assert claimed.status is Status.CLAIMED
    assert claimed.agent_id == A
    assert list(_sent(fake_ledger)) == [second.id]
    assert_consistent(fake_ledger)


def test_the_next_message_of_a_role_claims_the_item_whose_message_was_lost(fake_ledger: Ledger) -> None:
    lost, second, third = _sent_items(fake_ledger, 3)  # lost's message vanished in a dead consumer
    assert fake_ledger.claim_delivery(second.id, A, "qa").id == lost.id, "the longest owed goes first"
    assert fake_ledger.claim_delivery(third.id, A, "qa").id == second.id
    assert fake_ledger.claim_delivery(lost.id, A, "qa").id == third.id, "a re-sent message takes the rest"
    with pytest.raises(ClaimConflict) as refused:
        fake_ledger.claim_delivery(lost.id, B, "qa")
    assert refused.value.holder == A, "with nothing owed, the message's own refusal"
    assert _sent(fake_ledger) == {}
    assert_consistent(fake_ledger)


def test_a_message_claims_the_most_urgent_owed_item_first(fake_ledger: Ledger) -> None:
    low = _sent_items(fake_ledger, 3)
    urgent = fake_ledger.submit("hotfix", "now", role="qa", priority="critical")
    fake_ledger.dispatched(Dispatch.of(urgent))
    assert fake_ledger.claim_delivery(low[0].id, A, "qa").id == urgent.id


def test_messages_consumed_before_their_sends_are_confirmed_claim_every_item(
    fake_ledger: Ledger,
) -> None:
    (head,) = _sent_items(fake_ledger, 1)  # consumer A has popped its message
    racing = fake_ledger.submit("feature", "popped by B before its writer confirmed", role="qa")
    assert fake_ledger.claim_delivery(racing.id, B, "qa").id == head.id, "the longest owed first"
    assert fake_ledger.claim_delivery(head.id, A, "qa").id == racing.id, "A's message takes the other"
    fake_ledger.dispatched(Dispatch.of(racing))  # the writer's late confirmation owes nothing new
    assert _sent(fake_ledger) == {}
    urgent = fake_ledger.submit("hotfix", "more urgent", role="qa", priority="high")
    _sent_items(fake_ledger, 1)
    assert fake_ledger.claim_delivery(head.id, A, "qa").id == urgent.id
    assert_consistent(fake_ledger)


def test_a_resent_and_confirmed_item_keeps_its_place(fake_ledger: Ledger) -> None:
    ids = [i.id for i in _sent_items(fake_ledger, 3)]
    _age(fake_ledger, ids)
    _, due = fake_ledger.redeliver("qa", seen_ms=_now_ms(fake_ledger), queued=2, limit=1)
    assert [d.work_id for d in due] == ids[:1]
    fake_ledger.dispatched(due[0])  # its sender confirms the new message
    assert list(_sent(fake_ledger)) == ids, "the longest owed stays first"
    assert fake_ledger.claim_delivery(ids[2], A, "qa").id == ids[0]


def test_a_message_for_an_item_that_is_gone_still_stands_in_for_its_role(fake_ledger: Ledger) -> None:
    (owed,) = _sent_items(fake_ledger, 1)
    assert fake_ledger.claim_delivery("work_1_expired_long_ago", A, "qa").id == owed.id
    with pytest.raises(NotFound):
        fake_ledger.claim_delivery("work_1_expired_long_ago", A, "qa")
    assert not fake_ledger.client.exists(fake_ledger.keys.item("work_1_expired_long_ago"))


def test_a_message_whose_item_is_taken_claims_another_owed_item(fake_ledger: Ledger) -> None:
    first, second = _sent_items(fake_ledger, 2)
    fake_ledger.claim(first.id, B)  # e.g. a person's `swarm claim`, or a duplicate's first copy
    assert fake_ledger.claim_delivery(first.id, A, "qa").id == second.id
    assert_consistent(fake_ledger)


def test_a_message_of_a_finished_item_with_nothing_owed_is_refused(fake_ledger: Ledger) -> None:
    (item,) = _sent_items(fake_ledger, 1)
    held = fake_ledger.claim(item.id, A)
    fake_ledger.complete(item.id, A, fence=held.fence)
    with pytest.raises(InvalidTransition):
        fake_ledger.claim_delivery(item.id, B, "qa")


def test_a_message_never_takes_another_roles_item(fake_ledger: Ledger) -> None:
    (done,) = _sent_items(fake_ledger, 1, role="qa")
    fake_ledger.claim(done.id, A)
    _sent_items(fake_ledger, 1, role="developer")
    with pytest.raises(ClaimConflict):
        fake_ledger.claim_delivery(done.id, B, "qa")


def test_a_message_does_not_claim_a_manual_item_or_cut_a_backoff_short(fake_ledger: Ledger) -> None:
    manual = fake_ledger.submit("improvement", "for a person", role="qa", dispatch=False)
    with pytest.raises(InvalidTransition, match="manual"):
        fake_ledger.claim_delivery(manual.id, A, "qa")
    (flaky,) = _sent_items(fake_ledger, 1)
    held = fake_ledger.claim(flaky.id, A)
    fake_ledger.fail(flaky.id, A, "transient", fence=held.fence, retry=True, backoff_seconds=600)
    with pytest.raises(InvalidTransition, match="backoff"):
        fake_ledger.claim_delivery(flaky.id, B, "qa")  # its first message, delivered twice
    assert fake_ledger.get(flaky.id).status is Status.PENDING
    fake_ledger.claim(manual.id, B)  # a person still can, and so can an explicit claim
    assert_consistent(fake_ledger)


def test_the_dispatch_grace_is_bounded_by_the_lease(fake_ledger: Ledger) -> None:
    assert fake_ledger.settings.dispatch_grace_seconds == fake_ledger.settings.lease_seconds / 3
    long = with_settings(fake_ledger, requeue_after_seconds=600.0, lease_seconds=5.0)
    assert long.settings.dispatch_grace_seconds == 5.0
    before = _now_ms(long)
    item = long.submit("feature", "handed off by a writer that died")
    due = long.client.zscore(long.keys.outbox, item.id)
    assert due is not None
    assert due <= _now_ms(long) + 5000
    assert due >= before + 5000


def test_the_sent_sets_rank_span_agrees_with_the_lua_prelude() -> None:
    source = (resources.files("swarm") / "lua" / "_lib.lua").read_text(encoding="utf-8")
    match = re.search(r"local SENT_RANK_SPAN = (\d+)", source)
    assert match is not None
    assert int(match.group(1)) == SENT_RANK_SPAN_MS
    assert 3 * SENT_RANK_SPAN_MS + SENT_RANK_SPAN_MS - 1 < 2**53, "scores stay exact in Lua doubles"


def test_a_delivery_claimed_again_by_its_agent_gets_the_same_item_back(fake_ledger: Ledger) -> None:
    first, second, third = _sent_items(fake_ledger, 3)
    own = fake_ledger.claim_delivery(first.id, A, "qa", delivery_id="task-1")
    again = fake_ledger.claim_delivery(first.id, A, "qa", delivery_id="task-1")  # its reply was lost
    assert again.id == own.id == first.id
    assert again.fence == own.fence, "the same claim, not a new one"
    fake_ledger.claim(second.id, B)
    stand_in = fake_ledger.claim_delivery(second.id, A, "qa", delivery_id="task-2")
    assert stand_in.id == third.id
    assert fake_ledger.claim_delivery(second.id, A, "qa", delivery_id="task-2").id == third.id
    assert _sent(fake_ledger) == {}
    fresh = _sent_items(fake_ledger, 1)[0]
    assert fake_ledger.claim_delivery(second.id, A, "qa", delivery_id="task-3").id == fresh.id
    with pytest.raises(ClaimConflict):  # another agent's copy of the message takes nothing
        fake_ledger.claim_delivery(first.id, B, "qa", delivery_id="task-1")
    claimed = [e for e in fake_ledger.events(50) if e.event is EventKind.CLAIMED]
    assert len(claimed) == 4, "one claim per item, whatever was retried"
    assert_consistent(fake_ledger)
