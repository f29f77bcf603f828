"""A Redis restart mid-run (SPEC §13): workers reconnect and keep consuming, and no item is lost
or completed twice. The test runs its own ``redis-server`` (AOF, fsync on every write), so that
it can stop and start it on the same port and directory without touching the shared Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm import Settings, Status, Swarm
from swarm.errors import RedisUnavailable
from swarm.ledger import Ledger
from swarm.models import EventKind, Role

from .polling import wait_until
from .workers_harness import private_redis, running_beat, running_worker, task_outcomes

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
LEASE_S = 2.0  # an item whose holder lost Redis mid-run is reaped and re-run within a few seconds
OUTAGE_S = 1.0  # how long Redis stays down: the fault itself, not a wait for a result
ITEMS_BEFORE = 20
ITEMS_AFTER = 5


def count_completed(ledger: Ledger, ids: list[str]) -> int:
    """How many of ``ids`` are completed; 0 while Redis does not answer."""
    try:
        return sum(ledger.get(wid).status is Status.COMPLETED for wid in ids)
    except RedisUnavailable:
        return 0


def test_a_redis_restart_mid_run_loses_no_item_and_completes_none_twice(prefix: str, tmp_path: Path) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    env = {"SWARM_LEASE_SECONDS": str(LEASE_S)}
    log = tmp_path / "dev.log"
    with private_redis(tmp_path) as server:
        client = Swarm(server.url, agent_id="pm-1", settings=settings)
        with (
            running_beat(server.url, prefix, tmp_path / "beat.log", env=env),
            running_worker(server.url, prefix, "developer", log, "-c", "2", env=env),
        ):
            items = [
                client.submit("feature", f"before the restart {n}", payload={"duration_s": 0.5})
                for n in range(ITEMS_BEFORE)
            ]
            ids = [i.id for i in items]
            wait_until(lambda: count_completed(client.ledger, ids) >= 4, "the run to be under way")
            server.restart(OUTAGE_S)
            ledger = Ledger.from_url(server.url, settings)  # a fresh connection to the new server
            assert count_completed(ledger, ids) < ITEMS_BEFORE, "the restart happened mid-run"
            later = Swarm(server.url, agent_id="pm-2", settings=settings)
            ids += [
                later.submit("feature", f"after the restart {n}", payload={"duration_s": 0.1}).id
                for n in range(ITEMS_AFTER)
            ]
            try:
                wait_until(
                    lambda: count_completed(ledger, ids) == len(ids), "every item to complete", DEADLINE_S
                )
            except AssertionError as exc:
                stuck = {wid: ledger.get(wid).status.value for wid in ids}
                stuck = {wid: s for wid, s in stuck.items() if s != Status.COMPLETED}
                raise AssertionError(f"{exc}; not completed: {stuck}") from None
        completed = [e.work_id or "" for e in ledger.events(10_000) if e.event is EventKind.COMPLETED]
        assert sorted(completed) == sorted(ids), "each item completed exactly once"
        assert ledger.velocity() == {"core": len(ids)}
        agents = [a for a in ledger.agents() if a.role is Role.DEVELOPER]
        assert sum(a.completed for a in agents) == len(ids)
        assert task_outcomes(log).count("completed") == len(ids)
        for client_ in (client, later):
            client_.close()
        ledger.client.close()
