"""The self-improvement cycle on real ``swarm worker`` processes and the real Redis (SPEC §9).

An induced QA backlog is detected and the QA pool grown, draining it measurably faster; a
harmful change is judged worse by the next cycle and rolled back; the AI advisor (a fake
``claude`` on PATH) is used when its answer is valid and ignored safely otherwise; ``swarm
improve --dry-run --json`` deploys nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from ceremonies.improve import pool, records
from ceremonies.improve.cycle import Cycle, run_cycle
from swarm import Settings, Status, Swarm
from swarm.celery_app import create_app
from swarm.ledger import Ledger
from swarm.models import Role, WorkItem

from .polling import wait_until
from .workers_harness import running_worker

pytestmark = pytest.mark.integration

POOL = ("--pool", "workers.pool:TaskPool")  # resizable threads (until --pool threads uses it)
ADVISOR_DIR = Path(__file__).resolve().parents[1] / "fakes" / "advisor"
DEADLINE_S = 60.0


@pytest.fixture
def celery_app(redis_url: str, settings: Settings, real_redis: object) -> Iterator[Celery]:
    """Remote control on the test's Redis (``real_redis`` drops the test's namespace afterwards)."""
    app = create_app(settings, redis_url)
    yield app
    app.close()


def _client(redis_url: str, settings: Settings) -> Swarm:
    return Swarm(redis_url, agent_id="pm-1", settings=settings)


def _node(log: Path, prefix: str) -> str:
    return f"{log.stem}-{prefix}@{os.uname().nodename}"


def _size(app: Celery, node: str) -> int:
    return pool.pool_sizes(app, [node])[node]


def _completed(ledger: Ledger, items: list[WorkItem]) -> int:
    return sum(i.status is Status.COMPLETED for i in ledger.fetch([i.id for i in items]))


def _submit(client: Swarm, count: int, seconds: float, tag: str) -> list[WorkItem]:
    return [
        client.submit("check", f"{tag} {n}", role="qa", payload={"duration_s": seconds}) for n in range(count)
    ]


def _done(ledger: Ledger, items: list[WorkItem], what: str) -> None:
    wait_until(lambda: _completed(ledger, items) == len(items), what, DEADLINE_S)


def test_an_induced_qa_backlog_is_detected_the_pool_grown_and_it_drains_faster(
    redis_url: str, prefix: str, settings: Settings, celery_app: Celery, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"improve_window": 3.0})
    client = _client(redis_url, settings)
    log = tmp_path / "qa.log"
    with running_worker(redis_url, prefix, "qa", log, "-c", "1", *POOL):
        node = _node(log, prefix)
        assert _size(celery_app, node) == 1
        worker_pid = pool.pool_states(celery_app, [node])[node].pid
        assert isinstance(worker_pid, int)
        # Run A: twelve 1 s checks on one slot, no cycle.
        started = time.monotonic()
        run_a = _submit(client, 12, 1.0, "A")
        _done(client.ledger, run_a, "run A to drain")
        drain_a = time.monotonic() - started
        # Run B: the same backlog; a cycle runs once it is there.
        started = time.monotonic()
        run_b = _submit(client, 12, 1.0, "B")
        wait_until(lambda: _completed(client.ledger, run_b) >= 2, "run B to be under way", DEADLINE_S)
        cycle = run_cycle(client.ledger, celery_app)
        _done(client.ledger, run_b, "run B to drain")
        drain_b = time.monotonic() - started
        grown = _size(celery_app, node)
    print(f"\nQA backlog of 12 x 1 s: drained in {drain_a:.2f}s without a cycle (1 slot), "
          f"{drain_b:.2f}s with one (grown to {grown} slots); B/A = {drain_b / drain_a:.2f}")  # fmt: skip
    assert cycle.discovery is not None
    assert cycle.discovery.roles[Role.QA].queue_depth >= 8, "discovery saw the backlog"
    assert [d.action.describe() for d in cycle.deployments] == [f"scale_role qa +{grown - 1}"]
    deployed = cycle.deployments[0]
    assert deployed.ok
    assert deployed.before["pool"] == {node: 1}
    assert deployed.before["pids"][node] == worker_pid, "the node's identity is recorded for its undo"
    assert deployed.after["pool"] == {node: grown}
    assert grown > 1, "the worker's stats() max-concurrency grew"
    assert drain_b <= 0.75 * drain_a
    stored = records.load(client.ledger, cycle.id)
    assert stored is not None
    assert stored.deployments == cycle.deployments
    client.close()


def test_a_harmful_change_is_judged_worse_by_the_next_cycle_and_rolled_back(
    redis_url: str, settings: Settings, celery_app: Celery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{ADVISOR_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADVISOR_MODE", "shrink")  # the advisor proposes qa -2
    update = {"improve_window": 60.0, "improve_min_observation": 1.0, "improve_advisor": True}
    settings = settings.model_copy(update=update)
    client = _client(redis_url, settings)
    ledger = client.ledger
    log = tmp_path / "qa.log"
    with running_worker(redis_url, settings.key_prefix, "qa", log, "-c", "3", *POOL):
        node = _node(log, settings.key_prefix)
        items = _submit(client, 45, 0.5, "busy")
        wait_until(lambda: _completed(ledger, items) >= 6, "the backlog to be under way", DEADLINE_S)
        harmful = run_cycle(ledger, celery_app)
        assert harmful.advisor is not None
        assert harmful.advisor.used, harmful.advisor.reason
        assert [d.action.describe() for d in harmful.deployments] == ["scale_role qa -2"]
        assert harmful.deployments[0].ok
        assert _size(celery_app, node) == 1
        done_then = _completed(ledger, items)
        # Long enough that the items in flight at the shrink (finished at the old pace) do not make
        # the shrunk pool look faster on a loaded machine.
        wait_until(lambda: _completed(ledger, items) >= done_then + 10, "work on the shrunk pool", DEADLINE_S)
        judging = Ledger(ledger.client, settings.model_copy(update={"improve_advisor": False}))
        next_cycle = run_cycle(judging, celery_app)
        size_after = _size(celery_app, node)
        _done(ledger, items, "the backlog to drain")
    assert len(next_cycle.learned) == 1
    judged = next_cycle.learned[0]
    j = judged.judgement
    print(f"\nshrink 3 -> 1 judged {j.outcome}: throughput {j.before_value:.2f}/s before, "
          f"{j.after_value:.2f}/s over {j.observed_s:.1f}s after; rollback: {j.rollback}")  # fmt: skip
    assert (judged.cycle_id, judged.action) == (harmful.id, "scale_role qa -2")
    assert j.outcome == "worse"
    assert j.before_value is not None
    assert j.after_value is not None
    assert j.after_value < j.before_value
    assert j.rolled_back
    assert "pool_grow 2" in j.rollback
    assert size_after == 3, "the pool is back to 3"
    stored = records.load(ledger, harmful.id)
    assert stored is not None
    assert stored.deployments[0].judgement == j, "the outcome is recorded with the harmful cycle"
    client.close()


def _advised(ledger: Ledger, app: Celery, monkeypatch: pytest.MonkeyPatch, mode: str) -> Cycle:
    monkeypatch.setenv("FAKE_ADVISOR_MODE", mode)
    cycle = run_cycle(ledger, app)
    assert cycle.status.value == "completed", cycle.error
    return cycle


def test_the_advisors_valid_proposals_are_applied_and_anything_else_is_ignored_safely(
    redis_url: str, settings: Settings, celery_app: Celery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{ADVISOR_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADVISOR_SLEEP", "30")
    monkeypatch.setenv("FAKE_ADVISOR_LOG", str(tmp_path / "advisor.log"))
    settings = settings.model_copy(
        update={"improve_window": 60.0, "improve_advisor": True, "improve_advisor_timeout": 2.0}
    )
    client = _client(redis_url, settings)
    ledger = client.ledger
    log = tmp_path / "qa.log"
    with running_worker(redis_url, settings.key_prefix, "qa", log, "-c", "1", *POOL):
        node = _node(log, settings.key_prefix)
        valid = _advised(ledger, celery_app, monkeypatch, "valid")
        assert valid.advisor is not None
        assert valid.advisor.used
        assert valid.advisor.cost_usd == pytest.approx(0.0042)
        assert [(d.action.describe(), d.source.value, d.ok) for d in valid.deployments] == [
            ("scale_role qa +1", "advisor", True),
            ("set_lease qa 45s", "advisor", True),
        ]
        assert _size(celery_app, node) == 2
        assert ledger.client.hget(ledger.keys.tuning, "lease_seconds:qa") == "45.0"
        # The worker claims qa items with the tuned lease.
        item = client.submit("check", "leased", role="qa", payload={"duration_s": 1})
        wait_until(lambda: ledger.get(item.id).status is not Status.PENDING, "the item to be claimed")
        assert ledger.client.hget(ledger.keys.item(item.id), "lease_ms") == "45000"
        _done(ledger, [item], "the leased item")

        expected = {
            "invalid-json": "invalid JSON",
            "out-of-vocabulary": "out-of-vocabulary action(s): delete_queue",
            "sleep": "timed out after 2s",
            "costly": "over budget: spent $5 of $1",
            "fail": "exit code 1: fake advisor: API error",
        }
        for mode, reason in expected.items():
            started = time.monotonic()
            cycle = _advised(ledger, celery_app, monkeypatch, mode)
            assert cycle.advisor is not None
            assert not cycle.advisor.used
            assert reason in cycle.advisor.reason, (mode, cycle.advisor.reason)
            assert cycle.advisor.proposals == []
            assert cycle.deployments == [], f"{mode}: nothing deployed"
            generation = next(p for p in cycle.phases if p.name == "2 generation")
            assert f"advisor ignored: {cycle.advisor.reason}" in generation.summary
            took = time.monotonic() - started
            print(f"advisor {mode}: ignored ({cycle.advisor.reason}); cycle took {took:.1f}s")
        assert _size(celery_app, node) == 2, "the ignored answers changed nothing"
    runs = (tmp_path / "advisor.log").read_text().split()
    assert runs == ["valid", *expected], "one advisor run per cycle"
    client.close()


def _swarm(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swarm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_swarm_improve_dry_run_deploys_nothing_and_swarm_improve_lists_past_cycles(
    redis_url: str, prefix: str, settings: Settings, celery_app: Celery, tmp_path: Path
) -> None:
    env = {
        **os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, "SWARM_IMPROVE_WINDOW": "2",
        "COLUMNS": "250",
    }  # fmt: skip
    client = _client(redis_url, settings)
    log = tmp_path / "qa.log"
    with running_worker(redis_url, prefix, "qa", log, "-c", "1", *POOL):
        node = _node(log, prefix)
        items = _submit(client, 10, 0.5, "dry")
        wait_until(lambda: _completed(client.ledger, items) >= 2, "the backlog to be under way", DEADLINE_S)
        dry = _swarm(["improve", "--dry-run", "--json"], env)
        assert dry.returncode == 0, dry.stderr
        cycle = json.loads(dry.stdout)
        assert cycle["dry_run"] is True
        assert [p["name"] for p in cycle["phases"]] == ["1 discovery", "2 generation", "3 validation"]
        assert [v["proposal"]["action"]["kind"] for v in cycle["verdicts"]] == ["scale_role"]
        assert cycle["verdicts"][0]["accepted"], "it passed validation and its dry run ..."
        assert cycle["deployments"] == [], "... and was not deployed"
        assert _size(celery_app, node) == 1, "the pool is unchanged"
        assert records.load(client.ledger, cycle["id"]) is not None, "the dry run is recorded"
        _done(client.ledger, items, "the backlog to drain")
        real = _swarm(["improve"], env)
        assert real.returncode == 0, real.stderr
        listed = _swarm(["improve", "--list"], env)
    assert "Past cycles" in real.stdout
    assert cycle["id"] in real.stdout
    assert "dry run" in real.stdout
    assert "1 discovery" in real.stdout
    assert cycle["id"] in listed.stdout
    ids = [c.id for c in records.past_cycles(client.ledger, 10)]
    assert len(ids) == 2
    assert ids[1] == cycle["id"]
    client.close()
