"""The ledger's claims (SPEC §4-§5): claim and claim_next, conflicts, fencing tokens, leases."""

from __future__ import annotations

from datetime import timedelta

import fakeredis
import pytest
from ledger_helpers import (
    A,
    B,
    CountingRedis,
    assert_consistent,
    claimed,
    expire_lease,
    snapshot,
    stored_field,
)

from swarm.errors import BadInput, ClaimConflict, InvalidTransition
from swarm.ledger import Ledger
from swarm.models import Role, Status
from swarm.settings import Settings

# -- claim -------------------------------------------------------------------------------------


def test_claim_gives_the_agent_a_fenced_lease_of_the_default_length(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    got = fake_ledger.claim(item.id, A)
    assert got.status is Status.CLAIMED
    assert got.agent_id == A
    assert got.fence == 1
    assert got.claimed_at is not None
    assert got.updated_at == got.claimed_at
    claimed_us = int(stored_field(fake_ledger, item.id, "claimed_at") or 0)
    expires_us = int(stored_field(fake_ledger, item.id, "lease_expires_at") or 0)
    assert expires_us - claimed_us == 30_000_000
    claim_key = fake_ledger.keys.claim(item.id)
    assert fake_ledger.client.get(claim_key) == A
    assert 29_000 < fake_ledger.client.pttl(claim_key) <= 30_000
    assert_consistent(fake_ledger)


def test_claim_lease_seconds_sets_the_lease_length(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=5)
    assert item.lease_expires_at is not None
    assert item.claimed_at is not None
    assert abs(item.lease_expires_at - item.claimed_at - timedelta(seconds=5)) <= timedelta(microseconds=1)
    assert 4_000 < fake_ledger.client.pttl(fake_ledger.keys.claim(item.id)) <= 5_000


def test_fencing_tokens_strictly_increase_with_every_claim(fake_ledger: Ledger) -> None:
    fences = [claimed(fake_ledger).fence for _ in range(3)]
    assert fences == [1, 2, 3]
    item = claimed(fake_ledger)
    fake_ledger.release(item.id, A)
    again = fake_ledger.claim(item.id, A)
    assert again.fence is not None
    assert item.fence is not None
    assert again.fence > item.fence


def test_second_claimer_gets_conflict_naming_holder(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(ClaimConflict) as caught:
        fake_ledger.claim(item.id, B)
    assert caught.value.holder == A
    assert caught.value.work_id == item.id
    assert A in str(caught.value)
    assert caught.value.exit_code == 3
    assert snapshot(fake_ledger) == before


def test_claim_by_the_holder_itself_is_also_a_conflict(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    with pytest.raises(ClaimConflict, match=f"held by {A}"):
        fake_ledger.claim(item.id, A)


def test_claim_of_an_in_progress_item_is_a_conflict_naming_holder(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.progress(item.id, A, 10)
    with pytest.raises(ClaimConflict) as caught:
        fake_ledger.claim(item.id, B)
    assert caught.value.holder == A


def test_claim_of_a_lapsed_lease_names_the_old_holder_until_reaped(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    with pytest.raises(ClaimConflict, match="lease expired") as caught:
        fake_ledger.claim(item.id, B)
    assert caught.value.holder == A
    fake_ledger.reap()
    assert fake_ledger.claim(item.id, B).agent_id == B


@pytest.mark.parametrize("finish", ["complete", "fail", "cancel"])
def test_claim_of_a_finished_item_is_an_invalid_transition(fake_ledger: Ledger, finish: str) -> None:
    item = claimed(fake_ledger, A)
    if finish == "complete":
        fake_ledger.complete(item.id, A)
    elif finish == "fail":
        fake_ledger.fail(item.id, A, "boom")
    else:
        fake_ledger.cancel(item.id)
        fake_ledger.release(item.id, A)
    before = snapshot(fake_ledger)
    with pytest.raises(InvalidTransition, match="cannot claim"):
        fake_ledger.claim(item.id, B)
    assert snapshot(fake_ledger) == before


def test_a_claim_is_one_round_trip(settings: Settings) -> None:
    client = CountingRedis(server=fakeredis.FakeServer(), decode_responses=True)
    ledger = Ledger(client, settings)
    item = ledger.submit("build")
    ledger.claim(ledger.submit("warm-up").id, B)
    client.commands.clear()
    ledger.claim(item.id, A)
    assert client.commands == ["EVALSHA"]


# -- claim_next --------------------------------------------------------------------------------


def test_claim_next_takes_the_highest_priority_then_the_oldest(fake_ledger: Ledger) -> None:
    order = ["low", "medium", "critical", "high", "medium", "critical", "low", "high"]
    submitted = [fake_ledger.submit("build", f"#{n}", priority=p) for n, p in enumerate(order)]
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    # ids sort by creation time, so (rank, id) is "highest priority, then oldest"
    expected = [i.id for i in sorted(submitted, key=lambda i: (rank[i.priority], i.id))]
    got = []
    while (item := fake_ledger.claim_next("developer", A)) is not None:
        got.append(item.id)
        assert item.agent_id == A
    assert got == expected
    assert_consistent(fake_ledger)


def test_claim_next_takes_only_the_roles_items(fake_ledger: Ledger) -> None:
    qa_item = fake_ledger.submit("test", role="qa", priority="critical")
    dev_item = fake_ledger.submit("build", role="developer", priority="low")
    assert fake_ledger.claim_next(Role.PM, A) is None
    got_dev = fake_ledger.claim_next(Role.DEVELOPER, A)
    assert got_dev is not None
    assert got_dev.id == dev_item.id
    got_qa = fake_ledger.claim_next("qa", B)
    assert got_qa is not None
    assert got_qa.id == qa_item.id


def test_claim_next_returns_none_and_writes_nothing_when_nothing_is_pending(fake_ledger: Ledger) -> None:
    assert fake_ledger.claim_next(Role.DEVELOPER, A) is None
    held = claimed(fake_ledger, A)
    done = claimed(fake_ledger, A)
    fake_ledger.complete(done.id, A)
    before = snapshot(fake_ledger)
    assert fake_ledger.claim_next(Role.DEVELOPER, B) is None
    assert snapshot(fake_ledger) == before
    assert fake_ledger.get(held.id).agent_id == A


def test_claim_next_refuses_an_unknown_role(fake_ledger: Ledger) -> None:
    with pytest.raises(BadInput, match="unknown role 'tester'"):
        fake_ledger.claim_next("tester", A)


def test_retried_item_keeps_its_place_by_age(fake_ledger: Ledger) -> None:
    first = fake_ledger.submit("build", "first")
    fake_ledger.submit("build", "second")
    fake_ledger.claim(first.id, A)
    fake_ledger.fail(first.id, A, "flaky", retry=True)
    nxt = fake_ledger.claim_next(Role.DEVELOPER, B)
    assert nxt is not None
    assert nxt.id == first.id
