"""What the CLI loads (issue 11): an agent's shell starts ``swarm`` for every claim, progress and
completion, so ``--help`` and the ledger commands import neither Celery, Kombu, OpenTelemetry's
SDK, structlog, the workers nor the ceremonies (the time is bench/bench_cli_startup.py's).

Each command runs in a fresh interpreter that calls the CLI's ``main`` and then reports the
modules loaded. redis-py 8 itself imports OpenTelemetry's API and metrics SDK; the tracing SDK
is what ``swarm.tracing`` would install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarm.ledger import Ledger

pytestmark = pytest.mark.integration

# Runs `swarm ARGS` in this interpreter, then writes its exit code and loaded modules to OUT.
RUNNER = """
import json, sys
out, args = sys.argv[1], sys.argv[2:]
sys.argv = ["swarm", *args]
from swarm.cli import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
with open(out, "w", encoding="utf-8") as f:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, f)
"""

NEVER = (
    "celery",
    "kombu",
    "flower",
    "prometheus_client",
    "structlog",
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
    "swarm.tracing",
    "swarm.celery_app",
    "swarm.dispatch",
    "workers",
    "ceremonies",
)
AGENT = "agent-imports"


def loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def run_cli(args: list[str], env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(out), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert report["exit"] in (0, None), (args, done.stdout, done.stderr)
    return report


@pytest.fixture
def env(redis_url: str, prefix: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, "SWARM_AGENT_ID": AGENT}


def test_help_imports_no_command_s_dependencies(env: dict[str, str], tmp_path: Path) -> None:
    report = run_cli(["--help"], env, tmp_path)
    assert loaded(report["modules"], (*NEVER, "redis", "pydantic", "rich", "swarm.ledger")) == []


@pytest.mark.parametrize("command", ["show", "claim", "progress", "complete"])
def test_a_ledger_command_imports_neither_celery_tracing_nor_the_upper_layers(
    command: str, ledger: Ledger, env: dict[str, str], tmp_path: Path
) -> None:
    pending = ledger.submit("feature", "to claim", dispatch=False)
    held = ledger.submit("feature", "held", dispatch=False, claim_for=AGENT)
    args = {
        "show": ["show", held.id],
        "claim": ["claim", pending.id],
        "progress": ["progress", held.id, "50", "half way"],
        "complete": ["complete", held.id],
    }[command]
    report = run_cli(args, env, tmp_path)
    assert loaded(report["modules"], NEVER) == []
    if command != "show":  # a one-line reply is printed without Rich
        assert loaded(report["modules"], ("rich",)) == []
    assert "swarm.ledger" in report["modules"]  # it did run against the ledger
    after = ledger.get(held.id if command != "claim" else pending.id)
    assert after.agent_id == AGENT


def test_a_submit_that_sends_no_message_imports_no_celery(env: dict[str, str], tmp_path: Path) -> None:
    """Celery loads with the first message sent (swarm/dispatch.py); --claim sends none."""
    report = run_cli(["submit", "feature", "claimed at once", "--claim"], env, tmp_path)
    assert loaded(report["modules"], ("celery", "kombu", "swarm.celery_app")) == []
