"""Two real ``swarm beat`` processes on one Redis, a compressed calendar and a real worker.

Each ceremony must run exactly once per period while both beats run, and when the leader is
killed with SIGKILL the other must take over within the lock's timeout and go on, still once
per period, with no period missed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ceremonies import store
from ceremonies.registry import ceremonies
from swarm.calendar import Calendar
from swarm.calendar_store import change, read
from swarm.ledger import Ledger
from swarm.settings import Settings

from .polling import wait_until
from .workers_harness import running_beat, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2

ITERATION_S = 3.0
LOCK_TIMEOUT_S = 2.0
MAX_INTERVAL_S = 0.5
STARTUP_S = 20.0  # a cold worker and two cold beats on a busy 2-core machine start within this
_OUTCOME = re.compile(r"Task swarm\.ceremony\[[^\]]+\] succeeded in \S+: '([^']+)'")


def calendar_env(start: datetime) -> dict[str, str]:
    return {
        "SWARM_ITERATION_LENGTH": f"{ITERATION_S}s",
        "SWARM_PI_ITERATIONS": "2",
        "SWARM_ART_SYNC_EVERY": f"{ITERATION_S}s",  # one ART Sync per iteration
        "SWARM_CALENDAR_START": start.isoformat(),
        "SWARM_CALENDAR_TICK": "250ms",
        "SWARM_BEAT_MAX_INTERVAL": f"{MAX_INTERVAL_S}s",
        "SWARM_BEAT_LOCK_TIMEOUT": f"{LOCK_TIMEOUT_S}s",
        "SWARM_IMPROVE_EVERY": "1h",
    }


def ceremony_outcomes(log: Path) -> list[str]:
    """What each ``swarm.ceremony`` task the worker ran returned, e.g. ``art-sync reported PI1.I2.S1``."""
    return _OUTCOME.findall(log.read_text(errors="replace"))


def expected_periods(calendar: Calendar, upto: datetime) -> dict[str, set[str]]:
    """Every period each ceremony should have reported on by ``upto``."""
    ended = [calendar.iteration_at_index(i) for i in range(calendar.index(upto))]
    current_pi = calendar.place(upto).pi
    return {
        "pi-planning": {f"PI{n}" for n in range(1, current_pi + 1)},
        "art-sync": {f"{p.key}.S1" for p in ended} | {f"{calendar.current_iteration(upto).key}.S1"},
        "system-demo": {p.key for p in ended},
        "inspect-adapt": {f"PI{n}" for n in range(1, current_pi)},
    }


def leader_pid(ledger: Ledger) -> int | None:
    pid = ledger.client.hget(ledger.keys.beat_tick, "pid")
    return int(pid) if pid else None


def test_two_beats_run_each_ceremony_once_per_period_and_the_survivor_takes_over(
    redis_url: str, prefix: str, tmp_path: Path, ledger: Ledger
) -> None:
    # The first iteration lasts from now until STARTUP_S after the processes start: a worker and
    # two beats starting on a busy machine must not miss its ART Sync (instants before the epoch
    # fall in the first iteration).
    start = ledger.server_time() + timedelta(seconds=STARTUP_S)
    env = calendar_env(start)
    settings = Settings(
        key_prefix=prefix,
        redis_url=None,
        iteration_length=ITERATION_S,
        pi_iterations=2,
        art_sync_every=ITERATION_S,
        calendar_start=start,
    )
    ledger = Ledger(ledger.client, settings)
    calendar = Calendar.load(ledger)  # the calendar's first user: every process uses this one
    # The worker and the beats start with another calendar in their environment (a stale shell):
    # they follow the stored one, and say so.
    stale = {**env, "SWARM_ITERATION_LENGTH": "1h", "SWARM_PI_ITERATIONS": "5"}
    known = ceremonies()
    worker_log = tmp_path / "worker.log"
    logs = {"a": tmp_path / "beat-a.log", "b": tmp_path / "beat-b.log"}
    with (
        running_worker(redis_url, prefix, "developer", worker_log, "-c", "2", env=stale),
        running_beat(redis_url, prefix, logs["a"], env=stale) as beat_a,
        running_beat(redis_url, prefix, logs["b"], env=stale) as beat_b,
    ):
        wait_until(lambda: leader_pid(ledger) in (beat_a.pid, beat_b.pid), "one beat to lead")
        leader = beat_a if leader_pid(ledger) == beat_a.pid else beat_b
        follower = beat_b if leader is beat_a else beat_a
        # Both beats run through the first PI: only one of them ever leads.
        wait_until(
            lambda: store.exists(known["inspect-adapt"], ledger, "PI1"),
            "PI 1's Inspect & Adapt",
            STARTUP_S + 30,
        )
        acquired = {
            name: log.read_text(errors="replace").count("beat: Acquired lock") for name, log in logs.items()
        }
        assert sorted(acquired.values()) == [0, 1], f"exactly one beat leads: {acquired}"

        os.kill(leader.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: leader_pid(ledger) == follower.pid, "the surviving beat to lead", 15)
        takeover = time.monotonic() - killed_at
        print(f"beat takeover after kill -9 of the leader: {takeover:.2f}s (lock timeout {LOCK_TIMEOUT_S}s)")
        # The lock lapses at most LOCK_TIMEOUT_S after the leader's last extension; the follower
        # polls every MAX_INTERVAL_S; this test sees the new leader's first tick record within
        # its own polling plus the first tick (0.5 s of slack for a busy machine).
        bound = LOCK_TIMEOUT_S + MAX_INTERVAL_S + 0.5
        assert takeover <= bound, f"took over after {takeover:.2f}s (bound {bound}s)"

        # The survivor carries on through the second PI.
        wait_until(lambda: store.exists(known["inspect-adapt"], ledger, "PI2"), "PI 2's Inspect & Adapt", 30)
    # Up to just before PI 3: what happens at its first instant may still be in flight.
    wanted = expected_periods(calendar, calendar.pi(2).end - timedelta(microseconds=1))
    for name, periods in wanted.items():
        stored = set(store.periods(known[name], ledger))
        assert periods <= stored, f"{name}: missing {sorted(periods - stored)}"
    for log in (worker_log, *logs.values()):
        assert "calendar_settings_differ" in log.read_text(errors="replace"), log.name
    outcomes = ceremony_outcomes(worker_log)
    runs = Counter(outcomes)
    assert all(" reported " in o and "already" not in o for o in outcomes), outcomes
    assert max(runs.values()) == 1, f"a period ran twice: {runs.most_common(3)}"
    for name, periods in wanted.items():
        for period in periods:
            assert runs[f"{name} reported {period}"] == 1, f"{name} {period}: {outcomes}"


def test_beat_stores_its_schedule_again_after_redis_lost_its_data(
    redis_url: str, prefix: str, tmp_path: Path, ledger: Ledger
) -> None:
    # A restart without persistence loses the lock and RedBeat's entries: the leader must take
    # the lock again and store its schedule again, or it would tick on without reaping.
    env = {**calendar_env(ledger.server_time()), "SWARM_LEASE_SECONDS": "1"}
    log = tmp_path / "beat.log"
    with running_beat(redis_url, prefix, log, env=env) as beat:
        wait_until(lambda: leader_pid(ledger) == beat.pid, "the beat to lead")
        namespace = list(ledger.client.scan_iter(match="{" + prefix + "}*", count=1000))
        ledger.client.delete(*namespace)  # the data loss
        wait_until(
            lambda: "beat_schedule_restored" in log.read_text(errors="replace"),
            "the beat to store its schedule again",
            15,
            explain=lambda: log.read_text(errors="replace"),
        )
        item = ledger.claim(
            ledger.submit("feature", "held by a dead agent").id, "agent_gone", lease_seconds=0.2
        )
        wait_until(
            lambda: ledger.get(item.id).attempts == 1, "the restored reaper to reap the expired lease", 15
        )
    assert ledger.get(item.id).agent_id is None


def check_interval(ledger: Ledger, entry: str) -> float | None:
    """How often beat's stored schedule runs ``entry`` (RedBeat's entry in Redis), in seconds."""
    raw = ledger.client.hget(ledger.keys.redbeat_prefix + entry, "definition")
    return float(json.loads(raw)["schedule"]["every"]) if raw else None


def test_beat_checks_on_the_agreed_calendar_and_follows_a_change(
    redis_url: str, prefix: str, tmp_path: Path, ledger: Ledger
) -> None:
    """Beat's ceremony checks run every iteration / 20 of the stored calendar, not of beat's own
    environment, and follow ``swarm calendar set`` without a restart."""
    agreed = Ledger(ledger.client, ledger.settings.model_copy(update={"iteration_length": 20.0}))
    Calendar.load(agreed)  # the first user: 20 s iterations, so a check every second
    env = {"SWARM_ITERATION_LENGTH": "2w", "SWARM_BEAT_MAX_INTERVAL": "0.5s", "SWARM_IMPROVE_EVERY": "1h"}
    log = tmp_path / "beat.log"
    with running_beat(redis_url, prefix, log, env=env):
        wait_until(
            lambda: check_interval(ledger, "art-sync") == 1.0, "beat's schedule on the stored calendar"
        )
        stored = read(ledger)
        assert stored is not None
        change(ledger, stored, {"iteration_length": 40.0})
        wait_until(
            lambda: check_interval(ledger, "art-sync") == 2.0,
            "beat's schedule to follow the changed calendar",
            15,
            explain=lambda: log.read_text(errors="replace"),
        )
    text = log.read_text(errors="replace")
    assert "calendar_settings_differ" in text
    assert "beat_calendar_changed" in text
