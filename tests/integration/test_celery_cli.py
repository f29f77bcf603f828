"""``celery -A swarm``: Celery's own CLI drives the swarm (worker, inspect, control, beat), from any
directory, with the swarm's queues, schedule and logs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from ceremonies import store
from ceremonies.registry import ceremonies
from swarm import Settings, Status, Swarm
from swarm.calendar import Calendar
from swarm.celery_app import ceremonies_queue, role_queues
from swarm.ledger import Ledger

from .polling import wait_until
from .test_logs import json_lines

pytestmark = pytest.mark.integration

READY_S = 60.0  # a cold interpreter importing Celery on a busy 2-core machine
CEREMONY_S = 60.0
_RECEIVED = re.compile(r"Task swarm\.ceremony\[([0-9a-f-]+)\] received")


def celery_env(redis_url: str, prefix: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "OTEL_"))}
    return {
        **env,
        "REDIS_URL": redis_url,
        "SWARM_KEY_PREFIX": prefix,
        "SWARM_HANDLER_MODULES": "workers.demo",
        "SWARM_LOG_FORMAT": "auto",  # stderr is a file: JSON
        **more,
    }


@contextmanager
def celery_process(
    args: list[str], env: dict[str, str], cwd: Path, log: Path, ready: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A swarm ARGS`` with stdout and stderr in ``log``, yielded once ``ready`` is there;
    stopped with SIGTERM (a warm shutdown) on exit."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "swarm", *args],
            env=env,
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: ready in log.read_text(errors="replace") or proc.poll() is not None,
            f"celery {args[0]} to start",
            READY_S,
            explain=lambda: log.read_text(errors="replace"),
        )
        assert proc.poll() is None, log.read_text(errors="replace")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def celery_run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "swarm", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_celery_a_swarm_runs_a_worker_answers_inspect_and_control_and_beat_runs_a_ceremony(
    redis_url: str, prefix: str, ledger: Ledger, tmp_path: Path
) -> None:
    start = ledger.server_time() + timedelta(seconds=5)
    agreed = Settings(key_prefix=prefix, redis_url=None, iteration_length=60.0, calendar_start=start)
    Calendar.load(Ledger(ledger.client, agreed))  # the calendar's first user: PI 1 starts now
    env = celery_env(
        redis_url,
        prefix,
        SWARM_CALENDAR_TICK="250ms",
        SWARM_BEAT_MAX_INTERVAL="0.5s",
        SWARM_IMPROVE_EVERY="1h",
    )
    settings = Settings(key_prefix=prefix, redis_url=None)
    node = f"celery-{prefix}@%h"
    queues = ",".join([ceremonies_queue(settings), *role_queues(settings, "developer")])
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    client = Swarm(redis_url, agent_id="pm-1", settings=settings)
    worker_args = ["worker", "-Q", queues, "-n", node, "-P", "threads", "-c", "2", "-l", "INFO"]
    with celery_process(worker_args, env, tmp_path, worker_log, " ready.") as worker:
        item = client.submit("feature", "through celery -A swarm", role="developer")
        wait_until(lambda: client.get(item.id).status is Status.COMPLETED, "the item to complete", 60)

        hostname = node.replace("%h", os.uname().nodename)
        ping = celery_run(["inspect", "ping", "-d", hostname, "--json"], env, tmp_path)
        assert ping.returncode == 0, ping.stderr
        assert json.loads(ping.stdout) == {hostname: {"ok": "pong"}}
        control = celery_run(["control", "enable_events", "-d", hostname, "--json"], env, tmp_path)
        assert control.returncode == 0, control.stderr
        assert "task events enabled" in json.dumps(json.loads(control.stdout))

        with celery_process(["beat", "-l", "INFO"], env, tmp_path, beat_log, "beat: Starting..."):
            planning = ceremonies()["pi-planning"]
            wait_until(
                lambda: store.exists(planning, ledger, "PI1"),
                "beat to send PI 1's planning, and the worker to run it",
                CEREMONY_S,
                explain=lambda: beat_log.read_text(errors="replace"),
            )
            tick = ledger.client.hget(ledger.keys.beat_tick, "at")
            wait_until(
                lambda: ledger.client.hget(ledger.keys.beat_tick, "at") != tick,
                "beat to tick on after the send",
            )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, "a warm shutdown"

    beat_lines = json_lines(beat_log)  # piped: every line is JSON, banner and shutdown included
    assert all("Sending due task" not in str(line["event"]) for line in beat_lines), "only sends are logged"
    sent = {line["task_id"] for line in beat_lines if line["event"] == "beat_sent"}
    received = set(_RECEIVED.findall(worker_log.read_text(errors="replace")))
    assert sent, "beat logged its sends"
    assert sent <= received | {None}, f"every send beat logged reached the worker: {sent - received}"
    assert any(line["event"] == "beat_leading" for line in beat_lines), "the swarm's scheduler led"
    worker_lines = json_lines(worker_log)
    events = [str(line["event"]) for line in worker_lines]
    assert any(e.endswith(" ready.") for e in events)
    assert "worker: Warm shutdown (MainProcess)" in events, "Celery's shutdown message is a JSON line"
    client.close()
