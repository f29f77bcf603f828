"""Two real ``swarm beat`` processes outlive repeated restarts of their Redis, with its data kept
(AOF) and with its data lost, and one of them leads after each.

Before, a restart while the standby waited for the lock in RedBeat's ``beat_init`` receiver left
``scheduler.lock`` None and killed that beat at its first tick.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import pytest

from swarm.errors import SwarmError
from swarm.ledger import Ledger
from swarm.settings import Settings

from .polling import wait_until
from .test_beat import calendar_env
from .workers_harness import private_redis, running_beat

pytestmark = pytest.mark.integration

T = TypeVar("T")
RESTARTS = 5
# Shorter than the lock's timeout (the leader keeps its lock), and longer (it expires while Redis
# is down, and either beat may take it).
OUTAGES_S = (0.3, 3.0)
LEAD_AGAIN_S = 45.0  # Redis replaying its AOF, then the lock's timeout and a tick, on a busy machine
LEADER_TICKS = 4  # ticks of one leader watched after each restart: one pid throughout


def answer(read: Callable[[], T]) -> T | None:
    """``read()``, or None while the restarted Redis does not answer yet."""
    try:
        return read()
    except SwarmError:
        return None


def tick(ledger: Ledger) -> tuple[int, int] | None:
    """The leader's last tick record: (at ms, pid)."""
    record = answer(lambda: ledger.read(ledger.client.hgetall, ledger.keys.beat_tick))
    if not record:
        return None
    return int(record["at"]), int(record["pid"])


def ceremonies_sent(logs: list[Path]) -> list[tuple[str, str]]:
    """Every (ceremony, period) whose task a beat sent, from both beats' logs."""
    sent = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if '"ceremony_due"' in line:
                record = json.loads(line)
                sent.append((record["ceremony"], record["period"]))
    return sent


def status_beat(redis_url: str, prefix: str) -> dict[str, Any]:
    """``swarm status --json``'s beat section."""
    env = {**os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix}
    argv = [sys.executable, "-m", "swarm", "status", "--json"]
    done = subprocess.run(argv, env=env, capture_output=True, check=True, timeout=60)
    beat: dict[str, Any] = json.loads(done.stdout)["beat"]
    return beat


def more_sent(logs: list[Path], before: int) -> bool:
    return len(ceremonies_sent(logs)) > before


def one_leader(ledger: Ledger, explain: Callable[[], str]) -> int:
    """The leader's pid, from the tick record watched over ``LEADER_TICKS`` ticks. Two leaders
    would alternate in it; one takeover (a leader starved past the lock's timeout on a busy
    machine, its last tick recorded after the other beat took the lock) changes it once."""
    seen: list[tuple[int, int]] = []

    def watched() -> bool:
        now = tick(ledger)
        if now is not None and (not seen or now[0] > seen[-1][0]):
            seen.append(now)
        return len(seen) >= LEADER_TICKS and seen[-1][1] == seen[-2][1]

    wait_until(watched, "the leader's ticks", 30, explain=explain)
    pids = [pid for _, pid in seen]
    changes = sum(1 for before, after in pairwise(pids) if before != after)
    assert changes <= 1, f"ticks alternate between leaders: {pids}"
    return pids[-1]


def reaped(ledger: Ledger, explain: Callable[[], str]) -> None:
    """The leader's reaper runs: an expired lease goes back to pending."""
    item = ledger.claim(ledger.submit("feature", "held by a dead agent").id, "agent_gone", lease_seconds=0.2)
    wait_until(lambda: ledger.get(item.id).attempts == 1, "the reaper to reap", 30, explain=explain)


@pytest.mark.parametrize("keep_data", [True, False], ids=["aof-kept", "data-lost"])
def test_two_beats_outlive_redis_restarts_and_one_leads_after_each(
    keep_data: bool, prefix: str, tmp_path: Path
) -> None:
    directory = tmp_path / "redis"
    directory.mkdir()
    with private_redis(directory) as server:
        ledger = Ledger.from_url(server.url, Settings(key_prefix=prefix, redis_url=None))
        env = {**calendar_env(ledger.server_time()), "SWARM_LEASE_SECONDS": "1"}
        logs = [tmp_path / "beat-a.log", tmp_path / "beat-b.log"]
        with (
            running_beat(server.url, prefix, logs[0], env=env) as a,
            running_beat(server.url, prefix, logs[1], env=env) as b,
        ):
            beats = {a.pid: a, b.pid: b}

            def explain() -> str:
                return "\n".join(
                    f"--- {log.name}\n" + log.read_text(errors="replace")[-4000:] for log in logs
                )

            wait_until(lambda: (tick(ledger) or (0, 0))[1] in beats, "one beat to lead", 30, explain=explain)
            first = tick(ledger)
            assert first is not None
            standby_log = logs[1] if first[1] == a.pid else logs[0]
            wait_until(
                lambda: '"beat_standby"' in standby_log.read_text(errors="replace"),
                "the other beat to say that it stands by",
                30,
                explain=explain,
            )
            for restart in range(RESTARTS):
                last = tick(ledger)
                assert last is not None
                sent_before = len(ceremonies_sent(logs))
                server.stop()
                if not keep_data:
                    shutil.rmtree(directory / "appendonlydir", ignore_errors=True)
                time.sleep(OUTAGES_S[restart % 2])  # the outage itself, not a wait for a result
                server.start()
                started = time.monotonic()

                def leads_again(last: tuple[int, int] = last) -> bool:
                    now = tick(ledger)
                    return now is not None and now[0] > last[0] + 1000 * OUTAGES_S[0] and now[1] in beats

                wait_until(
                    leads_again, f"a beat to lead after restart {restart + 1}", LEAD_AGAIN_S, explain=explain
                )
                recovered = time.monotonic() - started
                assert all(p.poll() is None for p in beats.values()), f"a beat exited:\n{explain()}"

                leader = one_leader(ledger, explain)
                standby = next(pid for pid in beats if pid != leader)
                standbys = answer(lambda: ledger.read(ledger.client.hgetall, ledger.keys.beat_standbys)) or {}
                waited = [int(at) for name, at in standbys.items() if name.endswith(f":{standby}")]
                assert waited, f"the standby {standby} is recorded: {standbys}"
                assert waited[0] > last[0], f"the standby {standby} waited since the restart: {standbys}"
                reaped(ledger, explain)
                # And the calendar goes on: new ceremony periods are sent after the restart.
                wait_until(
                    partial(more_sent, logs, sent_before),
                    "a ceremony after the restart",
                    30,
                    explain=explain,
                )
                print(
                    f"restart {restart + 1} ({'AOF kept' if keep_data else 'data lost'}, "
                    f"{OUTAGES_S[restart % 2]}s down): led again by {leader} after {recovered:.2f}s"
                )
            assert all(p.poll() is None for p in beats.values()), explain()
            # `swarm status` tells the leader from the standby.
            leader = one_leader(ledger, explain)
            standby = next(pid for pid in beats if pid != leader)
            beat = status_beat(server.url, prefix)
            assert str(beat["leader"]).endswith(f":{leader}"), beat
            assert [name.rsplit(":", 1)[1] for name in beat["standbys"]] == [str(standby)], beat
        ledger.client.close()
    sent = Counter(ceremonies_sent(logs))
    if keep_data:  # the markers survive the restarts: each period was sent once, by one beat
        assert max(sent.values()) == 1, f"a period was sent twice: {sent.most_common(3)}"
