"""A queue message claims only what its worker can run: items of the types it has handlers for, of
the message's own role. What it cannot run is left untouched, still owed to another worker."""

from __future__ import annotations

import pytest
from ledger_helpers import A, assert_consistent, events_of, snapshot

from swarm.errors import BadInput, Misrouted, Unhandled
from swarm.ledger import Dispatch, Ledger
from swarm.models import EventKind, Role, Status, WorkItem


def _sent_item(ledger: Ledger, type_: str, role: str = "qa", priority: str = "medium") -> WorkItem:
    item = ledger.submit(type_, "x", role=role, priority=priority)
    ledger.dispatched(Dispatch.of(item))
    return item


def _sent(ledger: Ledger, role: Role = Role.QA) -> list[str]:
    return list(ledger.client.zrange(ledger.keys.sent(role), 0, -1))


def test_a_message_claims_the_first_owed_item_its_worker_handles_and_leaves_the_rest(
    fake_ledger: Ledger,
) -> None:
    review = _sent_item(fake_ledger, "review")
    test = _sent_item(fake_ledger, "test")
    claimed = fake_ledger.claim_delivery(review.id, A, "qa", handles={"test"})
    assert claimed.id == test.id
    untouched = fake_ledger.get(review.id)
    assert (untouched.status, untouched.attempts, untouched.fence) == (Status.PENDING, 0, None)
    assert events_of(fake_ledger, review.id) == [EventKind.SUBMITTED], "nothing happened to it"
    assert _sent(fake_ledger) == [review.id], "still owed a delivery, to a worker that handles it"
    assert_consistent(fake_ledger)


def test_with_no_handled_item_owed_nothing_is_written_and_the_refusal_names_the_type(
    fake_ledger: Ledger,
) -> None:
    review = _sent_item(fake_ledger, "review")
    before = snapshot(fake_ledger)
    with pytest.raises(Unhandled, match="no handler for type 'review' on role qa") as refused:
        fake_ledger.claim_delivery(review.id, A, "qa", handles={"test", "build"})
    assert (refused.value.type, refused.value.role, refused.value.work_id) == ("review", "qa", review.id)
    assert snapshot(fake_ledger) == before


@pytest.mark.parametrize("handles", [None, {"*"}, {"review", "*"}])
def test_a_catch_all_or_no_filter_claims_any_type(fake_ledger: Ledger, handles: set[str] | None) -> None:
    review = _sent_item(fake_ledger, "review")
    assert fake_ledger.claim_delivery(review.id, A, "qa", handles=handles).id == review.id


def test_a_message_of_another_role_never_claims_its_named_item(fake_ledger: Ledger) -> None:
    qa_item = _sent_item(fake_ledger, "review", role="qa", priority="high")
    before = snapshot(fake_ledger)
    with pytest.raises(Misrouted, match="is a qa item, not developer") as refused:
        fake_ledger.claim_delivery(qa_item.id, A, "developer")
    assert (refused.value.role, refused.value.priority, refused.value.type) == ("qa", "high", "review")
    assert snapshot(fake_ledger) == before, "nothing claimed, nothing written"


def test_a_misrouted_message_still_stands_in_for_its_own_roles_owed_work(fake_ledger: Ledger) -> None:
    qa_item = _sent_item(fake_ledger, "review", role="qa")
    dev_item = _sent_item(fake_ledger, "build", role="developer")
    assert fake_ledger.claim_delivery(qa_item.id, A, "developer").id == dev_item.id
    assert fake_ledger.get(qa_item.id).status is Status.PENDING
    assert _sent(fake_ledger) == [qa_item.id]
    assert_consistent(fake_ledger)


def test_handled_types_are_checked_before_anything_is_sent(fake_ledger: Ledger) -> None:
    item = _sent_item(fake_ledger, "review")
    with pytest.raises(BadInput, match="at least one"):
        fake_ledger.claim_delivery(item.id, A, "qa", handles=set())
    with pytest.raises(BadInput, match="not one string"):
        fake_ledger.claim_delivery(item.id, A, "qa", handles="review")
    with pytest.raises(BadInput, match="type"):
        fake_ledger.claim_delivery(item.id, A, "qa", handles={"bad type!"})
    assert fake_ledger.get(item.id).status is Status.PENDING


def test_an_owed_item_deep_in_the_sent_set_is_found(fake_ledger: Ledger) -> None:
    reviews = [_sent_item(fake_ledger, "review") for _ in range(20)]
    test = _sent_item(fake_ledger, "test")
    assert fake_ledger.claim_delivery(reviews[0].id, A, "qa", handles={"test"}).id == test.id
    assert _sent(fake_ledger) == [r.id for r in reviews]


def test_a_cancel_records_why(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("review", "x", role="qa")
    fake_ledger.cancel(item.id, reason="revoked: Celery task 1234")
    (cancelled,) = [e for e in fake_ledger.events(100) if e.event is EventKind.CANCELLED]
    assert cancelled.detail == "revoked: Celery task 1234"


def test_an_agent_record_says_which_types_its_worker_handles(fake_ledger: Ledger) -> None:
    assert fake_ledger.register_agent("agent-a", role="qa", handles={"test", "review"}).handles == [
        "review",
        "test",
    ]
    assert fake_ledger.register_agent("agent-b", role="qa", handles={"*", "test"}).handles == ["*"]
    assert fake_ledger.register_agent("agent-c", role="qa", handles=set()).handles == []
    assert fake_ledger.register_agent("agent-d", role="qa").handles is None, "not a worker's agent"
