"""A fleet of role workers, beat (and optionally Flower) as child processes: what ``swarm up`` runs.

Each role gets its own ``swarm worker`` process (node ``<role>@<host>``), so every Celery option
and tool still applies. Children run in their own session, so a terminal's Ctrl-C reaches only
the fleet, which stops them warmly (SIGTERM, then SIGKILL after the grace); on Linux they also
die with the fleet's process if it is killed, so nothing is left running. ``spawn`` starts one
child again, which is how ``workers.supervision`` restarts one that exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from swarm.embedded import die_with_parent
from swarm.models import Role

READY_MARK = " ready."  # what a celery worker prints once it consumes
FLOWER_READY_MARK = "Visit me at"  # what Flower prints once it serves
BEAT_READY_MARK = "beat: Starting..."  # it leads once it holds the lock, maybe later (another leads)
START_TIMEOUT_S = 90.0  # cold interpreters importing Celery on a busy 2-core machine
STOP_MARGIN_S = 10.0  # beyond the shutdown grace, before a child is killed

Sink = Callable[[str, str], None]  # (name, line) for each line a child prints


@dataclass
class Child:
    name: str
    argv: list[str]
    ready_mark: str
    env: dict[str, str] = field(default_factory=dict)  # on top of the fleet's
    proc: subprocess.Popen[bytes] | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    tail: list[str] = field(default_factory=list)  # its last lines, for a failure message
    started_at: float = 0.0  # time.monotonic() of its latest start


class Fleet:
    """Starts the children, waits until each is ready, and stops them all on exit."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        sink: Sink | None = None,
        log_dir: Path | None = None,
        grace_seconds: float = 30.0,
        tolerate_exits: bool = False,
    ) -> None:
        self.env = env
        self.tolerate_exits = tolerate_exits  # a child exiting at start is left to a supervisor
        self.sink = sink
        self.log_dir = log_dir
        self.grace_seconds = grace_seconds
        self.children: list[Child] = []

    def add_worker(
        self, role: Role, *, concurrency: int = 1, pool: str = "threads", args: Sequence[str] = ()
    ) -> None:
        argv = [
            sys.executable, "-m", "swarm", "worker", "--role", role.value, "--name", f"{role.value}@%h",
            "-c", str(concurrency), "--pool", pool, *args,
        ]  # fmt: skip
        self.children.append(Child(role.value, argv, READY_MARK))

    def add_beat(self, args: Sequence[str] = ()) -> None:
        argv = [sys.executable, "-m", "swarm", "beat", *args]
        self.children.append(Child("beat", argv, BEAT_READY_MARK))

    def add_flower(self, port: int, address: str | None = None) -> None:
        """``swarm flower``: basic auth from SWARM_FLOWER_BASIC_AUTH, else loopback only (its rules)."""
        argv = [sys.executable, "-m", "swarm", "flower", f"--port={port}"]
        if address is not None:
            argv.append(f"--address={address}")
        self.children.append(Child("flower", argv, FLOWER_READY_MARK))

    def __enter__(self) -> Fleet:
        try:
            self.start(tolerate_exits=self.tolerate_exits)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT_S, *, tolerate_exits: bool = False) -> None:
        """Starts every child and waits until each is ready. A child that exits meanwhile stops
        the start (RuntimeError), unless ``tolerate_exits``: then it is left to the supervisor."""
        for child in self.children:
            self.spawn(child)
        deadline = time.monotonic() + timeout
        for child in self.children:
            while not child.ready.wait(0.1):
                exited = child.proc is None or child.proc.poll() is not None
                if exited and tolerate_exits:
                    break
                if exited or time.monotonic() > deadline:
                    why = "exited" if exited else f"was not ready in {timeout:.0f}s"
                    tail = "\n".join(child.tail[-20:])
                    raise RuntimeError(f"{child.name} {why}:\n{tail}")

    def spawn(self, child: Child) -> None:
        """Starts (or starts again) one child, its output pumped to its log and the sink."""
        child.ready = threading.Event()
        child.started_at = time.monotonic()
        child.proc = subprocess.Popen(  # noqa: S603 - our own commands, argv lists, no shell
            child.argv,
            env={**self.env, **child.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        pump = threading.Thread(target=self._pump, args=(child, child.proc), daemon=True)
        pump.start()

    def _pump(self, child: Child, proc: subprocess.Popen[bytes]) -> None:
        """Copies a child's output to its log file and the sink, watching for its ready line."""
        if proc.stdout is None:
            return
        log: IO[str] | None = None
        if self.log_dir is not None:  # a restarted child's lines follow its earlier ones
            log = (self.log_dir / f"{child.name}.log").open("a", encoding="utf-8")
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                child.tail = [*child.tail[-49:], line]
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                if self.sink is not None:
                    self.sink(child.name, line)
                if child.ready_mark in line and proc is child.proc:  # after its line is shown
                    child.ready.set()
        finally:
            if log is not None:
                log.close()

    def alive(self) -> list[str]:
        return [c.name for c in self.children if c.proc is not None and c.proc.poll() is None]

    def stop(self) -> None:
        """Warm shutdown of every child (SIGTERM), then SIGKILL for any still running after the grace."""
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds + STOP_MARGIN_S
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
