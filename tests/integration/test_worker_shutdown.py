"""Warm shutdown (SIGTERM) of a real worker with items in hand: nothing is lost or done twice."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from swarm import Settings, Status, Swarm
from swarm.models import AgentStatus, EventKind

from .polling import wait_until
from .workers_harness import running_worker

pytestmark = pytest.mark.integration

EXIT_DEADLINE_S = 30.0  # a stopping worker must exit within this


def _client(redis_url: str, prefix: str) -> Swarm:
    return Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))


def _completions(client: Swarm, work_id: str) -> int:
    events = client.ledger.events(10_000)
    return sum(1 for e in events if e.work_id == work_id and e.event is EventKind.COMPLETED)


def test_sigterm_lets_the_items_in_hand_finish_within_the_grace(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = _client(redis_url, prefix)
    env = {"SWARM_SHUTDOWN_GRACE_SECONDS": "60"}
    with running_worker(redis_url, prefix, "developer", tmp_path / "dev.log", "-c", "2", env=env) as worker:
        items = [
            client.submit("feature", f"in hand {n}", role="developer", payload={"duration_s": 2})
            for n in range(2)
        ]
        wait_until(lambda: all(client.get(i.id).status.held for i in items), "both items to be in hand", 30)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=EXIT_DEADLINE_S) == 0, "a warm shutdown exits cleanly"
    assert [client.get(i.id).status for i in items] == [Status.COMPLETED] * 2, "finished, not dropped"
    assert [_completions(client, i.id) for i in items] == [1, 1]
    assert all(client.get(i.id).attempts == 0 for i in items), "nothing was retried"
    assert all(a.status is AgentStatus.OFFLINE for a in client.ledger.agents())
    client.close()


def test_sigterm_past_the_grace_releases_the_items_to_another_worker(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = _client(redis_url, prefix)
    env = {"SWARM_SHUTDOWN_GRACE_SECONDS": "1", "SWARM_LEASE_SECONDS": "1.5"}
    with running_worker(redis_url, prefix, "developer", tmp_path / "a.log", "-c", "2", env=env) as first:
        items = [
            client.submit("feature", f"long {n}", role="developer", payload={"duration_s": 20})
            for n in range(2)
        ]
        wait_until(lambda: all(client.get(i.id).status.held for i in items), "both items to be in hand", 30)
        holders = {client.get(i.id).agent_id for i in items}
        first.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert first.wait(timeout=EXIT_DEADLINE_S) == 0
        exited_after = time.monotonic() - stopped_at
        with running_worker(redis_url, prefix, "developer", tmp_path / "b.log", "-c", "2", env=env):
            wait_until(
                lambda: all(client.get(i.id).status is Status.COMPLETED for i in items),
                "the second worker to finish the released items",
            )
    for item in items:
        done = client.get(item.id)
        assert done.agent_id not in holders, "finished by the second worker"
        assert _completions(client, item.id) == 1
        kinds = [e.event for e in client.ledger.events(10_000) if e.work_id == item.id]
        assert EventKind.RELEASED in kinds, "released at the end of the grace, not reaped later"
        assert EventKind.LEASE_EXPIRED not in kinds
    assert exited_after < 15, f"its handlers stopped instead of finishing ({exited_after:.1f}s)"
    client.close()
