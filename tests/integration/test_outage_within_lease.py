"""Handlers ride out a Redis outage shorter than their lease (issue #10 item 6), on real processes.

A ``swarm worker`` runs ``workers.demo`` items that report progress (and heartbeat) while the
test stops its own ``redis-server`` (AOF, fsync on every write) and starts it again. An outage
shorter than the lease costs no attempt and no lease; one that outlasts the lease loses it: the
item is reaped and run again exactly once, and the stale holder writes nothing after its lease.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm import Settings, Status, Swarm
from swarm.errors import RedisUnavailable
from swarm.ledger import Ledger
from swarm.models import Event, EventKind

from .polling import wait_until
from .workers_harness import private_redis, running_beat, running_worker, task_outcomes

pytestmark = pytest.mark.integration

DEADLINE_S = 90.0  # generous: a loaded 2-core VM; every wait returns as soon as its condition holds
EVENTS_READ = 100_000


def events(ledger: Ledger) -> list[Event]:
    return ledger.events(EVENTS_READ)


def statuses(ledger: Ledger, ids: list[str]) -> list[Status | None]:
    """Each item's status; None for all while Redis does not answer."""
    try:
        return [ledger.get(wid).status for wid in ids]
    except RedisUnavailable:
        return [None] * len(ids)


SHORT_LEASE_S = 12.0  # the lease of the first test: far longer than the outage, even when loaded
# Long enough that holder writes outlast redis-py's own retries (up to ~4 s of backoff, often
# much less) and reach ours, and still far inside the lease.
SHORT_OUTAGE_S = 3.0
WORK_S = 6.0  # each item works this long, reporting progress every WORK_S / 4
ITEMS = 3


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_an_outage_shorter_than_the_lease_costs_no_attempt_and_no_lease(
    pool: str, prefix: str, tmp_path: Path
) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    env = {"SWARM_LEASE_SECONDS": str(SHORT_LEASE_S)}
    log = tmp_path / "dev.log"
    with private_redis(tmp_path) as server:
        client = Swarm(server.url, agent_id="pm-1", settings=settings)
        with (
            running_beat(server.url, prefix, tmp_path / "beat.log", env=env),
            running_worker(server.url, prefix, "developer", log, "-P", pool, "-c", str(ITEMS), env=env),
        ):
            ids = [
                client.submit("feature", f"works through a blip {n}", payload={"duration_s": WORK_S}).id
                for n in range(ITEMS)
            ]
            wait_until(
                lambda: statuses(client.ledger, ids) == [Status.IN_PROGRESS] * ITEMS,
                "every item to be running and reporting progress",
                DEADLINE_S,
            )
            down = server.restart(SHORT_OUTAGE_S)
            ledger = Ledger.from_url(server.url, settings)  # a fresh connection to the new server
            wait_until(
                lambda: statuses(ledger, ids) == [Status.COMPLETED] * ITEMS,
                "every item to complete",
                DEADLINE_S,
                explain=lambda: f"{statuses(ledger, ids)}\n{log.read_text(errors='replace')[-5000:]}",
            )
        print(f"\nRedis did not answer for {down:.2f} s of a {SHORT_LEASE_S} s lease")
        assert down < SHORT_LEASE_S - 4, f"the outage ({down:.2f} s) must be shorter than the lease"
        text = log.read_text(errors="replace")
        assert "redis_unreachable_retrying" in text, "a holder write met the outage and was retried"
        seen = [e for e in events(ledger) if e.work_id in ids]
        for wid in ids:
            item = ledger.get(wid)
            kinds = [e.event for e in seen if e.work_id == wid]
            assert item.attempts == 0, f"{wid} lost no attempt: {kinds}"
            assert kinds.count(EventKind.CLAIMED) == 1, f"{wid} was claimed once: {kinds}"
            assert kinds.count(EventKind.COMPLETED) == 1, f"{wid} completed once: {kinds}"
            assert EventKind.LEASE_EXPIRED not in kinds, f"{wid} kept its lease: {kinds}"
            assert EventKind.FAILED not in kinds, f"{wid} had no failed attempt: {kinds}"
        outcomes = task_outcomes(log)  # a redelivery of a message restored at the drop is skipped
        assert outcomes.count("completed") == ITEMS
        assert set(outcomes) <= {"completed", "skipped"}, outcomes
        client.close()
        ledger.client.close()


LONG_LEASE_S = 3.0  # the second test's lease (heartbeats every second): the outage outlasts it
LONG_OUTAGE_S = LONG_LEASE_S + 2.0  # down for longer than a whole lease, even unloaded
LONG_WORK_S = 4.0


def test_an_outage_that_outlasts_the_lease_reruns_the_item_exactly_once(prefix: str, tmp_path: Path) -> None:
    """Two workers: the holder's, and another that is idle when Redis goes down (whichever runs
    the item again, it must run exactly once more)."""
    settings = Settings(key_prefix=prefix, redis_url=None)
    env = {"SWARM_LEASE_SECONDS": str(LONG_LEASE_S)}
    logs = [tmp_path / "dev-a.log", tmp_path / "dev-b.log"]
    with private_redis(tmp_path) as server:
        client = Swarm(server.url, agent_id="pm-1", settings=settings)
        with (
            running_beat(server.url, prefix, tmp_path / "beat.log", env=env),
            running_worker(server.url, prefix, "developer", logs[0], "-c", "1", env=env),
            running_worker(server.url, prefix, "developer", logs[1], "-c", "1", env=env),
        ):
            wid = client.submit("feature", "outlived by an outage", payload={"duration_s": LONG_WORK_S}).id
            wait_until(
                lambda: statuses(client.ledger, [wid]) == [Status.IN_PROGRESS],
                "the item to be running",
                DEADLINE_S,
            )
            first = client.ledger.get(wid)
            down = server.restart(LONG_OUTAGE_S)
            ledger = Ledger.from_url(server.url, settings)
            wait_until(
                lambda: statuses(ledger, [wid]) == [Status.COMPLETED],
                "the item to be re-run and completed",
                DEADLINE_S,
                explain=lambda: "\n".join(log.read_text(errors="replace")[-3000:] for log in logs),
            )
        print(f"\nRedis did not answer for {down:.2f} s of a {LONG_LEASE_S} s lease")
        seen = [e for e in events(ledger) if e.work_id == wid]
        kinds = [e.event for e in seen]
        assert kinds.count(EventKind.LEASE_EXPIRED) == 1, f"reaped once: {kinds}"
        assert kinds.count(EventKind.CLAIMED) == 2, f"run again exactly once: {kinds}"
        assert kinds.count(EventKind.COMPLETED) == 1, f"completed once: {kinds}"
        done = ledger.get(wid)
        assert done.attempts == 1, "the lost lease cost one attempt"
        assert first.fence is not None
        assert done.fence is not None
        assert done.fence > first.fence, "the second claim completed it"
        completed = next(e for e in seen if e.event is EventKind.COMPLETED)
        assert completed.fence == done.fence
        reaped_at = kinds.index(EventKind.LEASE_EXPIRED)
        stale = [e.event for e in seen[reaped_at + 1 :] if e.fence == first.fence]
        assert stale == [], f"the stale holder wrote nothing after its lease: {kinds}"
        text = "".join(log.read_text(errors="replace") for log in logs)
        lines = text.splitlines()
        gave_up = [line for line in lines if '"lease_lost"' in line and str(first.agent_id) in line]
        assert gave_up, "the stale holder learnt that its lease was lost"
        client.close()
        ledger.client.close()
