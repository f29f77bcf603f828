"""The chaos test's fleet: real ``swarm worker`` and ``swarm beat`` processes, started, signalled
and replaced by the harness, which records every exit it asked for. Any other exit is an
unrequested one, and the fleet keeps its log tail to explain it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from swarm.models import Role

from ..integration.polling import wait_until

READY_TIMEOUT_S = 120.0  # a dozen cold processes importing Celery at once on a busy 2-core VM
STOP_TIMEOUT_S = 60.0  # warm shutdown: items in hand finish (short demo items) or are released
TAIL_LINES = 6  # last log lines quoted for a process that exited unrequested
TAIL_ERROR_LINES = 6  # and its last error lines
_ERROR_LINE = re.compile(r"\[(error|critical)\s*\]|Unrecoverable|^[\w.]*(Error|Exception)\b|^error:")
_FRAME_LINE = re.compile(r"^\s*[│╭╰|]")  # a frame of a rich or plain traceback
TAIL_LINE_CHARS = 400
WORKER_READY = b" ready."
BEAT_READY = b"beat: Starting..."


@dataclass
class Proc:
    """One process the harness started."""

    name: str
    kind: str  # "worker" or "beat"
    role: Role | None
    pool: str | None
    concurrency: int
    popen: subprocess.Popen[bytes]
    log: Path
    started_at: float
    requested: str | None = None  # what the harness did to end it, e.g. "kill -9"
    exited_at: float | None = None
    ready: bool = False  # its log said so once

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self) -> str:
        """The log's last error lines (not traceback frames), then its last lines."""
        lines = self.log.read_text(errors="replace").splitlines()
        errors = [line for line in lines if _ERROR_LINE.search(line) and not _FRAME_LINE.match(line)]
        errors = list(dict.fromkeys(reversed(errors)))[::-1]  # each once, at its last place
        quoted = [*errors[-TAIL_ERROR_LINES:], "...", *lines[-TAIL_LINES:]] if errors else lines[-TAIL_LINES:]
        return "\n".join(f"    | {line[:TAIL_LINE_CHARS]}" for line in quoted)

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid})"


@dataclass
class Fleet:
    """Starts processes against one Redis and namespace; knows which exits were asked for."""

    redis_url: str
    prefix: str
    directory: Path
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)
    _serial: int = 0

    def _start(
        self,
        name: str,
        kind: str,
        argv: list[str],
        *,
        role: Role | None = None,
        pool: str | None = None,
        c: int = 0,
    ) -> Proc:
        self._serial += 1
        full = f"{name}-{self._serial}"
        log = self.directory / f"{full}.log"
        env = {**os.environ, "REDIS_URL": self.redis_url, "SWARM_KEY_PREFIX": self.prefix, **self.env}
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, "-m", "swarm", *argv], env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        proc = Proc(full, kind, role, pool, c, popen, log, time.time())
        self.procs.append(proc)
        return proc

    def start_worker(self, role: Role, pool: str, concurrency: int) -> Proc:
        name = f"{role.value}-{pool}"
        argv = [
            "worker", "--role", role.value, "--pool", pool, "-c", str(concurrency),
            "--handlers", "workers.demo", "--name", f"{name}-{self._serial + 1}-{self.prefix}@%h",
        ]  # fmt: skip
        return self._start(name, "worker", argv, role=role, pool=pool, c=concurrency)

    def start_beat(self) -> Proc:
        return self._start("beat", "beat", ["beat"])

    def replace(self, proc: Proc) -> Proc:
        """A new process of the same kind, role and pool (the old one is gone or going)."""
        if proc.kind == "beat":
            return self.start_beat()
        assert proc.role is not None
        assert proc.pool is not None
        return self.start_worker(proc.role, proc.pool, proc.concurrency)

    @staticmethod
    def is_ready(proc: Proc) -> bool:
        """Started and serving: a worker consuming, a beat leading or waiting for the lock."""
        if not proc.ready:
            proc.ready = (WORKER_READY if proc.kind == "worker" else BEAT_READY) in proc.log.read_bytes()
        return proc.ready and proc.alive

    def wait_ready(self, procs: Iterable[Proc]) -> None:
        waiting = list(procs)
        ready = self.is_ready

        wait_until(
            lambda: all(ready(p) or not p.alive for p in waiting),
            "the fleet to start",
            READY_TIMEOUT_S,
            explain=lambda: "\n".join(f"{p.describe()}:\n{p.tail()}" for p in waiting if not ready(p)),
        )
        dead = [p for p in waiting if not p.alive]
        assert not dead, "exited while starting:\n" + "\n".join(f"{p.describe()}:\n{p.tail()}" for p in dead)

    def live(self, kind: str | None = None) -> list[Proc]:
        return [p for p in self.procs if p.alive and p.requested is None and (kind is None or p.kind == kind)]

    def signal(self, proc: Proc, sig: signal.Signals, why: str) -> None:
        """Sends ``sig`` to ``proc``, recording that the harness asked for its exit."""
        proc.requested = why
        os.kill(proc.pid, sig)

    def newly_exited(self) -> list[Proc]:
        """Processes whose exit was not seen before, stamped with when it was seen."""
        found = []
        for proc in self.procs:
            if proc.exited_at is None and not proc.alive:
                proc.exited_at = time.time()
                found.append(proc)
        return found

    def unrequested(self) -> list[Proc]:
        return [p for p in self.procs if p.exited_at is not None and p.requested is None]

    def stop_all(self) -> None:
        """SIGTERM to every live process at once, then waits; SIGKILL to any that outstay."""
        running = [p for p in self.procs if p.alive]
        for proc in running:
            if proc.requested is None:
                proc.requested = "teardown SIGTERM"
            proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in running:
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``, from /proc (a prefork worker's pool)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)
