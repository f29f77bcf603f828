"""Ledger benchmarks (SPEC §12): claim, full lifecycle, and cost as the ledger grows.

Run from the project root::

    .venv/bin/python bench/bench_ledger.py [--redis-url URL] [--n N] [--json] [--profile]

Every figure is measured in the same run, against the same Redis, as its baseline: a raw
redis-py ``SET key val NX PX 30000`` on one decoding connection (the kind of client the
ledger uses). After a warm-up, each comparison runs several rounds, and within a round the
contenders take turns in small chunks (the order rotating), so drift in the machine's speed
hits them alike; the median round is reported, because this is meant to run on small, noisy
VMs. The script exits 0 whatever the figures: it measures,
it does not judge; a target that is not met is printed as MISS.

It writes only under its own key prefixes and deletes those keys when it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import math
import os
import pstats
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis

# Runnable as a plain script from anywhere: make the project importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swarm.connection import client_from_url, redact
from swarm.embedded import embedded_redis
from swarm.keys import Keys
from swarm.ledger import Ledger
from swarm.models import Status
from swarm.scripts import Scripts
from swarm.settings import Settings

LOCAL_REDIS = "redis://127.0.0.1:6379/0"
AGENT = "bench-agent"
WORK_TYPE = "bench"
BASELINE_PX = 30_000

CLAIM_RATIO_TARGET = 0.8  # claims/s >= 0.8 x raw SET NX PX ops/s
CLAIM_P99_TARGET_MS = 2.0
LIFECYCLE_RATIO_TARGET = 0.25  # items/s >= 0.25 x raw SET NX PX ops/s
GROWTH_RATIO_TARGET = 1.2  # claim p50 at 100k items <= 1.2 x at 1k

FILL_BATCH = 1000  # submit scripts per pipeline round trip while filling
DELETE_BATCH = 500  # keys per DEL while cleaning up


# -- measurements -----------------------------------------------------------------------------


Op = Callable[[], object]


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


# -- the ledgers under test ---------------------------------------------------------------------


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
    cap = str(ledger.settings.events_max_len)
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
                submit(keys, [cap, *captured.script_args], client=pipe)
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


@dataclass
class Namespace:
    """A ledger on its own key prefix, and how to delete everything under it."""

    ledger: Ledger
    prefix: str

    @property
    def pattern(self) -> str:
        return Keys(self.prefix).tag + "*"

    def drop(self) -> int:
        client = self.ledger.client
        deleted = 0
        batch: list[str] = []
        for key in client.scan_iter(match=self.pattern, count=1000):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                deleted += int(client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(client.delete(*batch))
        return deleted


class Bench:
    def __init__(self, client: redis.Redis, run_prefix: str, *, log: Callable[[str], None]) -> None:
        self.client = client
        self.run_prefix = run_prefix
        self.log = log
        self.namespaces: list[Namespace] = []
        self._baseline_seq = 0

    def namespace(self, name: str) -> Namespace:
        prefix = f"{self.run_prefix}-{name}"
        ns = Namespace(Ledger(self.client, Settings(key_prefix=prefix, redis_url=None)), prefix)
        self.namespaces.append(ns)
        return ns

    def cleanup(self) -> int:
        return sum(ns.drop() for ns in self.namespaces)

    # -- the contenders ---------------------------------------------------------------------

    def baseline_ops(self, ns: Namespace, n: int) -> list[Op]:
        """Raw ``SET key val NX PX 30000``, sequential, one connection; fresh keys so NX succeeds."""
        tag = Keys(ns.prefix).tag
        keys = [f"{tag}:bench:set:{self._baseline_seq + i}" for i in range(n)]
        self._baseline_seq += n
        setter = self.client.set
        return [partial(setter, k, AGENT, nx=True, px=BASELINE_PX) for k in keys]

    @staticmethod
    def claim_ops(ns: Namespace, ids: Sequence[str]) -> list[Op]:
        claim = ns.ledger.claim
        return [partial(claim, w, AGENT) for w in ids]

    def floor_ops(self, ns: Namespace, n: int) -> list[Op]:
        """EVALSHA of ``return 1`` with the claim's KEYS and ARGV: the cheapest call shaped like a claim."""
        script = self.client.register_script("return 1")
        keys = list(ns.ledger.keys.script_keys())
        args: list[str | int] = [str(ns.ledger.settings.events_max_len), "work_floor", AGENT, BASELINE_PX]
        return [partial(script, keys, args) for _ in range(n)]

    def bare_claim_ops(self, ns: Namespace, n: int) -> list[Op]:
        """A Lua script doing only ``SET NX PX`` + ``INCR``: the claim primitive with no item,
        registries, stream or reply; what a one-script claim costs before it records anything."""
        script = self.client.register_script(BARE_CLAIM_LUA)
        tag = Keys(ns.prefix).tag
        start = self._baseline_seq
        self._baseline_seq += n
        return [
            partial(script, [f"{tag}:bench:bare:{start + i}", f"{tag}:bench:fence"], [AGENT, BASELINE_PX])
            for i in range(n)
        ]

    @staticmethod
    def lifecycle_ops(ns: Namespace, n: int) -> list[Op]:
        """submit + claim + progress + complete, per item; one op is one item."""
        ledger = ns.ledger

        def one() -> None:
            item = ledger.submit(WORK_TYPE, "lifecycle")
            held = ledger.claim(item.id, AGENT)
            ledger.progress(item.id, AGENT, 50, "half way", fence=held.fence)
            ledger.complete(item.id, AGENT, fence=held.fence, result={"ok": True})

        return [one] * n


