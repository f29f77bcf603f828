"""CLI start-up benchmark (issue 11): ``swarm`` commands against ``python -c "import redis"``.

Run from the project root::

    .venv/bin/python bench/bench_cli_startup.py [--runs N] [--redis-url URL] [--json]

An agent that drives the ledger from a shell starts a new ``swarm`` process for every claim,
progress and completion, so each one's whole-process time is what it pays. Each contender is a
whole process, timed from spawn to exit: the baseline ``python -c "import redis"`` (the same
interpreter), then ``swarm --help``, ``swarm show ID``, ``swarm claim ID``, ``swarm progress ID
50`` and ``swarm complete ID`` (the console script next to this interpreter), against a real
Redis. Every command gets an item of its own in the state it needs, made beforehand. After a
warm-up run of each, the contenders take turns, the order rotating from round to round, so
drift in the machine's speed hits them alike; the median of ``--runs`` rounds is reported, with
its ratio to the baseline's median and the children's CPU time. Target: every command within
2 x the baseline.

Redis-py's bytecode was compiled when it was installed, as an installed swarm's is; a checkout
(an editable install, and PYTHONDONTWRITEBYTECODE set) may have none, and would then time
Python's compiler. So swarm's packages are byte-compiled first (``compileall``, into their
``__pycache__``), unless ``--no-compile``.

The script exits 0 whatever the figures (a missed target prints MISS), 1 if a command failed.
It works under its own key prefix and deletes those keys when it ends.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Runnable as a plain script from anywhere: make the project importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import delete_matching

from swarm.connection import client_from_url, redact
from swarm.embedded import redis_for_checks
from swarm.keys import Keys
from swarm.ledger import Ledger
from swarm.settings import Settings

RATIO_TARGET = 2.0  # each command's median <= 2 x the baseline's
AGENT = "bench-cli-agent"
LEASE_S = 3600.0  # the items held for progress/complete outlive the whole run
BASELINE = "python -c 'import redis' (baseline)"


@dataclass
class Contender:
    name: str
    argv_of: Any  # (round) -> argv
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    def run(self, round_: int, env: dict[str, str]) -> None:
        """One whole process, timed from spawn to exit; its CPU time from the children's rusage."""
        argv = self.argv_of(round_)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} ... exited {done.returncode}: {done.stderr.strip()}")
        self.wall_s.append(wall)
        self.cpu_s.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def compile_packages() -> None:
    """Byte-compiles swarm, workers and ceremonies where they are imported from."""
    for package in ("swarm", "workers", "ceremonies"):
        spec = importlib.util.find_spec(package)
        for where in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(where, quiet=1)


def swarm_command() -> list[str]:
    """The ``swarm`` console script of this interpreter's environment (else ``python -m swarm``)."""
    script = Path(sys.executable).parent / "swarm"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "swarm"]


def prepare(ledger: Ledger, rounds: int) -> dict[str, list[str]]:
    """Per round (the warm-up is round 0): a pending item to claim, and two held by AGENT."""
    items: dict[str, list[str]] = {"show": [], "claim": [], "progress": [], "complete": []}
    for _ in range(rounds + 1):
        items["claim"].append(ledger.submit("bench_cli", "to claim", dispatch=False).id)
        for name in ("progress", "complete"):
            item = ledger.submit(
                "bench_cli", f"to {name}", dispatch=False, claim_for=AGENT, lease_seconds=LEASE_S
            )
            items[name].append(item.id)
    items["show"] = items["complete"]
    return items


def contenders(items: dict[str, list[str]]) -> list[Contender]:
    swarm = swarm_command()
    return [
        Contender(BASELINE, lambda _r: [sys.executable, "-c", "import redis"]),
        Contender("swarm --help", lambda _r: [*swarm, "--help"]),
        Contender("swarm show ID", lambda r: [*swarm, "show", items["show"][r]]),
        Contender("swarm claim ID", lambda r: [*swarm, "claim", items["claim"][r], "--agent", AGENT]),
        Contender(
            "swarm progress ID 50",
            lambda r: [*swarm, "progress", items["progress"][r], "50", "half way", "--agent", AGENT],
        ),
        Contender(
            "swarm complete ID", lambda r: [*swarm, "complete", items["complete"][r], "--agent", AGENT]
        ),
    ]


