"""The shell and claude executors on a real ``swarm worker``, with the fake ``claude`` on PATH.

One worker serves the whole module (starting one takes seconds); each test submits its own
work type, which a handler module written into a temporary directory maps to an executor.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from swarm import Settings, Status, Swarm, WorkItem

from .polling import wait_until
from .workers_harness import running_worker

pytestmark = pytest.mark.integration

FAKES = Path(__file__).resolve().parents[1] / "fakes"
MAX_ATTEMPTS = 2  # tries per item: a transient failure goes dead on its second
DEADLINE_S = 30.0  # per item; the slowest (two 1 s timeouts and a 1 s backoff) takes about 4 s

HANDLERS = """
import sys

import swarm
from swarm import claude, shell

ECHO = (
    "import json, sys; item = json.load(sys.stdin); "
    "print(json.dumps({'id': item['id'], 'description': item['description'], 'n': item['payload']['n']}))"
)


def fail_with(code):
    return shell([sys.executable, "-c", f"import sys; print('no good', file=sys.stderr); sys.exit({code})"])


on = dict(role="developer")
swarm.handler("ask", **on)(claude("Do {type} {id}: {description}"))
swarm.handler("ask_malformed", **on)(claude("x", env={"FAKE_CLAUDE_MODE": "malformed"}))
swarm.handler("ask_slow", **on)(claude("x", timeout=1, env={"FAKE_CLAUDE_MODE": "sleep"}))
swarm.handler("ask_costly", **on)(claude("x", budget_usd=0.1, env={"FAKE_CLAUDE_MODE": "costly"}))
swarm.handler("echo", **on)(shell([sys.executable, "-c", ECHO]))
swarm.handler("exit_3", **on)(fail_with(3))
swarm.handler("exit_65", **on)(fail_with(65))
"""


@pytest.fixture(scope="module")
def client(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    """A submitting client, with one developer worker that runs the executors."""
    prefix = "t" + uuid.uuid4().hex[:12]
    home = tmp_path_factory.mktemp("executors")
    (home / "executor_handlers.py").write_text(HANDLERS)
    env = {
        "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(home), os.environ.get("PYTHONPATH")])),
        "SWARM_HANDLER_MODULES": "executor_handlers",
        "SWARM_LEASE_SECONDS": "2",
        "FAKE_CLAUDE_MODE": "ok",
    }
    settings = Settings(key_prefix=prefix, redis_url=None, max_attempts=MAX_ATTEMPTS)
    swarm = Swarm(redis_url, agent_id="pm-1", settings=settings)
    try:
        with running_worker(redis_url, prefix, "developer", home / "dev.log", "-c", "4", env=env):
            yield swarm
    finally:
        swarm.close()
        _drop(redis_url, prefix)


def _drop(redis_url: str, prefix: str) -> None:
    with contextlib.closing(redis.Redis.from_url(redis_url)) as raw:
        keys = list(raw.scan_iter(match="{" + prefix + "}*", count=1000))
        if keys:
            raw.delete(*keys)


def finished(client: Swarm, type: str, description: str = "", **payload: object) -> WorkItem:
    item = client.submit(type, description, role="developer", payload=dict(payload))
    wait_until(lambda: client.get(item.id).status.terminal, f"{type} to finish", DEADLINE_S)
    return client.get(item.id)


def test_a_claude_run_completes_with_its_result_and_cost_on_the_item(client: Swarm) -> None:
    done = finished(client, "ask", "add {braces} and 'quotes'")
    assert done.status is Status.COMPLETED, done.error
    assert done.result == f"Do ask {done.id}: add {{braces}} and 'quotes'"
    record = done.artifacts["claude"]
    assert record["result"] == done.result
    assert (record["cost_usd"], record["total_cost_usd"], record["num_turns"]) == (0.0123, 0.0123, 3)
    assert record["session_id"]


def test_malformed_claude_output_is_retried_then_dead(client: Swarm) -> None:
    done = finished(client, "ask_malformed")
    assert done.status is Status.DEAD
    assert done.attempts == MAX_ATTEMPTS
    assert done.error is not None
    assert done.error.startswith("transient: claude output is not a result envelope")
    assert "stderr: fake: something went wrong" in done.error


def test_a_claude_run_past_its_timeout_is_killed_and_retried_then_dead(client: Swarm) -> None:
    done = finished(client, "ask_slow")
    assert done.status is Status.DEAD
    assert done.attempts == MAX_ATTEMPTS
    assert done.error == "transient: claude timed out after 1s"


def test_a_claude_run_over_budget_fails_for_good(client: Swarm) -> None:
    done = finished(client, "ask_costly")
    assert done.status is Status.FAILED
    assert done.attempts == 0, "not retried"
    assert done.error is not None
    assert done.error.startswith("permanent: budget exceeded: this run cost $0.5000")


def test_a_shell_command_reads_the_item_on_stdin(client: Swarm) -> None:
    nasty = '$(touch /tmp/pwned) `id`; echo hi | cat > x\n"quoted" 🐝'
    done = finished(client, "echo", nasty, n=7)
    assert done.status is Status.COMPLETED, done.error
    assert done.result == {"id": done.id, "description": nasty, "n": 7}
    assert done.artifacts["shell"]["exit_code"] == 0
    assert done.artifacts["shell"]["argv"][0] == sys.executable


def test_a_failing_shell_command_is_retried_then_dead(client: Swarm) -> None:
    done = finished(client, "exit_3")
    assert done.status is Status.DEAD
    assert done.attempts == MAX_ATTEMPTS
    assert done.error == f"transient: {sys.executable} failed: exit code 3; stderr: no good"


def test_a_shell_command_exiting_with_a_sysexits_code_fails_for_good(client: Swarm) -> None:
    done = finished(client, "exit_65")
    assert done.status is Status.FAILED
    assert done.attempts == 0
    assert done.error == f"permanent: {sys.executable} failed: exit code 65; stderr: no good"
