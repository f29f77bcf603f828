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
import cProfile
import gc
import io
import json
import os
import pstats
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import redis

# Runnable as a plain script from anywhere: make the project importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import WORK_TYPE, Harness, Namespace, Op, Sample, fill, interleave, percentile
from report import GrowthRound, Results, round_of, summary, table

from swarm.connection import client_from_url, redact
from swarm.embedded import redis_for_checks
from swarm.keys import Keys
from swarm.models import Status

AGENT = "bench-agent"
BASELINE_PX = 30_000


# -- the contenders -----------------------------------------------------------------------------


class Bench(Harness):
    def __init__(self, client: redis.Redis, run_prefix: str, *, log: Callable[[str], None]) -> None:
        super().__init__(client, run_prefix, log=log)
        self._baseline_seq = 0

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
        args: list[str | int] = [*ns.ledger.common_argv, "work_floor", AGENT, BASELINE_PX]
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
        samples = interleave(ops, step, turn=r)
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


# -- main ---------------------------------------------------------------------------------------


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
    with redis_for_checks(args.redis_url or os.environ.get("REDIS_URL")) as target:
        client = client_from_url(target.url)
        version = str(client.info("server").get("redis_version", "?"))
        results = Results(redact(target.url), target.kind, version, args.n, args.rounds)
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
