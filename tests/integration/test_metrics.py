"""``swarm metrics`` after a known run: every value matches what the ledger itself records (SPEC §10).

A real ``developer`` worker does part of the work; the rest is done through the ledger by hand, so
that the run holds every kind of fact the metrics report: completions in two teams, a failure, a
dead item, a queue with no consumer, and an expired lease that no reaper has returned yet.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarm import Settings, Status, Swarm
from swarm.calendar import Calendar
from swarm.embedded import free_port
from swarm.ledger import Ledger
from swarm.models import Agent, EventKind, Role, WorkItem

from .polling import wait_until
from .workers_harness import EVENTS_READ, running_worker

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _cli_env(redis_url: str, prefix: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix}


def _samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _metrics_cli(redis_url: str, prefix: str) -> Samples:
    done = subprocess.run(
        [sys.executable, "-m", "swarm", "metrics"],
        env=_cli_env(redis_url, prefix),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return _samples(done.stdout)


def _by_labels(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def test_metric_values_match_the_ledger_after_a_known_run(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    settings = Settings(key_prefix=prefix, redis_url=None)
    client = Swarm(redis_url, agent_id="pm-1", settings=settings)
    ledger: Ledger = client.ledger
    Calendar.load(ledger)  # the calendar starts now: the run is in its first iteration

    # The worker's own reaper (every worker reaps, every reaper interval) is set to an hour, so
    # the lease below stays expired and unreaped while the metrics are read.
    hourly_reaper = {"SWARM_REAPER_INTERVAL": "1h"}
    with running_worker(redis_url, prefix, "developer", tmp_path / "dev.log", "-c", "2", env=hourly_reaper):
        done = [
            client.submit("chore", f"ok {n}", role="developer", team="red" if n % 2 else "blue", points=n + 1)
            for n in range(5)
        ]
        failed = client.submit("chore", "fails for good", role="developer", payload={"fail": "permanent"})
        dies = ledger.submit(
            "chore",
            "dies on its only attempt",
            role="developer",
            payload={"fail": "transient"},
            max_attempts=1,
        )
        client.dispatch(dies)  # sent to the developer queue, as Swarm.submit sends
        worked = [*done, failed, dies]
        wait_until(
            lambda: all(ledger.get(i.id).status.terminal for i in worked),
            "the worker to finish every item",
            explain=lambda: (tmp_path / "dev.log").read_text(errors="replace"),
        )
        # No qa worker: these wait in the queue. One more is claimed by hand with a short lease
        # that runs out; nothing reaps it (no beat, and the worker's reaper is hourly).
        waiting = [client.submit("chore", f"queued {n}", role="qa", team="blue") for n in range(2)]
        stuck = ledger.submit("chore", "held past its lease", role="architect", team="red")
        ledger.claim(stuck.id, "hand-1", lease_seconds=0.05)
        wait_until(lambda: not ledger.client.exists(ledger.keys.claim(stuck.id)), "the lease to run out")

        samples = _metrics_cli(redis_url, prefix)
        agents_now = ledger.agents()

    items = ledger.fetch([i.id for i in [*worked, *waiting, stuck]])
    role_team = {i.id: (i.role.value, i.team) for i in items}
    events = ledger.events(EVENTS_READ)
    for kind, name in [
        (EventKind.CLAIMED, "swarm_items_claimed_total"),
        (EventKind.COMPLETED, "swarm_items_completed_total"),
        (EventKind.FAILED, "swarm_items_failed_total"),
    ]:
        expected = Counter(role_team[e.work_id] for e in events if e.event is kind and e.work_id)
        got = {(dict(k)["role"], dict(k)["team"]): v for k, v in _by_labels(samples, name).items()}
        assert {k: v for k, v in got.items() if v} == expected, name
        teams = {"blue", "red", "core"}
        assert set(got) == {(r.value, t) for r in Role for t in teams}, f"{name}: a zero series for the rest"
    assert samples[("swarm_items_completed_total", (("role", "developer"), ("team", "blue")))] == 3
    assert samples[("swarm_items_failed_total", (("role", "developer"), ("team", "core")))] == 2

    _assert_histograms(samples, ledger, items, done, [failed, dies])
    _assert_gauges(samples, ledger, items, agents_now)
    client.close()


def _us(later: datetime | None, earlier: datetime | None) -> int:
    assert later is not None
    assert earlier is not None
    return round((later - earlier).total_seconds() * 1_000_000)


def _assert_histograms(
    samples: Samples, ledger: Ledger, items: list[WorkItem], done: list[WorkItem], failed: list[WorkItem]
) -> None:
    """Each item was claimed once, so the sums are exact sums over the items."""
    for role in ("developer", "architect"):
        claimed = [i for i in items if i.role.value == role and i.claimed_at is not None]
        key = (("role", role),)
        assert samples[("swarm_claim_latency_seconds_count", key)] == len(claimed)
        assert samples[("swarm_claim_latency_seconds_sum", key)] == pytest.approx(
            sum(_us(i.claimed_at, i.created_at) for i in claimed) / 1e6, abs=1e-6
        )
        assert samples[("swarm_claim_latency_seconds_bucket", (("le", "+Inf"), *key))] == len(claimed)
    for outcome, members in [("completed", done), ("failed", failed)]:
        finished = ledger.fetch([i.id for i in members])
        key = (("outcome", outcome), ("role", "developer"))
        assert samples[("swarm_work_duration_seconds_count", key)] == len(finished)
        assert samples[("swarm_work_duration_seconds_sum", key)] == pytest.approx(
            sum(_us(i.completed_at, i.claimed_at) for i in finished) / 1e6, abs=1e-6
        )
        buckets = sorted(
            (float(dict(k)["le"]), v)
            for k, v in _by_labels(samples, "swarm_work_duration_seconds_bucket").items()
            if dict(k)["outcome"] == outcome and dict(k)["role"] == "developer"
        )
        assert [v for _, v in buckets] == sorted(v for _, v in buckets), "cumulative buckets"
        assert buckets[-1][1] == len(finished)


def _assert_gauges(samples: Samples, ledger: Ledger, items: list[WorkItem], agents_now: list[Agent]) -> None:
    velocity: Counter[str] = Counter()
    for item in items:
        if item.status is Status.COMPLETED and item.next_id is None:
            velocity[item.team] += item.points
    assert velocity == {"blue": 1 + 3 + 5, "red": 2 + 4}
    for team, points in velocity.items():
        assert samples[("swarm_team_velocity_points", (("team", team),))] == points
    counts = ledger.counts()
    for status in Status:
        assert samples[("swarm_items", (("status", status.value),))] == counts[status]
    assert samples[("swarm_dead_items", ())] == counts[Status.DEAD] == 1
    for role in Role:
        pending = len(ledger.list(Status.PENDING, role=role, limit=1000))
        assert samples[("swarm_queue_depth", (("role", role.value),))] == pending
    assert samples[("swarm_queue_depth", (("role", "qa"),))] == 2
    assert samples[("swarm_expired_leases", ())] == 1
    live_developers = sum(1 for a in agents_now if a.role is Role.DEVELOPER and a.status.value != "offline")
    assert live_developers >= 1
    assert samples[("swarm_agents_active", (("role", "developer"),))] == live_developers
    assert samples[("swarm_agents_active", (("role", "architect"),))] == 1  # hand-1, seen at its claim
    assert samples[("swarm_ledger_up", ())] == 1


def test_metrics_serve_answers_scrapes_over_http(redis_url: str, prefix: str, tmp_path: Path) -> None:
    ledger = Ledger.from_url(redis_url, Settings(key_prefix=prefix, redis_url=None))
    item = ledger.submit("chore", "one", role="pm", team="green")
    ledger.claim(item.id, "pm-hand")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "swarm", "metrics", "--serve", str(port), "--address", "127.0.0.1"],
            env=_cli_env(redis_url, prefix),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        body: list[str] = []

        def scraped() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
                    body.append(reply.read().decode())
                return True
            except OSError:
                assert proc.poll() is None, log.read_text(errors="replace")
                return False

        wait_until(scraped, "the metrics endpoint to answer", explain=lambda: log.read_text(errors="replace"))
        first = _samples(body[-1])
        assert first[("swarm_items_claimed_total", (("role", "pm"), ("team", "green")))] == 1
        ledger.complete(item.id, "pm-hand")
        assert scraped()
        second = _samples(body[-1])  # every scrape reads the ledger again
        assert second[("swarm_items_completed_total", (("role", "pm"), ("team", "green")))] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        ledger.client.close()