# The claim primitive alone, for the floor figure: no item, registries, stream or reply.
BARE_CLAIM_LUA = (
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('INCR', KEYS[2]) end "
    "return 0"
)


# -- the benchmarks -----------------------------------------------------------------------------


@dataclass
class Round:
    baseline_ops_s: float
    baseline_p50_ms: float
    baseline_p99_ms: float
    value: float  # the contender's rate (claims/s or items/s)
    p50_ms: float
    p99_ms: float
    mean_ms: float
    baseline_cpu_ms: float  # client CPU per baseline op
    cpu_ms: float  # client CPU per claim (or per lifecycle item)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_ops_s


@dataclass
class GrowthRound:
    small_p50_ms: float
    large_p50_ms: float
    small_mean_ms: float
    large_mean_ms: float

    @property
    def ratio(self) -> float:
        return self.large_p50_ms / self.small_p50_ms

    @property
    def mean_ratio(self) -> float:
        return self.large_mean_ms / self.small_mean_ms


@dataclass
class Results:
    redis_url: str
    redis_kind: str
    redis_version: str
    n: int
    rounds: int
    claim_rounds: list[Round] = field(default_factory=list)
    lifecycle_rounds: list[Round] = field(default_factory=list)
    floor_rounds: list[Round] = field(default_factory=list)
    bare_rounds: list[Round] = field(default_factory=list)
    growth_rounds: list[GrowthRound] = field(default_factory=list)
    growth_small: int = 0
    growth_large: int = 0
    growth_samples: int = 0
    fill_seconds: float = 0.0
    total_seconds: float = 0.0
    deleted_keys: int = 0


def round_of(base: Sample, ours: Sample) -> Round:
    return Round(
        baseline_ops_s=base.rate,
        baseline_p50_ms=base.percentile_ms(50),
        baseline_p99_ms=base.percentile_ms(99),
        value=ours.rate,
        p50_ms=ours.percentile_ms(50),
        p99_ms=ours.percentile_ms(99),
        mean_ms=ours.mean_ms,
        baseline_cpu_ms=base.cpu_per_unit_ms,
        cpu_ms=ours.cpu_per_unit_ms,
    )