def measure(runners: list[Contender], runs: int, env: dict[str, str], log: Any) -> None:
    for runner in runners:  # warm-up (round 0): page cache, bytecode caches; not counted
        runner.run(0, env)
        runner.wall_s.clear()
        runner.cpu_s.clear()
    for round_ in range(1, runs + 1):
        shift = round_ % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            runner.run(round_, env)
        log(f"round {round_}/{runs} done")


def summary(runners: list[Contender]) -> dict[str, Any]:
    base = statistics.median(runners[0].wall_s)
    rows: dict[str, Any] = {}
    for runner in runners:
        median = statistics.median(runner.wall_s)
        rows[runner.name] = {
            "median_ms": median * 1000,
            "cpu_median_ms": statistics.median(runner.cpu_s) * 1000,
            "ratio": median / base,
            "pass": runner is runners[0] or median / base <= RATIO_TARGET,
            "runs_ms": [round(x * 1000, 1) for x in runner.wall_s],
        }
    return rows


def table(rows: dict[str, Any], notes: list[str]) -> str:
    header = ("figure", "median wall", "CPU", "ratio", "target", "result")
    body: list[tuple[str, ...]] = []
    for i, (name, row) in enumerate(rows.items()):
        wall, cpu = f"{row['median_ms']:.0f} ms", f"{row['cpu_median_ms']:.0f} ms"
        if i == 0:
            body.append((name, wall, cpu, "1.00", "", ""))
        else:
            verdict = "PASS" if row["pass"] else "MISS"
            body.append((name, wall, cpu, f"{row['ratio']:.2f}", f"<= {RATIO_TARGET:g}", verdict))
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in body]
    misses = [r[0] for r in body if r[5] == "MISS"]
    verdict = "ALL TARGETS MET" if not misses else "MISS: " + "; ".join(misses)
    return "\n".join(["", *lines, "", *notes, verdict])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", help="Redis to run against (default: REDIS_URL, local, embedded)")
    p.add_argument("--runs", type=int, default=10, help="timed runs of each command (median reported)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    p.add_argument("--no-compile", action="store_true", help="do not byte-compile swarm's packages first")
    args = p.parse_args(argv)
    if args.runs <= 0:
        p.error("--runs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    if not args.no_compile:
        compile_packages()
    prefix = f"bcli-{os.getpid()}-{secrets.token_hex(3)}"
    with redis_for_checks(args.redis_url or os.environ.get("REDIS_URL")) as target:
        client = client_from_url(target.url)
        version = str(client.info("server").get("redis_version", "?"))
        env = {
            **os.environ,
            "REDIS_URL": target.url,
            "SWARM_KEY_PREFIX": prefix,
            "SWARM_AGENT_ID": AGENT,
        }
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)  # the commands as an agent's shell runs them
        try:
            ledger = Ledger(client, Settings(key_prefix=prefix, redis_url=None))
            runners = contenders(prepare(ledger, args.runs))
            try:
                measure(runners, args.runs, env, log)
            except RuntimeError as exc:
                log(f"a command failed: {exc}")
                return 1
        finally:
            deleted = delete_matching(client, [Keys(prefix).tag + "*"])
            client.close()
    rows = summary(runners)
    if args.json:
        print(
            json.dumps({"redis_version": version, "runs": args.runs, "target": RATIO_TARGET, "figures": rows})
        )
        return 0
    notes = [
        f"Redis {version} ({target.kind}) at {redact(target.url)}; {args.runs} interleaved rounds after a "
        f"warm-up, median shown; CPU is the child's user+system time; swarm's bytecode "
        + ("as found." if args.no_compile else "compiled first."),
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; total "
        f"{time.perf_counter() - started:.1f}s; deleted {deleted:,} bench keys.",
    ]
    print(table(rows, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
