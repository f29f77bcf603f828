"""``swarm calendar``: the current PI and iteration, where a work item's times fall, the one
calendar every process agrees on (through Redis), and ``swarm calendar set``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from ceremonies.tasks import run_ceremony
from swarm.calendar import Calendar
from swarm.calendar_store import Agreement, agree, read
from swarm.ledger import Ledger
from swarm.settings import Settings

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


def warnings_in(stderr: str) -> list[dict[str, Any]]:
    """The ``calendar_settings_differ`` log lines a command wrote (JSON: stderr is not a terminal)."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "calendar_settings_differ"]


def test_a_second_process_with_other_settings_uses_the_first_ones_and_says_so(
    redis_url: str, prefix: str, ledger: Ledger
) -> None:
    first = swarm(
        redis_url, prefix, {"SWARM_ITERATION_LENGTH": "20s", "SWARM_PI_ITERATIONS": "3"}, "calendar", "--json"
    )
    assert first.returncode == 0, first.stderr
    stored = json.loads(first.stdout)
    assert (stored["iteration_length"], stored["iterations_per_pi"]) == ("20s", 3)
    assert stored["source"]["stored_now"]
    assert stored["source"]["epoch_from"] == "first use"
    assert warnings_in(first.stderr) == []

    second = swarm(
        redis_url, prefix, {"SWARM_ITERATION_LENGTH": "2w", "SWARM_PI_ITERATIONS": "3"}, "calendar", "--json"
    )
    assert second.returncode == 0, second.stderr
    seen = json.loads(second.stdout)
    assert (seen["epoch"], seen["iteration_length"], seen["iterations_per_pi"]) == (stored["epoch"], "20s", 3)
    assert not seen["source"]["stored_now"]
    assert seen["source"]["stored_by"] == stored["source"]["stored_by"]
    in_redis = read(ledger)  # the first process's, as stored
    assert in_redis is not None
    assert (in_redis.iteration_length, in_redis.stored_by) == (20.0, stored["source"]["stored_by"])
    assert seen["differences"] == [
        {"setting": "iteration_length", "env": "SWARM_ITERATION_LENGTH", "stored": "20s", "local": "2w"}
    ]
    (warning,) = warnings_in(second.stderr)
    assert (warning["level"], warning["using"]) == ("warning", "stored")
    assert (warning["stored"], warning["local"]) == (
        {"SWARM_ITERATION_LENGTH": "20s"},
        {"SWARM_ITERATION_LENGTH": "2w"},
    )

    human = swarm(redis_url, prefix, {"SWARM_ITERATION_LENGTH": "2w"}, "calendar")
    assert "iterations of 20s, 3 per PI" in human.stdout
    assert "settings stored in Redis at " in human.stdout
    assert stored["source"]["stored_by"] in human.stdout
    assert "differs: this process has SWARM_ITERATION_LENGTH=2w, the stored calendar 20s" in human.stdout

    plain = swarm(redis_url, prefix, {}, "calendar", "--json")  # defaults only: follows, nothing to say
    assert json.loads(plain.stdout)["iteration_length"] == "20s"
    assert warnings_in(plain.stderr) == []


def test_racing_first_users_agree_on_one_calendar(redis_url: str, prefix: str, ledger: Ledger) -> None:
    """Eight processes' first use at once, each with settings of its own: one calendar wins."""
    barrier = threading.Barrier(8)

    def first_use(n: int) -> Agreement:
        settings = Settings(key_prefix=prefix, redis_url=None, pi_iterations=n + 1)
        ledger = Ledger.from_url(redis_url, settings)
        barrier.wait()
        try:
            return agree(ledger)
        finally:
            ledger.client.close()

    with ThreadPoolExecutor(8) as pool:
        agreements = list(pool.map(first_use, range(8)))
    assert sum(a.stored_now for a in agreements) == 1
    winner = next(a.stored for a in agreements if a.stored_now)
    assert all(a.stored == winner for a in agreements)
    assert read(ledger) == winner
    assert sum(not a.differences for a in agreements) == 1  # everyone else was told


