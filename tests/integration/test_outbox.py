"""Sends that never happened: a worker's sweep sends what the ledger's outbox says is owed."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from swarm import Settings, Status
from swarm.ledger import Handoff, Ledger
from swarm.models import EventKind

from .polling import wait_until
from .workers_harness import running_worker

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2

GRACE_S = 1.0  # requeue_after_seconds: how long an unconfirmed send waits for a sweep


@pytest.fixture
def quick_ledger(real_redis: redis.Redis, prefix: str) -> Ledger:
    return Ledger(real_redis, Settings(key_prefix=prefix, redis_url=None, requeue_after_seconds=GRACE_S))


def _completions(ledger: Ledger, work_id: str) -> int:
    return sum(1 for e in ledger.events(10_000) if e.work_id == work_id and e.event is EventKind.COMPLETED)


def test_an_item_whose_sender_died_before_sending_is_sent_by_a_sweep_and_done_once(
    quick_ledger: Ledger, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    # What a producer that crashed right after its ledger write leaves: pending, never sent.
    lost = [quick_ledger.submit("feature", f"never sent {n}", role="developer") for n in range(3)]
    with running_worker(redis_url, prefix, "developer", tmp_path / "dev.log", "-c", "2"):
        wait_until(
            lambda: all(quick_ledger.get(i.id).status is Status.COMPLETED for i in lost),
            "the sweep to send the lost items and a worker to complete them",
        )
    assert [_completions(quick_ledger, i.id) for i in lost] == [1, 1, 1]
    assert quick_ledger.client.zcard(quick_ledger.keys.outbox) == 0


def test_a_handoff_lost_between_completion_and_send_reaches_the_next_role(
    quick_ledger: Ledger, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    # A stage completed with its handoff, by a worker killed before it could send the next one.
    stage = quick_ledger.submit("feature", "design", role="architect", workflow="feature", stage="architect")
    held = quick_ledger.claim(stage.id, "architect-1")
    done = quick_ledger.complete(
        stage.id, "architect-1", fence=held.fence, handoff=Handoff(role="developer", stage="developer")
    )
    assert done.next_id is not None
    with running_worker(redis_url, prefix, "developer", tmp_path / "dev.log"):
        wait_until(
            lambda: quick_ledger.get(done.next_id or "").status is not Status.PENDING,
            "the developer stage to be sent and claimed",
        )
        child = quick_ledger.get(done.next_id)
        assert child.role.value == "developer"
        assert child.parent_id == stage.id
        assert child.trace_id == stage.trace_id
    assert _completions(quick_ledger, stage.id) == 1
