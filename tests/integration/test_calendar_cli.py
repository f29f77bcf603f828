"""``swarm calendar``: the current PI and iteration, and where a work item's times fall."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from swarm.ledger import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2


def swarm(redis_url: str, prefix: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, **env}
    return subprocess.run(
        [sys.executable, "-m", "swarm", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_calendar_places_now_and_an_item_in_their_pi_and_iteration(
    redis_url: str, prefix: str, ledger: Ledger
) -> None:
    # Epoch 7.5 iterations of an hour ago, 3 iterations per PI: now is in PI 3, its 2nd iteration.
    start = ledger.server_time() - timedelta(hours=7, minutes=30)
    env = {
        "SWARM_CALENDAR_START": start.isoformat(),
        "SWARM_ITERATION_LENGTH": "1h",
        "SWARM_PI_ITERATIONS": "3",
    }
    done = swarm(redis_url, prefix, env, "calendar", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["pi"], shown["iteration"], shown["iteration_length"]) == (3, "PI3.I2", "1h")
    assert [p["key"] for p in shown["iterations"]] == ["PI3.I1", "PI3.I2", "PI3.I3"]

    item = ledger.submit("feature", "placed")
    done = swarm(redis_url, prefix, env, "calendar", item.id, "--json")
    assert done.returncode == 0, done.stderr
    placed = json.loads(done.stdout)
    assert placed["created_at"]["key"] == "PI3.I2"
    assert placed["completed_at"] is None

    human = swarm(redis_url, prefix, env, "calendar")
    assert "PI 3, iteration PI3.I2" in human.stdout

    missing = swarm(redis_url, prefix, env, "calendar", "work_1_x")
    assert missing.returncode == 4, missing.stderr
    bad = swarm(redis_url, prefix, {**env, "SWARM_ITERATION_LENGTH": "soon"}, "calendar")
    assert bad.returncode == 2
    assert "iteration_length" in bad.stderr
