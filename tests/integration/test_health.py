"""``swarm health`` against real processes: each check fails and passes (SPEC §10).

The consuming check is shown catching the known Celery failure mode, a worker that stays up
(answers ping, keeps its agent) but takes nothing: its role's queue consumers are cancelled
through Celery's own remote control, and added back.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarm import Settings, Status, Swarm, deadletters
from swarm.celery_app import create_app, role_queues
from swarm.deadletters import DeadLetter, DeadLetterReason
from swarm.embedded import free_port
from swarm.health import EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_UNREACHABLE, HealthReport, check_health
from swarm.ledger import Ledger

from .polling import wait_until
from .workers_harness import running_beat, running_worker

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
CONSUMING_WITHIN_S = 2.0
FAST_BEAT = {"SWARM_BEAT_MAX_INTERVAL": "0.5", "SWARM_REAPER_INTERVAL": "0.5"}


def _health_cli(
    redis_url: str, prefix: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "swarm", "health", "--json", *args],
        env={**os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)


def _ledger(redis_url: str, prefix: str, **settings: Any) -> Ledger:
    return Ledger.from_url(redis_url, Settings(key_prefix=prefix, redis_url=None, **settings))


def _check(report: HealthReport | dict[str, Any], name: str) -> dict[str, Any]:
    checks = report.model_dump()["checks"] if isinstance(report, HealthReport) else report["checks"]
    return next(c for c in checks if c["name"] == name)


def test_healthy_with_a_worker_and_beat_running_and_exit_0(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    with (
        running_beat(redis_url, prefix, tmp_path / "beat.log"),
        running_worker(redis_url, prefix, "developer", tmp_path / "dev.log"),
    ):
        item = client.submit("chore", "one", role="developer")
        wait_until(lambda: client.get(item.id).status is Status.COMPLETED, "the item to complete")
        wait_until(lambda: client.ledger.client.exists(client.ledger.keys.beat_tick) == 1, "beat to tick")
        code, report = _health_cli(redis_url, prefix)
    assert code == EXIT_HEALTHY, report
    assert report["healthy"] is True
    names = [c["name"] for c in report["checks"]]
    assert names == [
        "redis", "consuming:pm", "consuming:architect", "consuming:developer", "consuming:qa",
        "consuming:devops", "handlers", "beat", "leases", "dead", "dead_letters",
    ]  # fmt: skip
    assert all(c["ok"] for c in report["checks"])
    client.close()


def test_unreachable_redis_fails_with_exit_7(prefix: str) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    code, report = _health_cli(closed, prefix)
    assert code == EXIT_UNREACHABLE == 7
    assert report["healthy"] is False
    assert _check(report, "redis")["ok"] is False
    assert "127.0.0.1" in _check(report, "redis")["reason"]


def test_a_worker_alive_but_not_consuming_fails_the_consuming_check_until_it_consumes_again(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    client = Swarm(redis_url, agent_id="pm-1", settings=settings)
    ledger = _ledger(redis_url, prefix, health_consuming_within=CONSUMING_WITHIN_S)
    app = create_app(settings, redis_url)
    log = tmp_path / "dev.log"
    node = f"{log.stem}-{prefix}@{socket.gethostname()}"
    queues = role_queues(settings, "developer")
    with running_worker(redis_url, prefix, "developer", log, "-c", "1"):
        first = client.submit("chore", "taken while consuming", role="developer")
        wait_until(lambda: client.get(first.id).status is Status.COMPLETED, "the first item")
        assert _check(check_health(ledger), "consuming:developer")["ok"]

        # The failure mode: the worker stays up but consumes nothing.
        for queue in queues:
            replies = app.control.cancel_consumer(queue, destination=[node], reply=True, timeout=10)
            assert replies, f"no reply from {node} to cancel_consumer({queue})"
        stranded = [client.submit("chore", f"stranded {n}", role="developer") for n in range(3)]
        failing: list[dict[str, Any]] = []

        def consuming_fails() -> bool:
            check = _check(check_health(ledger), "consuming:developer")
            failing[:] = [check]
            return not check["ok"]

        wait_until(consuming_fails, "the consuming check to fail", DEADLINE_S)
        assert all(client.get(i.id).status is Status.PENDING for i in stranded), "nothing was taken"
        assert app.control.ping(destination=[node], timeout=10), "the worker still answers ping"
        reason = failing[0]["reason"]
        assert "developer" in reason
        assert "3 item(s) waiting" in reason
        assert "alive but not consuming" in reason  # its agent is live: it finished work within a lease

        code, report = _health_cli(redis_url, prefix, env={"SWARM_HEALTH_CONSUMING_WITHIN": "2"})
        assert code == EXIT_UNHEALTHY
        assert _check(report, "consuming:developer")["ok"] is False
        assert "developer" in _check(report, "consuming:developer")["reason"]

        for queue in queues:
            app.control.add_consumer(queue, destination=[node], reply=True, timeout=10)
        wait_until(
            lambda: all(client.get(i.id).status is Status.COMPLETED for i in stranded),
            "the stranded items to be consumed",
            DEADLINE_S,
        )
        check = _check(check_health(ledger), "consuming:developer")
        assert check["ok"], check
    app.close()
    client.close()


def test_a_role_with_work_and_no_workers_fails_but_fresh_work_gets_its_grace(
    redis_url: str, prefix: str
) -> None:
    ledger = _ledger(redis_url, prefix, health_consuming_within=CONSUMING_WITHIN_S)
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    client.submit("chore", "nobody takes this", role="qa")
    fresh = _check(check_health(ledger), "consuming:qa")
    assert fresh["ok"], fresh  # just submitted: agents get CONSUMING_WITHIN_S to take it
    wait_until(lambda: not _check(check_health(ledger), "consuming:qa")["ok"], "the qa check to fail")
    reason = _check(check_health(ledger), "consuming:qa")["reason"]
    assert "no live qa agents" in reason
    assert "never claimed" in reason
    # Items filed for manual claims are not queued work: they do not fail the check.
    manual = _ledger(redis_url, prefix, health_consuming_within=CONSUMING_WITHIN_S)
    manual.submit("chore", "backlog", role="pm", dispatch=False)
    assert _check(check_health(manual), "consuming:pm")["ok"]
    client.close()


def test_beat_passes_while_it_runs_and_fails_once_it_stops(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    ledger = _ledger(redis_url, prefix, health_beat_within=2.0)
    assert "never ticked" in _check(check_health(ledger), "beat")["reason"]
    with running_beat(redis_url, prefix, tmp_path / "beat.log", env=FAST_BEAT):
        wait_until(lambda: _check(check_health(ledger), "beat")["ok"], "the beat check to pass")
        code, report = _health_cli(redis_url, prefix, env={"SWARM_HEALTH_BEAT_WITHIN": "2"})
        assert _check(report, "beat")["ok"] is True
        assert "ticked" in _check(report, "beat")["reason"]
    wait_until(lambda: not _check(check_health(ledger), "beat")["ok"], "the beat check to fail")
    code, report = _health_cli(redis_url, prefix, env={"SWARM_HEALTH_BEAT_WITHIN": "2"})
    assert code == EXIT_UNHEALTHY
    assert "last ticked" in _check(report, "beat")["reason"]


def test_an_expired_lease_fails_once_older_than_the_reaper_interval_and_passes_once_reaped(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    ledger = _ledger(redis_url, prefix, reaper_interval=0.5, beat_max_interval=0.5)
    item = ledger.submit("chore", "its holder vanished", role="devops")
    ledger.claim(item.id, "gone-1", lease_seconds=0.05)
    wait_until(lambda: not _check(check_health(ledger), "leases")["ok"], "the leases check to fail")
    reason = _check(check_health(ledger), "leases")["reason"]
    assert item.id in reason
    assert "reaper" in reason
    with running_beat(redis_url, prefix, tmp_path / "beat.log", env=FAST_BEAT):
        wait_until(lambda: ledger.get(item.id).status is Status.PENDING, "beat's reaper to return the item")
        assert _check(check_health(ledger), "leases")["ok"]


def test_dead_items_fail_until_acknowledged_and_a_new_one_fails_again(redis_url: str, prefix: str) -> None:
    ledger = _ledger(redis_url, prefix)

    def kill(description: str) -> str:
        item = ledger.submit("chore", description, role="qa", max_attempts=1, dispatch=False)
        ledger.claim(item.id, "qa-1")
        assert ledger.fail(item.id, "qa-1", "boom", retry=True).status is Status.DEAD
        return item.id

    assert _check(check_health(ledger), "dead")["ok"]
    first = kill("first to die")
    code, report = _health_cli(redis_url, prefix)
    assert code == EXIT_UNHEALTHY
    assert _check(report, "dead")["ok"] is False
    assert first in _check(report, "dead")["reason"]

    letter = DeadLetter(
        reason=DeadLetterReason.BODY, detail="a string body", queue="q", task="swarm.execute",
        message_id="m1", raw='"not a call"',
    )  # fmt: skip
    deadletters.record(ledger, letter)
    code, report = _health_cli(redis_url, prefix)
    assert _check(report, "dead_letters")["ok"] is False
    code, report = _health_cli(redis_url, prefix, "--ack-dead")
    assert _check(report, "dead")["ok"] is True
    assert _check(report, "dead_letters")["ok"] is True, "--ack-dead acknowledges dead letters too"

    second = kill("second to die")
    reason = _check(check_health(ledger), "dead")["reason"]
    assert second in reason
    assert first not in reason
    assert reason.startswith("1 dead item(s)")


def test_a_role_whose_lost_message_was_put_back_is_recovering_not_failing(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    lease = 2.0  # a redelivery pass every 0.5 s
    within = 4.0  # the health read comes moments after the re-send: even a loaded machine is in time
    ledger = _ledger(redis_url, prefix, health_consuming_within=within, lease_seconds=lease)
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    item = client.submit("chore", "its message is lost", role="qa")
    queue = ledger.keys.broker_lists(role_queues(ledger.settings, "qa")[2])[0]  # medium
    assert ledger.client.rpop(queue) is not None  # as a consumer that died after its pop would
    env = {"SWARM_LEASE_SECONDS": str(lease)}
    # A developer worker takes no qa work, but its redelivery pass looks after every role.
    with running_worker(redis_url, prefix, "developer", tmp_path / "dev.log", env=env):
        wait_until(lambda: ledger.client.llen(queue) == 1, "the lost qa message to be put back", DEADLINE_S)
        wait_until(
            lambda: ledger.server_time().timestamp() - item.created_at.timestamp() > within,
            "the item to wait longer than agents are given",
        )
        check = _check(check_health(ledger), "consuming:qa")
        assert check["ok"], check
        assert "recovering" in check["reason"]
        assert "re-sent" in check["reason"]
        # No qa worker ever takes it: once the re-send is older than the grace, the check fails.
        wait_until(lambda: not _check(check_health(ledger), "consuming:qa")["ok"], "the qa check to fail")
        assert "no live qa agents" in _check(check_health(ledger), "consuming:qa")["reason"]
    assert ledger.get(item.id).status is Status.PENDING
    client.close()
