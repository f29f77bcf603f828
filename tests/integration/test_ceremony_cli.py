"""``swarm ceremony`` as a separate process: JSON, Markdown, once per period, and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ceremonies import store
from ceremonies.pi_planning import PIPlanningReport
from ceremonies.registry import ceremony
from swarm.calendar import Calendar
from swarm.ledger import Ledger
from swarm.models import Priority

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2


@pytest.fixture
def env(redis_url: str, prefix: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "SWARM_KEY_PREFIX": prefix,
        "SWARM_ITERATION_LENGTH": "1h",
        "SWARM_PI_ITERATIONS": "2",
        "SWARM_DEFAULT_TEAM_CAPACITY": "10",
    }


def swarm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "swarm", "ceremony", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_now_json_is_the_stored_report_and_a_second_run_repeats_it(
    env: dict[str, str], ledger: Ledger
) -> None:
    # Default capacity 10 per iteration, 2 iterations: 20 points; 5 + 8 fit.
    a = ledger.submit("feature", "SSO", team="web", priority=Priority.HIGH, points=5, dispatch=False)
    b = ledger.submit("feature", "Audit log", team="web", priority=Priority.MEDIUM, points=8, dispatch=False)
    first = swarm(env, "pi-planning", "--now", "--json")
    assert first.returncode == 0, first.stderr
    report = PIPlanningReport.model_validate_json(first.stdout)
    assert json.loads(first.stdout)["ceremony"] == "pi-planning"
    assert report == store.load(ceremony("pi-planning"), ledger, "PI1")
    assert [o.work_id for o in report.objectives] == [a.id, b.id]
    assert report.total_business_value == 8 + 5
    assert report.teams[0].pi_capacity == 20.0

    again = swarm(env, "pi-planning", "--now", "--json")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    shown = swarm(env, "pi-planning", "--json")
    assert shown.stdout == first.stdout
    by_period = swarm(env, "pi-planning", "--period", "pi1", "--json")
    assert by_period.stdout == first.stdout


def test_markdown_is_written_to_the_file(env: dict[str, str], ledger: Ledger, tmp_path: Path) -> None:
    item = ledger.submit("feature", "Export to CSV", team="web", points=3, dispatch=False)
    target = tmp_path / "plan.md"
    done = swarm(env, "pi-planning", "--now", "--markdown", str(target))
    assert done.returncode == 0, done.stderr
    assert f"wrote Markdown to {target}" in done.stdout
    assert "PI Planning PI1: written now" in done.stdout
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# PI Planning: PI1\n")
    assert "## Objectives" in text
    assert f"| {item.id} | feature | web | developer | medium | 3 | 2.67 | 5 |" in text


def test_art_sync_now_in_a_fresh_ledger(env: dict[str, str]) -> None:
    done = swarm(env, "art-sync", "--now")
    assert done.returncode == 0, done.stderr
    assert "ART Sync PI1.I1.S1: written now" in done.stdout
    assert "PI1 has no PI Planning report: no objectives" in done.stdout


def test_unknown_ceremony_is_exit_2_and_lists_the_names(env: dict[str, str]) -> None:
    done = swarm(env, "retro")
    assert done.returncode == 2
    assert "pi-planning, art-sync, system-demo, inspect-adapt" in done.stderr


def test_nothing_stored_is_exit_4(env: dict[str, str]) -> None:
    done = swarm(env, "inspect-adapt")
    assert done.returncode == 4
    assert "no Inspect & Adapt report is stored yet" in done.stderr
    as_json = swarm(env, "system-demo", "--period", "PI1.I1", "--json")
    assert as_json.returncode == 4
    assert json.loads(as_json.stdout)["exit_code"] == 4


def test_a_bad_period_is_exit_2(env: dict[str, str]) -> None:
    done = swarm(env, "system-demo", "--period", "yesterday")
    assert done.returncode == 2
    assert "not a period" in done.stderr


def test_system_demo_now_in_the_first_iteration_is_exit_2(env: dict[str, str], ledger: Ledger) -> None:
    done = swarm(env, "system-demo", "--now")
    assert done.returncode == 2
    stored = ledger.client.hget(ledger.keys.calendar, "epoch")  # the command stored it
    assert isinstance(stored, str)
    epoch = datetime.fromisoformat(stored)
    first = (epoch + timedelta(hours=1)).isoformat(timespec="seconds")  # the end of PI1.I1
    assert f"System Demo has nothing to report yet: the first one is due at {first}" in done.stderr
    pi_done = swarm(env, "inspect-adapt", "--now")
    assert pi_done.returncode == 2
    assert f"due at {(epoch + timedelta(hours=2)).isoformat(timespec='seconds')}" in pi_done.stderr
    assert not ledger.client.exists(ledger.keys.reports("system-demo"))


def test_now_shows_the_report_another_process_is_writing(env: dict[str, str], ledger: Ledger) -> None:
    """While another writer holds the period's lock, ``--now`` writes nothing itself and shows
    that writer's report once it is stored (it polls for it, or finds it stored on arrival)."""
    seeded = Ledger(
        ledger.client, ledger.settings.model_copy(update={"iteration_length": 3600.0, "pi_iterations": 2})
    )
    chosen = ceremony("art-sync")
    cal = Calendar.load(seeded)  # stores the epoch the command will read
    now = seeded.server_time()
    period = chosen.due(cal, now)
    assert period is not None
    keys = seeded.keys
    seeded.client.set(keys.report_lock(chosen.name, period.key), "another-writer", px=60_000)
    command = subprocess.Popen(
        [sys.executable, "-m", "swarm", "ceremony", chosen.name, "--now", "--json"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    report = chosen.compute(seeded, cal, period, now)  # the other writer finishes its report
    seeded.client.set(keys.report(chosen.name, period.key), report.model_dump_json())
    seeded.client.zadd(keys.reports(chosen.name), {period.key: period.start.timestamp() * 1000})
    seeded.client.delete(keys.report_lock(chosen.name, period.key))
    out, err = command.communicate(timeout=60)
    assert command.returncode == 0, err
    assert out.strip() == report.model_dump_json()
    assert store.periods(chosen, seeded) == [period.key]
