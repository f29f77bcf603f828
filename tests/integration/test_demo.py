"""``swarm demo`` (what ``make demo`` runs) and ``swarm tour`` work on the embedded default."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

DEMO_DEADLINE_S = 300  # the demo's own budget is about two minutes; this only stops a hang


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SWARM_REDIS_URL")}
    env["COLUMNS"] = "200"  # wide enough that Rich does not wrap the report's rows
    return subprocess.run(
        [sys.executable, "-m", "swarm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_DEADLINE_S,
        check=False,
    )


def test_demo_runs_the_backlog_through_every_role_and_reports_it() -> None:
    done = _run("demo")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert "(embedded " in done.stdout
    assert "workers and beat ready: pm, architect, developer, qa, devops, beat" in done.stdout
    assert "6 of 8 items done end to end" in done.stdout
    for role in ("pm", "architect", "developer", "qa", "devops"):
        assert re.search(rf"│ {role}\s+│\s+6 │ \d+\.\d\ds │ \d+\.\d\ds │", done.stdout), role
    assert "velocity (points): platform" not in done.stdout, "failed work earns no velocity"
    assert "velocity (points): web 26" in done.stdout
    assert re.search(r"│ developer │ dead\s+│ 3 ", done.stdout), "the transient failure retried, then dead"
    assert re.search(r"│ qa\s+│ failed │ 0 ", done.stdout), "the permanent failure was not retried"
    # The compressed calendar: PI Planning on the submitted backlog, then beat's ceremonies.
    assert re.search(
        r"│ PI1\s+│ PI Planning\s+│ 8 objectives \(\d+ business value\) from a backlog of 8", done.stdout
    )
    for iteration in ("PI1.I1", "PI1.I2", "PI1.I3"):
        assert re.search(rf"│ {iteration}\s+│ System Demo\s+│ \d+ stages completed", done.stdout), iteration
        assert re.search(rf"│ {iteration}.S1\s+│ ART Sync\s+│", done.stdout), iteration
    # Both failures (the dead transient one and the permanent one) became improvement items.
    assert re.search(
        r"│ PI1\s+│ Inspect & Adapt\s+│ predictability \d+%.*; 2 improvement items filed", done.stdout
    )


def test_tour_walks_through_the_lifecycle_on_the_embedded_default() -> None:
    done = _run("tour")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "(embedded " in done.stdout
    for expected in ("is held by", "progress must be", "is completed", "already completed", "completed"):
        assert expected in done.stdout