def run_throughput(bench: Bench, results: Results, n: int, rounds: int, chunk: int) -> None:
    """Baseline, claim and lifecycle, finely interleaved.

    Each round times ``n`` SETs, ``n`` claims and ``n // 4`` lifecycle items (as many round trips
    as the others), in chunks of ``chunk`` ops (``chunk // 4`` items) that take turns, the order
    rotating from chunk to chunk, so drift in the VM's speed hits all three alike.
    """
    ns = bench.namespace("main")
    names = ["baseline", "claim", "lifecycle", "floor", "bare"]
    items = max(1, n // 4)
    warm = max(200, n // 5)
    bench.log(f"warm-up ({warm} SETs and claims, {warm // 4} lifecycle items)")
    for warm_ops in (
        bench.baseline_ops(ns, warm),
        bench.claim_ops(ns, fill(ns.ledger, warm)),
        bench.lifecycle_ops(ns, warm // 4),
    ):
        Sample().run(warm_ops)
    for r in range(rounds):
        ids = fill(ns.ledger, n)  # the items this round claims, submitted outside the timed part
        ops = {
            "baseline": bench.baseline_ops(ns, n),
            "claim": bench.claim_ops(ns, ids),
            "lifecycle": bench.lifecycle_ops(ns, items),
            "floor": bench.floor_ops(ns, n),
            "bare": bench.bare_claim_ops(ns, n),
        }
        step = {name: chunk for name in names} | {"lifecycle": max(1, chunk // 4)}
        samples = {name: Sample() for name in names}
        gc.collect()
        k = 0
        while any(samples[name].units < len(ops[name]) for name in names):
            for name in rotate(names, k + r):
                done = samples[name].units
                samples[name].run(ops[name][done : done + step[name]])
            k += 1
        base = samples["baseline"]
        results.claim_rounds.append(round_of(base, samples["claim"]))
        results.lifecycle_rounds.append(round_of(base, samples["lifecycle"]))
        results.floor_rounds.append(round_of(base, samples["floor"]))
        results.bare_rounds.append(round_of(base, samples["bare"]))
        c, lc = results.claim_rounds[-1], results.lifecycle_rounds[-1]
        bench.log(
            f"round {r + 1}/{rounds}: SET NX {base.rate:,.0f} ops/s, claim {c.value:,.0f}/s "
            f"(x{c.ratio:.2f}), lifecycle {lc.value:,.0f} items/s (x{lc.ratio:.3f})"
        )


def run_growth(
    bench: Bench, results: Results, *, small: int, large: int, per_round: int, rounds: int
) -> None:
    """Claim latency in a ledger of ``small`` items vs one of ``large``, claims alternating.

    Both ledgers live side by side in the same Redis; each round claims ``per_round`` random
    pending items from each, one from each in turn (who goes first alternates), then releases
    them (untimed), so both ledgers keep their size and their pending backlog.
    """
    small_ns, large_ns = bench.namespace("g-small"), bench.namespace("g-large")
    t0 = time.perf_counter()
    bench.log(f"filling a ledger of {small:,} items and one of {large:,} (untimed)")
    small_ids = fill(small_ns.ledger, small)
    large_ids = fill(large_ns.ledger, large)
    results.fill_seconds = time.perf_counter() - t0
    counts = large_ns.ledger.counts()
    bench.log(
        f"filled in {results.fill_seconds:.1f}s; large ledger: {sum(counts.values()):,} items, "
        f"{counts[Status.PENDING]:,} pending"
    )
    results.growth_small, results.growth_large = small, large
    per_round = min(per_round, small)
    results.growth_samples = per_round * rounds
    rng = random.Random(12345)  # which items to claim: reproducible, not secret

    # Warm-up: touch both ledgers' scripts and hot keys.
    for ns, ids in ((small_ns, small_ids), (large_ns, large_ids)):
        picked = rng.sample(ids, min(100, per_round))
        warm = [ns.ledger.claim(w, AGENT) for w in picked]
        for item in warm:
            ns.ledger.release(item.id, AGENT, fence=item.fence)

    for r in range(rounds):
        picks = {
            "small": (small_ns, rng.sample(small_ids, per_round)),
            "large": (large_ns, rng.sample(large_ids, per_round)),
        }
        lat: dict[str, list[int]] = {"small": [], "large": []}
        held: dict[str, list[tuple[str, int | None]]] = {"small": [], "large": []}
        clock = time.perf_counter_ns
        gc.collect()
        for i in range(per_round):
            order = ("small", "large") if (i + r) % 2 == 0 else ("large", "small")
            for name in order:
                ns, ids = picks[name]
                t = clock()
                item = ns.ledger.claim(ids[i], AGENT)
                lat[name].append(clock() - t)
                held[name].append((item.id, item.fence))
        for name, (ns, _ids) in picks.items():
            for wid, fence in held[name]:
                ns.ledger.release(wid, AGENT, fence=fence)
        g = GrowthRound(
            small_p50_ms=percentile(lat["small"], 50) / 1e6,
            large_p50_ms=percentile(lat["large"], 50) / 1e6,
            small_mean_ms=statistics.fmean(lat["small"]) / 1e6,
            large_mean_ms=statistics.fmean(lat["large"]) / 1e6,
        )
        results.growth_rounds.append(g)
        bench.log(
            f"growth round {r + 1}/{rounds}: p50 {g.small_p50_ms * 1000:.0f} us at {small:,} vs "
            f"{g.large_p50_ms * 1000:.0f} us at {large:,} (x{g.ratio:.2f}); mean x{g.mean_ratio:.2f}"
        )


def profile_claim(bench: Bench, n: int, top: int = 15) -> str:
    """cProfile of ``Ledger.claim`` (client side included), top entries by tottime."""
    ns = bench.namespace("profile")
    ids = fill(ns.ledger, n + 200)
    for w in ids[:200]:
        ns.ledger.claim(w, AGENT)
    claim = ns.ledger.claim
    profiler = cProfile.Profile()
    profiler.enable()
    for w in ids[200:]:
        claim(w, AGENT)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    return f"cProfile of {n:,} Ledger.claim calls, top {top} by tottime\n{out.getvalue().strip()}"


# -- reporting ----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def summary(results: Results) -> dict[str, Any]:
    """The median rounds, the targets and the verdicts, as plain data."""
    out: dict[str, Any] = {
        "redis": {"url": results.redis_url, "kind": results.redis_kind, "version": results.redis_version},
        "n": results.n,
        "rounds": results.rounds,
    }
    if results.claim_rounds:
        c = results.claim_rounds[median_index([x.ratio for x in results.claim_rounds])]
        out["baseline_set_nx_px"] = {
            "ops_s": c.baseline_ops_s,
            "p50_ms": c.baseline_p50_ms,
            "p99_ms": c.baseline_p99_ms,
            "client_cpu_ms": c.baseline_cpu_ms,
        }
        out["claim"] = {
            "claims_s": c.value,
            "p50_ms": c.p50_ms,
            "p99_ms": c.p99_ms,
            "mean_ms": c.mean_ms,
            "client_cpu_ms": c.cpu_ms,
            "baseline_ops_s": c.baseline_ops_s,
            "ratio": c.ratio,
            "ratio_target": CLAIM_RATIO_TARGET,
            "ratio_pass": c.ratio >= CLAIM_RATIO_TARGET,
            "p99_target_ms": CLAIM_P99_TARGET_MS,
            "p99_pass": c.p99_ms <= CLAIM_P99_TARGET_MS,
            "round_ratios": [x.ratio for x in results.claim_rounds],
            "round_p99_ms": [x.p99_ms for x in results.claim_rounds],
        }
    if results.lifecycle_rounds:
        lc = results.lifecycle_rounds[median_index([x.ratio for x in results.lifecycle_rounds])]
        out["lifecycle"] = {
            "items_s": lc.value,
            "item_p50_ms": lc.p50_ms,
            "item_p99_ms": lc.p99_ms,
            "client_cpu_ms_per_item": lc.cpu_ms,
            "baseline_ops_s": lc.baseline_ops_s,
            "ratio": lc.ratio,
            "ratio_target": LIFECYCLE_RATIO_TARGET,
            "ratio_pass": lc.ratio >= LIFECYCLE_RATIO_TARGET,
            "round_ratios": [x.ratio for x in results.lifecycle_rounds],
        }
    for name, found in (("floor", results.floor_rounds), ("bare_claim", results.bare_rounds)):
        if found:
            f = found[median_index([x.ratio for x in found])]
            out[name] = {
                "ops_s": f.value,
                "p50_ms": f.p50_ms,
                "ratio": f.ratio,
                "round_ratios": [x.ratio for x in found],
            }
    if results.growth_rounds:
        g = results.growth_rounds[median_index([x.ratio for x in results.growth_rounds])]
        out["growth"] = {
            "small_items": results.growth_small,
            "large_items": results.growth_large,
            "samples_per_size": results.growth_samples,
            "small_p50_ms": g.small_p50_ms,
            "large_p50_ms": g.large_p50_ms,
            "small_mean_ms": g.small_mean_ms,
            "large_mean_ms": g.large_mean_ms,
            "ratio": g.ratio,
            "mean_ratio": g.mean_ratio,
            "ratio_target": GROWTH_RATIO_TARGET,
            "ratio_pass": g.ratio <= GROWTH_RATIO_TARGET,
            "round_ratios": [x.ratio for x in results.growth_rounds],
            "round_mean_ratios": [x.mean_ratio for x in results.growth_rounds],
            "fill_seconds": results.fill_seconds,
        }
    out["total_seconds"] = results.total_seconds
    out["deleted_keys"] = results.deleted_keys
    out["raw_rounds"] = {
        "claim": [asdict(x) for x in results.claim_rounds],
        "lifecycle": [asdict(x) for x in results.lifecycle_rounds],
        "growth": [asdict(x) for x in results.growth_rounds],
    }
    return out


def table(s: dict[str, Any]) -> str:
    def us(ms: float) -> str:
        return f"{ms * 1000:,.0f} us"

    rows: list[tuple[str, str, str, str, str, str]] = []
    if "claim" in s:
        b, c = s["baseline_set_nx_px"], s["claim"]
        rows.append(("raw SET NX PX 30000 (baseline)", f"{b['ops_s']:,.0f} ops/s", "", "", "", ""))
        rows.append(
            ("  baseline latency p50 / p99", f"{us(b['p50_ms'])} / {us(b['p99_ms'])}", "", "", "", "")
        )
        rows.append(
            (
                "claim, one client, sequential",
                f"{c['claims_s']:,.0f} claims/s",
                f"{c['baseline_ops_s']:,.0f} ops/s",
                f"{c['ratio']:.2f}",
                f">= {CLAIM_RATIO_TARGET}",
                verdict(c["ratio_pass"]),
            )
        )
        rows.append(("  claim latency p50", us(c["p50_ms"]), us(b["p50_ms"]), "", "", ""))
        rows.append(
            (
                "  client CPU per claim",
                us(c["client_cpu_ms"]),
                us(b["client_cpu_ms"]),
                f"{c['client_cpu_ms'] / b['client_cpu_ms']:.1f}x",
                "(info)",
                "",
            )
        )
        rows.append(
            (
                "  claim latency p99",
                us(c["p99_ms"]),
                us(b["p99_ms"]),
                "",
                f"<= {CLAIM_P99_TARGET_MS:g} ms",
                verdict(c["p99_pass"]),
            )
        )
    if "lifecycle" in s:
        lc = s["lifecycle"]
        rows.append(
            (
                "full lifecycle (4 ops per item)",
                f"{lc['items_s']:,.0f} items/s",
                f"{lc['baseline_ops_s']:,.0f} ops/s",
                f"{lc['ratio']:.3f}",
                f">= {LIFECYCLE_RATIO_TARGET}",
                verdict(lc["ratio_pass"]),
            )
        )
        rows.append(
            (
                "  client CPU per item",
                us(lc["client_cpu_ms_per_item"]),
                "",
                "",
                "(info)",
                "",
            )
        )
    for name, label in (
        ("floor", "floor: EVALSHA 'return 1', claim's KEYS/ARGV"),
        ("bare_claim", "floor: Lua SET NX PX + INCR only"),
    ):
        if name in s:
            f = s[name]
            rows.append((label, f"{f['ops_s']:,.0f} ops/s", "", f"{f['ratio']:.2f}", "(info)", ""))
    if "growth" in s:
        g = s["growth"]
        large, small = f"{g['large_items']:,}", f"{g['small_items']:,}"
        rows.append(
            (
                f"claim p50 at {large} items",
                us(g["large_p50_ms"]),
                f"{us(g['small_p50_ms'])} at {small}",
                f"{g['ratio']:.2f}",
                f"<= {GROWTH_RATIO_TARGET}",
                verdict(g["ratio_pass"]),
            )
        )
        rows.append(
            (
                f"claim mean at {large} items",
                us(g["large_mean_ms"]),
                f"{us(g['small_mean_ms'])} at {small}",
                f"{g['mean_ratio']:.2f}",
                "(info)",
                "",
            )
        )
    header = ("figure", "value", "baseline", "ratio", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    notes = [
        "",
        f"Redis {s['redis']['version']} ({s['redis']['kind']}) at {s['redis']['url']}; "
        f"{s['rounds']} interleaved rounds of n={s['n']:,}, median round shown.",
    ]
    if "claim" in s:
        notes.append("claim ratio per round: " + ", ".join(f"{x:.2f}" for x in s["claim"]["round_ratios"]))
        notes.append("claim p99 per round:   " + ", ".join(us(x) for x in s["claim"]["round_p99_ms"]))
    if "lifecycle" in s:
        notes.append(
            "lifecycle ratio per round: " + ", ".join(f"{x:.3f}" for x in s["lifecycle"]["round_ratios"])
        )
    if "growth" in s:
        g = s["growth"]
        notes.append(
            f"growth: {g['samples_per_size']:,} claims per size, alternating; p50 ratio per round: "
            + ", ".join(f"{x:.2f}" for x in g["round_ratios"])
            + f"; fill took {g['fill_seconds']:.1f}s (untimed)"
        )
    misses = [r[0].strip() for r in rows if r[5] == "MISS"]
    notes.append(f"total {s['total_seconds']:.1f}s; deleted {s['deleted_keys']:,} bench keys.")
    notes.append("ALL TARGETS MET" if not misses else "MISS: " + "; ".join(misses))
    return "\n".join(lines + notes)


# -- main ---------------------------------------------------------------------------------------


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def redis_target(url: str | None) -> Iterator[tuple[str, str]]:
    """``--redis-url``, else ``REDIS_URL``, else 127.0.0.1:6379 if it answers, else embedded."""
    url = url or os.environ.get("REDIS_URL")
    if url:
        yield url, "url"
    elif _answers(LOCAL_REDIS):
        yield LOCAL_REDIS, "local"
    else:
        with embedded_redis() as target:
            yield target.url, target.kind


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", help="Redis to measure against (default: REDIS_URL, local, embedded)")
    p.add_argument("--n", type=int, default=2000, help="SETs and claims per round (lifecycle: n/4 items)")
    p.add_argument("--chunk", type=int, default=20, help="ops per turn when interleaving")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    p.add_argument("--growth-small", type=int, default=1_000, help="items in the small ledger")
    p.add_argument("--growth-large", type=int, default=100_000, help="items in the large ledger")
    p.add_argument("--growth-n", type=int, default=500, help="claims per ledger size per round")
    p.add_argument("--skip-growth", action="store_true", help="skip the ledger-growth benchmark")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--profile", action="store_true", help="also cProfile Ledger.claim (printed to stderr)")
    args = p.parse_args(argv)
    for name in ("n", "chunk", "rounds", "growth_small", "growth_large", "growth_n"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quiet = args.json

    def log(msg: str) -> None:
        if not quiet:
            print(f"  {msg}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    with redis_target(args.redis_url) as (url, kind):
        client = client_from_url(url)
        version = str(client.info("server").get("redis_version", "?"))
        results = Results(redact(url), kind, version, args.n, args.rounds)
        bench = Bench(client, f"bench-{os.getpid()}-{secrets.token_hex(3)}", log=log)
        profile = ""
        try:
            run_throughput(bench, results, args.n, args.rounds, args.chunk)
            if not args.skip_growth:
                run_growth(
                    bench,
                    results,
                    small=args.growth_small,
                    large=args.growth_large,
                    per_round=args.growth_n,
                    rounds=args.rounds,
                )
            if args.profile:
                profile = profile_claim(bench, args.n)
        finally:
            log("deleting the bench's keys")
            results.deleted_keys = bench.cleanup()
            client.close()
    results.total_seconds = time.perf_counter() - started
    s = summary(results)
    if args.json:
        if profile:
            s["claim_profile"] = profile
        print(json.dumps(s, indent=2))
    else:
        print(table(s))
        if profile:
            print("\n" + profile, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
