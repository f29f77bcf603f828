"""``swarm up`` supervises: a worker or beat that dies is started again (with backoff if it keeps
dying), logged and counted in ``swarm status``; only Ctrl-C or SIGTERM ends ``up``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarm import Settings, Status, Swarm, fleet_record
from swarm.errors import SwarmError

from .polling import wait_until
from .test_up import _gone, swarm_up

pytestmark = pytest.mark.integration

BACK_S = 90.0  # a killed child's backoff (1 s), then a cold interpreter importing Celery, on a busy machine


def status_json(redis_url: str, prefix: str) -> dict[str, Any]:
    env = {**os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix}
    done = subprocess.run(
        [sys.executable, "-m", "swarm", "status", "--json"],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def restarts(redis_url: str, prefix: str) -> dict[str, int]:
    """``swarm status --json``'s restart counts, by child."""
    return {row["child"]: row["restarts"] for row in status_json(redis_url, prefix)["restarts"]}


def recorded(client: Swarm) -> dict[str, int]:
    """The restart counts as ``swarm up`` wrote them (read directly: cheap enough to poll)."""
    try:
        return {row.child: row.restarts for row in fleet_record.read(client.ledger)}
    except SwarmError:
        return {}


def node_pids(client: Swarm, role: str) -> set[int]:
    """The pids of the role's workers that registered agents and are not offline."""
    return {
        a.pid
        for a in client.ledger.agents()
        if a.node.startswith(f"{role}@") and a.pid is not None and a.status.value != "offline"
    }


def beat_pid(client: Swarm) -> int | None:
    try:
        pid = client.ledger.read(client.ledger.client.hget, client.ledger.keys.beat_tick, "pid")
    except SwarmError:
        return None
    return int(pid) if pid else None


def test_up_restarts_a_killed_worker_and_beat_and_counts_them(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    log = tmp_path / "up.log"
    with swarm_up(redis_url, prefix, log, "--roles", "developer,qa") as up:
        first = [client.submit("feature", f"for {role}", role=role) for role in ("developer", "qa")]
        wait_until(lambda: all(client.get(i.id).status is Status.COMPLETED for i in first), "both roles")
        wait_until(lambda: beat_pid(client) is not None, "beat to lead")
        (developer,) = node_pids(client, "developer")
        beat = beat_pid(client)
        assert beat is not None
        os.kill(developer, signal.SIGKILL)
        os.kill(beat, signal.SIGKILL)

        def explain() -> str:
            return log.read_text(errors="replace")[-6000:]

        wait_until(
            lambda: (node_pids(client, "developer") - {developer}) != set(),
            "a new developer worker",
            BACK_S,
            explain=explain,
        )
        wait_until(
            lambda: beat_pid(client) not in (None, beat), "a new beat to lead", BACK_S, explain=explain
        )
        wait_until(
            lambda: recorded(client).get("beat") == 1, "the beat's restart counted", 30, explain=explain
        )
        assert _gone(developer)
        assert _gone(beat)
        counts = restarts(redis_url, prefix)
        assert counts.get("developer") == 1, counts
        assert counts.get("beat") == 1, counts
        assert counts.get("qa", 0) == 0, counts
        text = log.read_text(errors="replace")
        assert "swarm up: developer exited with code -9" in text
        assert "swarm up: beat exited with code -9" in text
        # The new worker consumes: new items complete, and up itself never stopped.
        second = [client.submit("feature", f"again for {role}", role=role) for role in ("developer", "qa")]
        wait_until(
            lambda: all(client.get(i.id).status is Status.COMPLETED for i in second),
            "new items",
            60,
            explain=explain,
        )
        assert up.poll() is None, explain()
        pids = [*node_pids(client, "developer"), *node_pids(client, "qa"), beat_pid(client)]
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0, explain()
    wait_until(lambda: all(_gone(pid) for pid in pids if pid is not None), "every child to exit", 10)
    assert "swarm up: stopped" in log.read_text()
    client.close()


def test_a_child_that_crash_loops_is_restarted_with_backoff_and_up_stays(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    # A handler module that does not exist: the worker exits 2 at every start, beat runs on.
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    log = tmp_path / "up.log"
    args = ("--roles", "developer", "--handlers", "no_such_handler_module")
    with swarm_up(redis_url, prefix, log, *args) as up:

        def explain() -> str:
            return log.read_text(errors="replace")[-6000:]

        wait_until(lambda: recorded(client).get("developer", 0) >= 3, "three restarts", 120, explain=explain)
        assert restarts(redis_url, prefix)["developer"] >= 3
        text = log.read_text(errors="replace")
        delays = [
            float(d) for d in re.findall(r"developer exited with code 2; starting it again in (\S+)s", text)
        ]
        assert delays[:3] == [1.0, 2.0, 4.0], delays
        assert up.poll() is None, explain()
        wait_until(lambda: beat_pid(client) is not None, "beat to lead meanwhile", 30, explain=explain)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=90) == 0, explain()
    client.close()
