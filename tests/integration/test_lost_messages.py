"""Delivery is owed until the claim (SPEC §5, "Delivery"; README, "Nothing waits on a lost message").

A consumer killed between taking a message and claiming its item loses the message (killed
before kombu wrote its ``unacked`` copy) or parks it in ``unacked`` until the visibility timeout
(killed just after). Either way the item must run again within about two leases, on real
workers: the redelivery pass of a surviving worker re-sends it. And a long backlog must not
flood the broker: the queue stays within a small constant of the pending count.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from swarm import Settings, Status, Swarm
from swarm.celery_app import role_queues
from swarm.ledger import Ledger
from swarm.models import EventKind, Role

from .polling import wait_until
from .workers_harness import item_events, running_worker

pytestmark = pytest.mark.integration

LEASE_S = 4.0  # the redelivery pass runs every lease / 4; the bound under test is two leases
DEADLINE_S = 90.0  # generous for a loaded 2-core machine; every wait returns once its condition holds
HANDLERS = "workers.demo,tests.integration.dying_consumer"


def _client(redis_url: str, prefix: str) -> Swarm:
    settings = Settings(key_prefix=prefix, redis_url=None, lease_seconds=LEASE_S)
    return Swarm(redis_url, agent_id="pm-1", settings=settings)


def _claim_times(ledger: Ledger, work_id: str) -> list[float]:
    return [e.at.timestamp() for e in item_events(ledger, work_id) if e.event is EventKind.CLAIMED]


def _completed_once(ledger: Ledger, ids: list[str]) -> bool:
    return all(ledger.get(w).status is Status.COMPLETED for w in ids)


@pytest.mark.parametrize("die_at", ["pop", "unacked"])
def test_a_consumer_killed_between_its_pop_and_its_claim_loses_no_item(
    redis_url: str, prefix: str, tmp_path: Path, die_at: str
) -> None:
    client = _client(redis_url, prefix)
    ledger = client.ledger
    env = {"SWARM_LEASE_SECONDS": str(LEASE_S), "SWARM_HANDLER_MODULES": HANDLERS}
    dying_env = {**env, "SWARM_TEST_DIE_AT": die_at}
    with (
        running_worker(redis_url, prefix, "developer", tmp_path / "survivor.log", "-c", "1", env=env),
        running_worker(
            redis_url, prefix, "developer", tmp_path / "dying.log", "-c", "1", env=dying_env
        ) as dying,
    ):
        # Two idle consumers and three items that each take a while: whichever consumer takes
        # the first is busy with it, so the other takes the second. The dying one dies with its
        # message, before claiming the item.
        ids = [client.submit("feature", f"item {n}", payload={"duration_s": 1.5}).id for n in range(3)]
        wait_until(lambda: dying.poll() is not None, "the dying consumer to take a message and die", 30.0)
        killed_at = time.time()
        lost = ledger.client.get("{" + prefix + "}:test:died")  # the message the consumer died with
        assert lost in ids
        wait_until(
            lambda: _completed_once(ledger, ids),
            "every item, the lost message's too, to complete",
            DEADLINE_S,
            explain=lambda: str({w: ledger.get(w).status.value for w in ids}),
        )
    (claimed_at,) = _claim_times(ledger, lost)  # claimed once: the dead consumer never claimed it
    recovery = claimed_at - killed_at
    print(
        f"\n[{die_at}] the lost message's item was claimed {recovery:.2f}s after the kill (lease {LEASE_S}s)"
    )
    assert recovery <= 2 * LEASE_S, f"claimed {recovery:.2f}s after the kill, over two leases"
    completions = [e.work_id for e in ledger.events(10_000) if e.event is EventKind.COMPLETED]
    assert sorted(completions) == sorted(ids), "each item completed exactly once"
    resent = [e for e in ledger.events(10_000) if e.event is EventKind.REDELIVERED]
    assert len(resent) == 1, f"one message was lost, one was put back: {resent}"
    client.close()


BACKLOG = 10_000
LOST = 5  # messages the test takes off the queue, as a consumer that died right after its pop would
SLACK = 3  # how far above the pending count the queue may go (a re-send racing a pop)


def _queued(ledger: Ledger, role: Role) -> int:
    pipe = ledger.client.pipeline()
    for queue in role_queues(ledger.settings, role):
        pipe.llen(ledger.keys.broker_lists(queue)[0])
    return sum(pipe.execute())


def test_a_long_backlog_does_not_flood_the_broker_and_lost_messages_are_resent(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = _client(redis_url, prefix)
    ledger = client.ledger
    started = time.monotonic()
    ids = [
        client.submit("review", f"backlog {n}", role="qa", payload={"duration_s": 0.2}).id
        for n in range(BACKLOG)
    ]
    print(f"\nsubmitted {BACKLOG} items in {time.monotonic() - started:.1f}s")
    assert _queued(ledger, Role.QA) == BACKLOG
    queue = ledger.keys.broker_lists(role_queues(ledger.settings, Role.QA)[2])[0]  # medium
    lost = [ledger.client.rpop(queue) for _ in range(LOST)]  # the oldest messages, gone
    assert all(lost)
    env = {"SWARM_LEASE_SECONDS": str(LEASE_S)}
    samples: list[tuple[int, int]] = []

    def sample() -> tuple[int, int]:
        pipe = ledger.client.pipeline(transaction=True)
        pipe.zcard(ledger.keys.ready(Role.QA))
        for q in role_queues(ledger.settings, Role.QA):
            pipe.llen(ledger.keys.broker_lists(q)[0])
        pending, *lengths = pipe.execute()
        samples.append((int(pending), sum(lengths)))
        return samples[-1]

    def resent() -> int:
        return int(ledger.client.hget(ledger.keys.metrics, "redelivered:qa") or 0)

    with running_worker(redis_url, prefix, "qa", tmp_path / "qa.log", "-c", "1", env=env):
        # The slow worker drains about 5 items a second; the lost ones must be re-sent meanwhile,
        # and never more than were lost.
        deadline = time.monotonic() + DEADLINE_S
        while resent() < LOST and time.monotonic() < deadline:
            sample()
            time.sleep(0.05)
        assert resent() >= LOST, f"only {resent()} of {LOST} lost messages re-sent"
        settle = time.monotonic() + 4 * ledger.settings.redeliver_interval_seconds
        while time.monotonic() < settle:
            sample()
            time.sleep(0.05)
    pending, queued = sample()
    over = [(p, q) for p, q in samples if q > p + SLACK]
    print(f"{len(samples)} samples; pending {pending}, queued {queued}; re-sent {resent()}")
    assert not over, f"the queue outgrew the pending count: {over[:5]}"
    assert LOST <= resent() <= LOST + SLACK, f"{resent()} re-sent for {LOST} lost"
    assert pending - SLACK <= queued <= pending + SLACK, "every pending item has its message again"
    claimed = BACKLOG - pending
    assert claimed > 0
    assert len(ids) == BACKLOG
    client.close()
