"""``swarm up``: every role's worker as one fleet; Ctrl-C stops them all, and so does killing it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from swarm import Settings, Status, Swarm
from swarm.embedded import free_port

from .polling import wait_until
from .test_logs import json_lines

pytestmark = pytest.mark.integration

START_DEADLINE_S = 90.0  # five cold interpreters importing Celery on a busy 2-core machine


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:  # a zombie has exited too
        return stat.read().split(") ", 1)[1].startswith("Z")


@contextmanager
def swarm_up(redis_url: str, prefix: str, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, "COLUMNS": "200"}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "swarm", "up", "--handlers", "workers.demo", "-c", "1", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: b"Ctrl-C stops them" in log.read_bytes() or proc.poll() is not None,
            "swarm up to be ready",
            START_DEADLINE_S,
        )
        assert proc.poll() is None, log.read_text(errors="replace")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_runs_every_role_and_ctrl_c_stops_them_all(redis_url: str, prefix: str, tmp_path: Path) -> None:
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    log = tmp_path / "up.log"
    with swarm_up(redis_url, prefix, log) as up:
        items = [client.submit("feature", f"for {role}", role=role) for role in ("pm", "qa", "devops")]
        wait_until(lambda: all(client.get(i.id).status is Status.COMPLETED for i in items), "every role")
        agents = {a.id: a for a in client.ledger.agents()}
        workers = {a.node.split("@")[0]: a.pid for a in agents.values()}
        assert set(workers) == {"pm", "architect", "developer", "qa", "devops"}, "a worker per role"
        ran_on = {client.get(i.id).role.value: agents[client.get(i.id).agent_id or ""].node for i in items}
        assert all(node.startswith(f"{role}@") for role, node in ran_on.items()), (
            f"each role ran in its own role-named worker: {ran_on}"
        )
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert up.wait(timeout=60) == 0, log.read_text(errors="replace")
    pids = [pid for pid in workers.values() if pid is not None]
    wait_until(lambda: all(_gone(pid) for pid in pids), "every worker to exit", 10)
    assert "swarm up: stopped" in log.read_text()
    client.close()


def test_killing_up_leaves_no_orphan_workers(redis_url: str, prefix: str, tmp_path: Path) -> None:
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    with swarm_up(redis_url, prefix, tmp_path / "up.log", "--roles", "developer,qa") as up:
        items = [client.submit("feature", f"for {role}", role=role) for role in ("developer", "qa")]
        wait_until(lambda: all(client.get(i.id).status is Status.COMPLETED for i in items), "both roles")
        pids = [a.pid for a in client.ledger.agents() if a.pid is not None]
        assert len(pids) == 2
        up.kill()  # SIGKILL: no chance to stop its children itself
        up.wait()
    wait_until(lambda: all(_gone(pid) for pid in pids), "the workers to die with swarm up", 30)
    client.close()


def test_up_with_flower_shows_the_role_named_workers(redis_url: str, prefix: str, tmp_path: Path) -> None:
    port = free_port()
    args = ("--roles", "developer", "--flower", "--flower-port", str(port))
    with swarm_up(redis_url, prefix, tmp_path / "up.log", *args):
        found: dict[str, object] = {}

        def listed() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/workers?refresh=1", timeout=5) as r:
                    found.update(json.loads(r.read()))
            except OSError:
                return False
            return any(name.startswith("developer@") for name in found)

        wait_until(listed, "Flower to list the developer worker", 60)
    assert any(name.startswith("developer@") for name in found)


def test_up_piped_prints_json_lines_the_url_hint_first_and_a_shared_warning_once(tmp_path: Path) -> None:
    """On the embedded default, piped: every line parses, ``export REDIS_URL=…`` comes before any
    child's line, and a warning every worker gives (running as root, here) is shown once."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SWARM_REDIS_URL")}
    env.pop("SWARM_LOG_FORMAT", None)
    log = tmp_path / "up.log"
    argv = [sys.executable, "-m", "swarm", "up", "--handlers", "workers.demo", "-c", "1"]
    argv += ["--roles", "qa,devops", "--no-beat"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: b"Ctrl-C stops them" in log.read_bytes() or proc.poll() is not None,
            "swarm up to be ready",
            START_DEADLINE_S,
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = json_lines(log)
    hint = next(n for n, line in enumerate(lines) if str(line["event"]).startswith("other shells: export"))
    first_child = next(n for n, line in enumerate(lines) if "process" in line)
    assert hint < first_child, "the hint comes before the children's output"
    assert {line["process"] for line in lines if "process" in line} == {"qa", "devops"}
    for line in lines:
        assert {"event", "level", "logger", "timestamp"} <= set(line), line
    shutdowns = [line["process"] for line in lines if line["event"] == "worker: Warm shutdown (MainProcess)"]
    assert sorted(shutdowns) == ["devops", "qa"], "each worker's shutdown message is a JSON line"
    warnings = [line for line in lines if line["logger"] == "py.warnings"]
    assert len(warnings) == len({w["event"] for w in warnings}), "each warning once"
    if os.geteuid() == 0:
        assert len(warnings) == 1, warnings
        assert "superuser" in warnings[0]["event"], warnings
        assert "\n" not in warnings[0]["event"], "in plain words, on one line"
    assert lines[-1]["event"] == "swarm up: stopped"
