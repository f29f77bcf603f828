"""Workers outlive any number of Redis restarts (issue 10, item 2).

The crash this guards against needs, at the moment Redis goes away, a worker that holds a
delivered, unacknowledged (acks-late) message *and* has a ``BRPOP`` in flight (a free slot):
kombu then closes the channel twice and the second close dies on ``conninfo.hostname``
(``swarm/broker_transport.py`` explains it). Each round below waits until exactly that is true
on the server (the message in kombu's ``unacked`` hash, a client blocked in ``BRPOP``) for a
prefork and a threads worker, then restarts Redis. Without the guarded channel both workers
exit at the first round. A worker must also come out of every restart with the descriptors it
had: nothing of a closed connection may stay open.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import redis

from swarm import Settings, Status, Swarm
from swarm.errors import RedisUnavailable
from swarm.ledger import Ledger
from swarm.models import EventKind

from .polling import wait_until
from .workers_harness import EVENTS_READ, PrivateRedis, private_redis, running_beat, running_worker

pytestmark = pytest.mark.integration

RESTARTS = 10
LEASE_S = 2.0  # an item whose run the restart broke is reaped and run again within seconds
ITEM_S = 4.0  # long enough to be running when Redis stops, even on a loaded machine
OUTAGE_S = 1.0  # how long Redis stays down: the fault itself, not a wait for a result
ROUND_DEADLINE_S = 90.0  # one round's items: lease expiry, reap, re-send and a re-run, loaded
WORKERS = {"developer": "prefork", "qa": "threads"}  # role -> pool
FD_SLACK = 4  # descriptors a worker may gain over the last nine restarts (pooled connections)


def _safely(probe: Callable[[], bool]) -> bool:
    """``probe()``, or False while Redis does not answer."""
    try:
        return probe()
    except (RedisUnavailable, redis.exceptions.ConnectionError):
        return False


def _in_flight_with_brpop(server: redis.Redis, ledger: Ledger, ids: list[str]) -> bool:
    """Every item running, its message delivered and unacked, and each worker blocked in BRPOP."""
    running = all(ledger.get(wid).status in (Status.CLAIMED, Status.IN_PROGRESS) for wid in ids)
    unacked = int(server.hlen(ledger.keys.broker_unacked))  # delivered, not yet acknowledged
    blocked = sum(c.get("cmd") == "brpop" for c in server.client_list())
    return running and unacked >= len(ids) and blocked >= len(WORKERS)


def _all_completed(ledger: Ledger, ids: list[str]) -> bool:
    return all(ledger.get(wid).status is Status.COMPLETED for wid in ids)


def _any_exited(workers: dict[str, subprocess.Popen[bytes]]) -> bool:
    return any(proc.poll() is not None for proc in workers.values())


def _assert_alive(workers: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path], when: str) -> None:
    for role, proc in workers.items():
        log = logs[role].read_text(errors="replace")
        # A crashed worker first finishes its tasks (a warm shutdown), so its log says it sooner.
        assert "Unrecoverable error" not in log, f"the {WORKERS[role]} worker crashed {when}:\n{log}"
        assert proc.poll() is None, f"the {WORKERS[role]} worker exited {when}:\n{log}"


def _open_fds(workers: dict[str, subprocess.Popen[bytes]]) -> dict[str, int]:
    """Each worker's open file descriptors (its main process: the consumer and its connections)."""
    return {role: len(os.listdir(f"/proc/{proc.pid}/fd")) for role, proc in workers.items()}


def _restart_rounds(
    server: PrivateRedis,
    settings: Settings,
    workers: dict[str, subprocess.Popen[bytes]],
    logs: dict[str, Path],
    fds: list[dict[str, int]],
) -> list[str]:
    """RESTARTS rounds of: an item per worker running and unacked, a restart, both completed.
    Appends each worker's open descriptors after every round to ``fds``; returns the ids submitted."""
    submitted: list[str] = []
    for round_ in range(RESTARTS):
        client = Swarm(server.url, agent_id=f"pm-{round_}", settings=settings)
        raw = redis.Redis.from_url(server.url, decode_responses=True)
        payload = {"duration_s": ITEM_S}
        ids = [client.submit("feature", f"round {round_}", role=role, payload=payload).id for role in WORKERS]
        submitted += ids
        wait_until(
            lambda: _safely(lambda: _in_flight_with_brpop(raw, client.ledger, ids)) or _any_exited(workers),  # noqa: B023
            f"round {round_}: both items running, unacked, and both workers in BRPOP",
        )
        _assert_alive(workers, logs, f"before restart {round_ + 1}")
        client.close()
        raw.close()
        server.restart(OUTAGE_S)
        ledger = Ledger.from_url(server.url, settings)
        wait_until(
            lambda: _safely(lambda: _all_completed(ledger, ids)) or _any_exited(workers),  # noqa: B023
            f"round {round_}: both items to complete after the restart",
            ROUND_DEADLINE_S,
        )
        _assert_alive(workers, logs, f"after restart {round_ + 1}")
        assert _all_completed(ledger, ids)
        ledger.client.close()
        fds.append(_open_fds(workers))
    return submitted


def test_workers_keep_consuming_through_ten_redis_restarts_with_unacked_messages_in_flight(
    prefix: str, tmp_path: Path
) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    env = {"SWARM_LEASE_SECONDS": str(LEASE_S)}
    logs = {role: tmp_path / f"{role}.log" for role in WORKERS}
    with private_redis(tmp_path) as server:

        def worker(role: str) -> AbstractContextManager[subprocess.Popen[bytes]]:
            pool = WORKERS[role]
            return running_worker(server.url, prefix, role, logs[role], "-P", pool, "-c", "2", env=env)

        beat = running_beat(server.url, prefix, tmp_path / "beat.log", env=env)
        with beat, worker("developer") as dev, worker("qa") as qa:
            workers = {"developer": dev, "qa": qa}
            fds: list[dict[str, int]] = []
            submitted = _restart_rounds(server, settings, workers, logs, fds)
            print(f"open descriptors after each restart: {fds}")
            for role, pool in WORKERS.items():  # a closed channel used to keep a socket per restart
                growth = fds[-1][role] - fds[0][role]
                assert growth <= FD_SLACK, f"the {pool} worker leaks descriptors: {fds}"

            later = Swarm(server.url, agent_id="pm-after", settings=settings)
            fresh = [later.submit("feature", f"after {role}", role=role).id for role in WORKERS]
            submitted += fresh
            wait_until(
                lambda: _safely(lambda: _all_completed(later.ledger, fresh)),
                "items sent after the last restart to complete",
                ROUND_DEADLINE_S,
            )
            _assert_alive(workers, logs, "at the end")
            events = later.ledger.events(EVENTS_READ)
            completed = Counter(e.work_id for e in events if e.event is EventKind.COMPLETED)
            assert {wid: completed[wid] for wid in submitted} == dict.fromkeys(submitted, 1), (
                "every item completed exactly once"
            )
            later.close()
