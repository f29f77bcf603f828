"""Logs of a real worker: JSON lines that name the item, its agent and role, and its trace."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from swarm.ledger import Ledger
from swarm.models import Status

from .otlp_collector import running_collector, tracing_env
from .polling import wait_until
from .test_tracing import submit_cli
from .workers_harness import running_worker

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
_OUTCOME = re.compile(r"Task swarm\.execute\[[^\]]+\] succeeded in \S+: '(\w+)'")


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log, each parsed as one JSON object (fails on any other line)."""
    lines = log.read_text(errors="replace").splitlines()
    parsed = []
    for line in lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


def test_a_json_worker_log_names_the_item_agent_role_and_trace(
    redis_url: str, prefix: str, ledger: Ledger, tmp_path: Path
) -> None:
    log = tmp_path / "dev.log"
    with running_collector() as collector:
        env = {**tracing_env(collector), "SWARM_LOG_FORMAT": "json"}
        with running_worker(redis_url, prefix, "developer", log, "-c", "2", env=env):
            submitted = submit_cli(
                redis_url,
                prefix,
                env,
                "feature",
                "logged",
                "--role",
                "developer",
                "--payload",
                '{"duration_s": 0.2}',
            )
            wait_until(lambda: ledger.get(submitted.id).status is Status.COMPLETED, "the item to complete")
            wait_until(
                lambda: any(_OUTCOME.search(str(line.get("event"))) for line in json_lines(log)),
                "Celery's outcome line",
                DEADLINE_S,
                explain=lambda: log.read_text(errors="replace"),
            )
            lines = json_lines(log)  # read while the worker runs: every line so far is JSON
            wait_until(
                lambda: (
                    {s.name for s in collector.spans}
                    >= {"swarm.claim", "swarm.complete", "run/swarm.execute"}
                ),
                "the worker's spans",
                DEADLINE_S,
            )
    item = ledger.get(submitted.id)
    assert any(line.get("event", "").endswith(" ready.") for line in lines), "Celery's own lines are JSON too"
    about = [line for line in lines if line.get("work_id") == item.id]
    events = [line["event"] for line in about]
    assert "finished" in events, events
    assert any(_OUTCOME.search(e) for e in events), "Celery's outcome line names the item"
    worker_spans = {s.span_id for s in collector.spans if s.trace_id == item.trace_id}
    for line in about:
        assert line["agent_id"] == item.agent_id, line
        assert line["role"] == "developer", line
        assert line["trace_id"] == item.trace_id, line
        assert line["span_id"] in worker_spans, f"a span of the item's trace: {line}"
    for line in lines:
        assert {"event", "level", "logger", "timestamp"} <= set(line), line


class Terminal:
    """A command on a pseudo-terminal of its own (its stdout and stderr are a tty): what a
    person running it in a terminal sees."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the command
            os.execve(argv[0], argv, env)  # noqa: S606 - the test's own command, an argv list
        self.output = b""
        self.status: int | None = None

    def _drain(self) -> None:
        while select.select([self.fd], [], [], 0)[0]:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # the command exited: the pty is closed
                return
            if not chunk:
                return
            self.output += chunk

    def read_until(self, marker: bytes, deadline_s: float = DEADLINE_S) -> None:
        """Reads what the command prints until ``marker`` is in it."""

        def arrived() -> bool:
            self._drain()
            return marker in self.output

        wait_until(arrived, f"{marker!r} on the terminal", deadline_s, explain=self.text)

    def text(self) -> str:
        """What it printed, without the colours."""
        return re.sub(r"\x1b\[[0-9;]*m", "", self.output.decode("utf-8", "replace"))

    def stop(self) -> int:
        """SIGTERM; reads the rest of its output until it exits; its exit code."""
        os.kill(self.pid, signal.SIGTERM)

        def exited() -> bool:
            self._drain()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
            return self.status is not None

        wait_until(exited, "the command to exit", DEADLINE_S, explain=self.text)
        self._drain()
        os.close(self.fd)
        assert self.status is not None
        return self.status


def test_a_worker_on_a_terminal_logs_console_lines(redis_url: str, prefix: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "OTEL_"))},
        "REDIS_URL": redis_url,
        "SWARM_KEY_PREFIX": prefix,
        "COLUMNS": "120",
    }
    argv = [sys.executable, "-m", "swarm", "worker", "--role", "qa", "--handlers", "workers.demo"]
    argv += ["--name", f"tty-{prefix}@%h"]
    terminal = Terminal(argv, env)
    try:
        terminal.read_until(b" ready.")
    finally:
        code = terminal.stop()
    lines = terminal.text().splitlines()
    ready = next(line for line in lines if " ready." in line)
    assert "[info" in ready, ready
    assert "celery.apps.worker" in ready, ready
    assert not any(line.lstrip().startswith('{"') for line in lines), "no JSON on a terminal"
    assert any("Warm shutdown" in line for line in lines)
    assert code == 0, terminal.text()