def test_set_changes_the_calendar_every_process_uses(redis_url: str, prefix: str, ledger: Ledger) -> None:
    before = Calendar.load(ledger)  # the first user: two-week iterations
    done = swarm(
        redis_url, prefix, {}, "calendar", "set", "--iteration-length", "1h", "--pi-iterations", "3", "--json"
    )
    assert done.returncode == 0, done.stderr
    changed = json.loads(done.stdout)
    assert changed["changed"] == {
        "iteration_length": {"from": "2w", "to": "1h"},
        "pi_iterations": {"from": "5", "to": "3"},
    }
    assert (changed["version"], changed["reports"]) == (2, 0)
    assert Calendar.load(ledger) == Calendar(before.epoch, 3600.0, 3, before.sync_every_seconds)

    shown = json.loads(swarm(redis_url, prefix, {}, "calendar", "--json").stdout)
    assert (shown["iteration_length"], shown["source"]["version"]) == ("1h", 2)
    assert shown["source"]["epoch_from"] == "first use"  # the epoch did not move

    again = swarm(redis_url, prefix, {}, "calendar", "set", "--iteration-length", "60m")
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout

    human = swarm(redis_url, prefix, {}, "calendar", "set", "--start", "now", "--art-sync-every", "15m")
    assert human.returncode == 0, human.stderr
    assert "calendar changed (version 2 -> 3)" in human.stdout
    assert "art_sync_every: 1d -> 15m" in human.stdout
    after = Calendar.load(ledger)
    assert (after.epoch > before.epoch, after.syncs_per_iteration) == (True, 4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to change: give --iteration-length"),
        (("--iteration-length", "soon"), "--iteration-length 'soon': not a duration"),
        (("--pi-iterations", "2", "--start", "monday"), "--start 'monday': "),
    ],
)
def test_set_refuses_bad_input_with_exit_2_and_writes_nothing(
    redis_url: str, prefix: str, ledger: Ledger, args: tuple[str, ...], message: str
) -> None:
    done = swarm(redis_url, prefix, {}, "calendar", "set", *args)
    assert done.returncode == 2
    assert f"error: {message}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not ledger.client.exists(ledger.keys.calendar)  # refused before it was even read


def test_set_refusal_as_json(redis_url: str, prefix: str, ledger: Ledger) -> None:
    done = swarm(redis_url, prefix, {}, "calendar", "set", "--pi-iterations", "0", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout) == {
        "error": "BadInput",
        "message": "--pi-iterations '0': Input should be greater than or equal to 1",
        "exit_code": 2,
    }
    assert not ledger.client.exists(ledger.keys.calendar)


def test_set_asks_for_yes_when_ceremony_reports_are_stored(
    redis_url: str, prefix: str, ledger: Ledger
) -> None:
    ledger.submit("feature", "planned", points=3, dispatch=False)
    assert run_ceremony(ledger, "pi-planning") == "pi-planning reported PI1"
    stored = ledger.client.hgetall(ledger.keys.calendar)

    refused = swarm(redis_url, prefix, {}, "calendar", "set", "--iteration-length", "1d")
    assert refused.returncode == 2
    assert "1 ceremony report is stored (pi-planning 1)" in refused.stderr
    assert "iteration_length 2w -> 1d" in refused.stderr
    assert "(e.g. PI1) is not reported again. Run again with --yes" in refused.stderr
    assert ledger.client.hgetall(ledger.keys.calendar) == stored  # nothing was changed

    done = swarm(redis_url, prefix, {}, "calendar", "set", "--iteration-length", "1d", "--yes")
    assert done.returncode == 0, done.stderr
    assert "1 stored ceremony report keeps the period it was written for" in done.stdout
    assert Calendar.load(ledger).iteration_seconds == 86_400.0
