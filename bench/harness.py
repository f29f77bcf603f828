"""The bench's harness: timing, percentiles, interleaving, fast fills, and its own key namespaces.

Nothing here knows which operations are being compared; ``bench_ledger.py`` supplies those.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from swarm.keys import Keys
from swarm.ledger import Ledger
from swarm.scripts import Scripts
from swarm.settings import Settings

WORK_TYPE = "bench"

FILL_BATCH = 1000  # submit scripts per pipeline round trip while filling
DELETE_BATCH = 500  # keys per DEL while cleaning up


# -- measurements -----------------------------------------------------------------------------


Op = Callable[[], object]


def delete_matching(client: redis.Redis, patterns: Sequence[str]) -> int:
    """Deletes every key matching one of ``patterns`` (SCAN, never KEYS)."""
    deleted = 0
    for pattern in patterns:
        batch: list[bytes | str] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
    return deleted


@dataclass
class Sample:
    """Timed operations, possibly over many chunks: per-op latencies, wall and CPU time (ns)."""

    latencies_ns: list[int] = field(default_factory=list)
    elapsed_ns: int = 0  # wall time of the timed chunks, back to back
    cpu_ns: int = 0  # this thread's CPU time over the same chunks: the client-side cost
    units: int = 0  # operations (or items, for the lifecycle) completed

    def run(self, ops: Sequence[Op]) -> None:
        """Runs each op once, timing each and the chunk as a whole (GC runs as usual)."""
        clock, cpu = time.perf_counter_ns, time.thread_time_ns
        lat = self.latencies_ns
        cpu0 = cpu()
        start = clock()
        for op in ops:
            t0 = clock()
            op()
            lat.append(clock() - t0)
        self.elapsed_ns += clock() - start
        self.cpu_ns += cpu() - cpu0
        self.units += len(ops)

    @property
    def rate(self) -> float:
        return self.units / (self.elapsed_ns / 1e9)

    def percentile_ms(self, pct: float) -> float:
        return percentile(self.latencies_ns, pct) / 1e6

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_ns) / 1e6

    @property
    def cpu_per_unit_ms(self) -> float:
        return self.cpu_ns / self.units / 1e6


def percentile(values: Sequence[int], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def median_index(values: Sequence[float]) -> int:
    """Index of the median value (the lower middle for an even count)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(order) - 1) // 2]


def rotate(items: list[str], by: int) -> list[str]:
    by %= len(items)
    return items[by:] + items[:by]


def interleave(
    ops: Mapping[str, Sequence[Op]], step: Mapping[str, int], *, turn: int = 0
) -> dict[str, Sample]:
    """Times every contender's ops, the contenders taking turns in chunks of ``step[name]`` ops.

    The order rotates from chunk to chunk (starting ``turn`` places along), so drift in the
    machine's speed hits all contenders alike. Returns one sample per contender.
    """
    names = list(ops)
    samples = {name: Sample() for name in names}
    gc.collect()
    k = 0
    while any(samples[name].units < len(ops[name]) for name in names):
        for name in rotate(names, k + turn):
            done = samples[name].units
            samples[name].run(ops[name][done : done + step[name]])
        k += 1
    return samples


# -- filling a ledger fast ----------------------------------------------------------------------


class _Captured(Exception):
    """A control-flow signal carrying the arguments a script would have been called with."""

    def __init__(self, args: tuple[str | int, ...]) -> None:
        super().__init__("captured")
        self.script_args = args


class _ArgvCapture(Ledger):
    """A ledger whose ``submit`` builds (and validates) its script arguments without running them.

    The fill then sends those arguments through a pipeline, many per round trip. If the ledger's
    plumbing changes so that nothing is captured, ``submit`` simply runs for real (slower).
    """

    def _call(self, script: str, *args: str | int, agent: str | None = None) -> list[Any]:
        raise _Captured(args)


def fill(ledger: Ledger, count: int, *, note: str = "") -> list[str]:
    """Submits ``count`` pending items quickly (pipelined submit scripts); untimed. Returns ids."""
    client = ledger.client
    capture = _ArgvCapture(client, ledger.settings)
    submit = Scripts(client)["submit"]
    keys = list(ledger.keys.script_keys())
    common = ledger.common_argv
    ids: list[str] = []
    done = 0
    while done < count:
        size = min(FILL_BATCH, count - done)
        pipe = client.pipeline(transaction=False)
        queued = 0
        for _ in range(size):
            try:
                item = capture.submit(WORK_TYPE, note, payload={"n": done})
            except _Captured as captured:
                submit(keys, [*common, *captured.script_args], client=pipe)
                queued += 1
            else:
                ids.append(item.id)
        if queued:
            for reply in pipe.execute():
                if not isinstance(reply, list) or reply[0] != "ok":
                    raise RuntimeError(f"the bench's pipelined submit was refused: {reply!r}")
                flat = reply[1]
                ids.append(dict(zip(flat[::2], flat[1::2], strict=True))["id"])
        done += size
    return ids


# -- namespaces and cleanup ---------------------------------------------------------------------


@dataclass
class Namespace:
    """A ledger on its own key prefix, and how to delete everything under it."""

    ledger: Ledger
    prefix: str

    @property
    def pattern(self) -> str:
        return Keys(self.prefix).tag + "*"

    def drop(self) -> int:
        return delete_matching(self.ledger.client, [self.pattern])


class Harness:
    """One bench run: its Redis client, its log, and every namespace it made (to delete them)."""

    def __init__(self, client: redis.Redis, run_prefix: str, *, log: Callable[[str], None]) -> None:
        self.client = client
        self.run_prefix = run_prefix
        self.log = log
        self.namespaces: list[Namespace] = []

    def namespace(self, name: str) -> Namespace:
        prefix = f"{self.run_prefix}-{name}"
        ns = Namespace(Ledger(self.client, Settings(key_prefix=prefix, redis_url=None)), prefix)
        self.namespaces.append(ns)
        return ns

    def cleanup(self) -> int:
        return sum(ns.drop() for ns in self.namespaces)
