"""The timed part of ``bench_workers.py``: one run's context, a batch sent and waited for, the table.

A *leg* sends a batch of items from this process and polls Redis until the worker has done them
all, timing first send to last completion and reading the CPU both sides used meanwhile.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis
from celery import Celery
from noop_app import NOOP_TASK
from worker_procs import tree_cpu

from swarm import Swarm
from swarm.models import Status
from swarm.settings import DEFAULT_EVENTS_MAX_LEN, Settings

STALL_S = 60.0  # no progress for this long means something is broken
MB = 1024 * 1024
WORK_TYPE = "bench"


@dataclass
class Run:
    """One bench run: where, its key prefix, its logs, and what it found."""

    url: str
    client: redis.Redis
    prefix: str
    log_dir: Path
    poll: float
    log: Callable[[str], None]
    rows: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def settings(self, name: str, events_max_len: int = DEFAULT_EVENTS_MAX_LEN) -> Settings:
        return Settings(key_prefix=f"{self.prefix}-{name}", redis_url=None, events_max_len=events_max_len)

    def row(self, figure: str, *cells: str, ok: bool | None = None) -> None:
        """One table row: value, baseline, ratio, target (any left out are blank) and the verdict."""
        value, base, ratio, target = (*cells, "", "", "", "")[:4]
        self.rows.append(
            (figure, value, base, ratio, target, "" if ok is None else ("PASS" if ok else "MISS"))
        )


def wait_count(
    read: Callable[[], int], target: int, *, poll: float, what: str, on_poll: Callable[[], None] | None = None
) -> float:
    """Polls ``read()`` every ``poll`` seconds until it reaches ``target``; returns that moment."""
    last, changed = read(), time.monotonic()
    while last < target:
        time.sleep(poll)
        if on_poll is not None:
            on_poll()
        now = read()
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed > STALL_S:
            raise RuntimeError(f"{what}: stuck at {last:,}/{target:,} for {STALL_S:.0f}s")
    return time.perf_counter()


def swarm_done(sw: Swarm) -> Callable[[], int]:
    """Completed items in the ledger; a failed or dead item stops the bench."""

    def read() -> int:
        counts = sw.ledger.counts()
        bad = counts[Status.FAILED] + counts[Status.DEAD]
        if bad:
            raise RuntimeError(f"{bad} item(s) failed or dead in {sw.settings.key_prefix}: {counts}")
        return counts[Status.COMPLETED]

    return read


@dataclass
class Leg:
    """One timed batch: seconds to send it, to its last completion, and the CPU each side used."""

    items: int
    send_s: float
    total_s: float
    send_cpu_s: float  # the bench process while sending (the producer's cost)
    worker_cpu_s: float  # the worker's process tree from the first send to the last completion

    @property
    def rate(self) -> float:
        return self.items / self.total_s

    @property
    def send_rate(self) -> float:
        return self.items / self.send_s

    @property
    def worker_cpu_ms(self) -> float:
        return self.worker_cpu_s * 1000 / self.items

    @property
    def send_cpu_ms(self) -> float:
        return self.send_cpu_s * 1000 / self.items


def timed_leg(
    run: Run,
    items: int,
    send: Callable[[], object],
    read: Callable[[], int],
    worker_pid: int,
    *,
    what: str,
    on_poll: Callable[[], None] | None = None,
) -> Leg:
    """Sends ``items`` messages, then polls ``read`` until it has grown by ``items``."""
    target = read() + items
    gc.collect()
    cpu0 = tree_cpu(worker_pid)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(items):
        send()
    sent, c1 = time.perf_counter(), time.process_time()
    done = wait_count(read, target, poll=run.poll, what=what, on_poll=on_poll)
    return Leg(items, sent - t0, done - t0, c1 - c0, tree_cpu(worker_pid) - cpu0)


def swarm_leg(
    run: Run, sw: Swarm, worker_pid: int, items: int, *, on_poll: Callable[[], None] | None = None
) -> Leg:
    """``items`` through ``Swarm.submit`` (demo handler, no work), to their completion in the ledger."""
    submit = partial(sw.submit, WORK_TYPE, "x", role="developer")
    return timed_leg(run, items, submit, swarm_done(sw), worker_pid, what="swarm worker", on_poll=on_poll)


def plain_leg(
    run: Run,
    app: Celery,
    queue: str,
    worker_pid: int,
    items: int,
    *,
    on_poll: Callable[[], None] | None = None,
) -> Leg:
    """``items`` no-op tasks through ``send_task``, to the last ``INCR`` of the round's counter."""
    counter = "{" + queue + "}:done"
    client = run.client

    def read() -> int:
        return int(client.get(counter) or 0)

    send = partial(app.send_task, NOOP_TASK, args=[counter], queue=queue)
    return timed_leg(run, items, send, read, worker_pid, what="plain Celery worker", on_poll=on_poll)


def table(run: Run) -> str:
    header = ("figure", "value", "baseline", "ratio", "target", "result")
    rows = run.rows
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    misses = [r[0].strip() for r in rows if r[5] == "MISS"]
    verdict = "ALL TARGETS MET" if not misses else "MISS: " + "; ".join(misses)
    return "\n".join(["", *lines, "", *run.notes, verdict])
