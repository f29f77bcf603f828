"""Worker benchmarks (SPEC §12): end to end, memory, and 40 agents on one backlog.

Run from the project root::

    .venv/bin/python bench/bench_workers.py [--items N] [--rounds R] [--only e2e|memory|scale]
        [--memory-items N] [--scale-items N] [--scale-workers N] [--redis-url URL] [--keep-logs]

- **end to end**: N items submitted with ``Swarm.submit`` (demo handler, no work) through one
  ``swarm worker --role developer --pool threads -c 4``, from the first submit to the last
  completion seen in the ledger; against a plain Celery no-op task (``bench/noop_app.py``,
  ``celery worker -P threads -c 4``, same broker and transport options, the task one ``INCR``),
  from the first send to the last increment. Both workers start once and serve every round;
  rounds alternate which goes first; medians are reported. Target: ratio >= 0.8.
- **memory**: RSS (the whole process tree) of a fresh role worker once idle and settled, and
  again after it has run ``--memory-items`` items; the plain Celery worker alongside for context.
  Target: <= 65 MB both times.
- **scale**: ``--scale-items`` items are submitted (``Swarm.submit``, enqueued as usual) before
  any worker runs; their queue list is parked under another key while ``--scale-workers``
  workers x 4 threads boot in parallel, then moved back in one ``RENAMENX``, so that every slot
  starts on the backlog together. Every item must be completed exactly once (one ``completed``
  event per item in the ledger's stream, every item ``completed``) with no failure.

Helpers: ``noop_app.py`` (the baseline Celery app), ``worker_procs.py`` (worker processes, RSS,
CPU, cleanup), ``worker_legs.py`` (a timed batch, the table).

The script exits 0 whatever the figures (a missed target prints MISS); 1 if a benchmark could
not run. It works under its own key prefixes and deletes them (ledger keys, queue lists, kombu
bindings) when it ends; it stops every worker it started.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import FrameType

import redis

# Runnable as a plain script from anywhere: make the project importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import delete_matching
from noop_app import create_noop_app
from worker_legs import MB, WORK_TYPE, Leg, Run, plain_leg, swarm_done, swarm_leg, table, wait_count
from worker_procs import (
    plain_worker,
    run_patterns,
    running,
    settled_rss,
    swarm_worker,
    tree_rss,
)

from swarm import Swarm
from swarm.celery_app import queue_name
from swarm.connection import client_from_url, redact
from swarm.embedded import redis_for_checks
from swarm.keys import Keys
from swarm.models import EventKind, Priority, Role, Status
from swarm.settings import DEFAULT_EVENTS_MAX_LEN

E2E_RATIO_TARGET = 0.8  # swarm items/s >= 0.8 x plain Celery no-op tasks/s
MEMORY_TARGET_MB = 65.0
CONCURRENCY = 4
WARM_ITEMS = 100  # per worker, untimed, before the first round


# -- the benchmarks -----------------------------------------------------------------------------


def run_e2e(run: Run, items: int, rounds: int) -> None:
    settings = run.settings("e2e")
    queue = f"{settings.key_prefix}.noop"
    procs = [
        swarm_worker(
            run.url, settings.key_prefix, f"e2e-swarm-{run.prefix}", run.log_dir, concurrency=CONCURRENCY
        ),
        plain_worker(run.url, queue, f"e2e-plain-{run.prefix}", run.log_dir, concurrency=CONCURRENCY),
    ]
    swarm_legs: list[Leg] = []
    plain_legs: list[Leg] = []
    with running(procs, log=run.log), Swarm(run.url, settings=settings) as sw:
        app = create_noop_app(run.url, queue)
        try:
            run.log(f"warm-up: {WARM_ITEMS} items through each worker (untimed)")
            swarm_pid, plain_pid = procs[0].pid, procs[1].pid
            swarm_leg(run, sw, swarm_pid, WARM_ITEMS)
            plain_leg(run, app, queue, plain_pid, WARM_ITEMS)
            for r in range(rounds):
                order = ("swarm", "plain") if r % 2 == 0 else ("plain", "swarm")
                for who in order:
                    if who == "swarm":
                        swarm_legs.append(swarm_leg(run, sw, swarm_pid, items))
                    else:
                        plain_legs.append(plain_leg(run, app, queue, plain_pid, items))
                s, p = swarm_legs[-1], plain_legs[-1]
                run.log(
                    f"round {r + 1}/{rounds} ({order[0]} first): swarm {s.rate:,.0f} items/s, "
                    f"plain {p.rate:,.0f} tasks/s, x{s.rate / p.rate:.2f}"
                )
        finally:
            app.close()
    s_rate = statistics.median(x.rate for x in swarm_legs)
    p_rate = statistics.median(x.rate for x in plain_legs)
    ratio = s_rate / p_rate
    run.row("plain Celery no-op task (baseline)", f"{p_rate:,.0f} tasks/s")
    run.row(
        "end to end: submit -> worker -> complete",
        f"{s_rate:,.0f} items/s",
        f"{p_rate:,.0f} tasks/s",
        f"{ratio:.2f}",
        f">= {E2E_RATIO_TARGET}",
        ok=ratio >= E2E_RATIO_TARGET,
    )
    for label, attr, unit in (
        ("  send rate: Swarm.submit vs send_task", "send_rate", "/s"),
        ("  producer CPU per item", "send_cpu_ms", " ms"),
        ("  worker CPU per item", "worker_cpu_ms", " ms"),
    ):
        sv = statistics.median(getattr(x, attr) for x in swarm_legs)
        pv = statistics.median(getattr(x, attr) for x in plain_legs)
        fmt = ",.0f" if unit == "/s" else ".2f"
        run.row(label, f"{sv:{fmt}}{unit}", f"{pv:{fmt}}{unit}", f"{sv / pv:.2f}", "(info)")
    run.notes.append(
        f"end to end: {rounds} rounds of {items:,} items, 1 worker each, threads x{CONCURRENCY}; "
        "ratio per round: "
        + ", ".join(f"{s.rate / p.rate:.2f}" for s, p in zip(swarm_legs, plain_legs, strict=True))
    )


def run_memory(run: Run, items: int) -> None:
    settings = run.settings("mem")
    queue = f"{settings.key_prefix}.noop"
    swarm_proc = swarm_worker(
        run.url, settings.key_prefix, f"mem-swarm-{run.prefix}", run.log_dir, concurrency=CONCURRENCY
    )
    plain_proc = plain_worker(run.url, queue, f"mem-plain-{run.prefix}", run.log_dir, concurrency=CONCURRENCY)
    found: dict[str, dict[str, int]] = {"swarm": {}, "plain": {}}
    with running([swarm_proc, plain_proc], log=run.log), Swarm(run.url, settings=settings) as sw:
        app = create_noop_app(run.url, queue)
        try:
            for who, proc in (("swarm", swarm_proc), ("plain", plain_proc)):
                found[who]["idle"], settled = settled_rss(proc.pid)
                found[who]["procs"] = tree_rss(proc.pid)[1]
                run.log(
                    f"{who} worker idle: {found[who]['idle'] / MB:.1f} MB"
                    + ("" if settled else " (still moving)")
                )
            for who, proc in (("swarm", swarm_proc), ("plain", plain_proc)):
                peak = [found[who]["idle"]]
                last = [0.0]

                def sample(pid: int = proc.pid, peak: list[int] = peak, last: list[float] = last) -> None:
                    if time.monotonic() - last[0] >= 0.25:
                        last[0] = time.monotonic()
                        peak[0] = max(peak[0], tree_rss(pid)[0])

                if who == "swarm":
                    leg = swarm_leg(run, sw, proc.pid, items, on_poll=sample)
                else:
                    leg = plain_leg(run, app, queue, proc.pid, items, on_poll=sample)
                found[who]["after"], settled = settled_rss(proc.pid)
                found[who]["peak"] = max(peak[0], found[who]["after"])
                run.log(
                    f"{who} worker: {items:,} items in {leg.total_s:.1f}s; RSS after "
                    f"{found[who]['after'] / MB:.1f} MB" + ("" if settled else " (still moving)")
                )
        finally:
            app.close()
    s, p = found["swarm"], found["plain"]
    for label, key in (("idle", "idle"), (f"after {items:,} items", "after")):
        mb = s[key] / MB
        run.row(
            f"memory: role worker RSS, {label}",
            f"{mb:.1f} MB",
            f"{p[key] / MB:.1f} MB plain",
            f"{s[key] / p[key]:.2f}",
            f"<= {MEMORY_TARGET_MB:g} MB",
            ok=mb <= MEMORY_TARGET_MB,
        )
    run.row(
        "  peak RSS while running", f"{s['peak'] / MB:.1f} MB", f"{p['peak'] / MB:.1f} MB plain", "", "(info)"
    )
    run.notes.append(
        f"memory: VmRSS summed over the process tree ({s['procs']} process(es) for the swarm worker, "
        f"{p['procs']} for plain Celery), sampled until 5 samples 0.5 s apart agree within 256 KiB."
    )


def run_scale(run: Run, items: int, workers: int) -> None:
    cap = max(DEFAULT_EVENTS_MAX_LEN, items * 10)
    settings = run.settings("scale", events_max_len=cap)
    queue = Keys(settings.key_prefix).broker_lists(queue_name(settings, Role.DEVELOPER, Priority.MEDIUM))[0]
    parked = f"{settings.key_prefix}.parked"
    client = run.client
    procs = [
        swarm_worker(
            run.url,
            settings.key_prefix,
            f"scale{i}-{run.prefix}",
            run.log_dir,
            concurrency=CONCURRENCY,
            env={"SWARM_EVENTS_MAX_LEN": str(cap)},
        )
        for i in range(workers)
    ]
    with Swarm(run.url, settings=settings) as sw:
        t0 = time.perf_counter()
        ids = [sw.submit(WORK_TYPE, "x", role="developer").id for _ in range(items)]
        run.log(f"scale: {items:,} items submitted in {time.perf_counter() - t0:.1f}s; parking their queue")
        queued = int(client.llen(queue))
        if queued != items:
            raise RuntimeError(f"expected {items} messages on {queue}, found {queued}")
        client.rename(queue, parked)
        with running(procs, log=run.log) as boot_s:
            t0 = time.perf_counter()
            if not client.renamenx(parked, queue):  # something was enqueued meanwhile: append ours
                client.eval(APPEND_LUA, 2, parked, queue)
            done = wait_count(swarm_done(sw), items, poll=run.poll, what="scale workers")
            elapsed = done - t0
            time.sleep(1.0)  # let any duplicate delivery reach the ledger before the check
            left = int(client.llen(queue))
        events = sw.ledger.events(cap)
        statuses = Counter(_statuses(client, sw, ids))
    kinds = Counter(e.event for e in events)
    completed = Counter(e.work_id for e in events if e.event is EventKind.COMPLETED)
    claimed = Counter(e.work_id for e in events if e.event is EventKind.CLAIMED)
    by_agent = Counter(e.agent_id for e in events if e.event is EventKind.COMPLETED)
    once = sum(1 for w in ids if completed[w] == 1)
    twice = sum(1 for w in ids if completed[w] > 1)
    strays = sum(n for w, n in completed.items() if w not in set(ids))
    bad = kinds[EventKind.FAILED] + kinds[EventKind.DEAD] + kinds[EventKind.LEASE_EXPIRED]
    ok = (
        once == items
        and twice == 0
        and strays == 0
        and bad == 0
        and statuses == Counter({Status.COMPLETED.value: items})
        and kinds[EventKind.SUBMITTED] == items  # the stream was not trimmed under us
        and left == 0
    )
    run.row(
        f"scale: {workers} workers x {CONCURRENCY} threads, one backlog",
        f"{items / elapsed:,.0f} items/s",
        "",
        "",
        "(info)",
    )
    run.row(
        "  every item completed exactly once",
        f"{once:,}/{items:,} once",
        "",
        "",
        "all, no errors",
        ok=ok,
    )
    run.notes.append(
        f"scale: {items:,} items submitted before any worker ran, released to {workers} workers "
        f"(booted in parallel in {boot_s:.1f}s) at once; done in {elapsed:.2f}s. Events: "
        + ", ".join(f"{k.value} {n:,}" for k, n in sorted(kinds.items()))
        + f". Items claimed more than once: {sum(1 for n in claimed.values() if n > 1)}; completed twice: "
        f"{twice}; failed/dead/expired events: {bad}; statuses: {dict(statuses)}; messages left: {left}. "
        f"Completions per worker ({len(by_agent)} agents): min {min(by_agent.values(), default=0)}, "
        f"max {max(by_agent.values(), default=0)}."
    )


APPEND_LUA = (
    "local n = 0 while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end return n"
)


def _statuses(client: redis.Redis, sw: Swarm, ids: Sequence[str]) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for w in ids:
        pipe.hget(sw.ledger.keys.item(w), "status")
    return [str(s) for s in pipe.execute()]


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", help="Redis to measure against (default: REDIS_URL, local, embedded)")
    p.add_argument("--items", type=int, default=2000, help="end to end: items per round and contender")
    p.add_argument("--rounds", type=int, default=3, help="end to end: interleaved rounds (median reported)")
    p.add_argument(
        "--memory-items", type=int, default=10_000, help="memory: items run before the second figure"
    )
    p.add_argument("--scale-items", type=int, default=2000, help="scale: items in the backlog")
    p.add_argument("--scale-workers", type=int, default=10, help="scale: worker processes (x4 threads)")
    p.add_argument("--poll-ms", type=float, default=2.0, help="completion poll interval")
    p.add_argument("--only", choices=["e2e", "memory", "scale"], help="run one benchmark")
    p.add_argument("--keep-logs", action="store_true", help="keep the workers' log files")
    args = p.parse_args(argv)
    for name in ("items", "rounds", "memory_items", "scale_items", "scale_workers", "poll_ms"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so that the finally blocks stop the workers


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)

    def log(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    failed = False
    with redis_for_checks(args.redis_url or os.environ.get("REDIS_URL")) as target:
        client = client_from_url(target.url)
        version = str(client.info("server").get("redis_version", "?"))
        run = Run(
            target.url, client, f"bw-{os.getpid()}-{secrets.token_hex(3)}", log_dir, args.poll_ms / 1000, log
        )
        try:
            benches: dict[str, Callable[[], None]] = {
                "e2e": partial(run_e2e, run, args.items, args.rounds),
                "memory": partial(run_memory, run, args.memory_items),
                "scale": partial(run_scale, run, args.scale_items, args.scale_workers),
            }
            for name, bench in benches.items():
                if args.only in (None, name):
                    try:
                        bench()
                    except RuntimeError as exc:
                        failed = True
                        run.row(f"{name}: could not run", str(exc).splitlines()[0][:60], ok=False)
                        log(f"{name} failed: {exc}")
        finally:
            deleted = delete_matching(client, run_patterns(run.prefix))
            client.close()
    run.notes.insert(0, f"Redis {version} ({target.kind}) at {redact(target.url)}; key prefix {run.prefix}.")
    run.notes.append(f"total {time.perf_counter() - started:.1f}s; deleted {deleted:,} bench keys.")
    if args.keep_logs or failed:
        run.notes.append(f"worker logs: {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    print(table(run))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
