"""What the chaos test prints and what it fails with: the run's figures, its fault timeline and
recovery times, and one section per kind of failure, each naming the item or process at fault."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .faults import Done, Fault
from .fleet import Fleet, Proc
from .verdict import Recovery, Verdict


@dataclass(frozen=True)
class Exit:
    proc: Proc
    code: int | None

    def describe(self, started_at: float) -> str:
        at = (self.proc.exited_at or started_at) - started_at
        return (
            f"{self.proc.describe()} exited with {self.code} at +{at:.1f}s; its log ends:\n{self.proc.tail()}"
        )


class Supervisor:
    """Notices every exit; replaces a process that exited unasked, and remembers it."""

    def __init__(self, fleet: Fleet, say: Callable[[str], None]) -> None:
        self.fleet = fleet
        self.say = say
        self.unrequested: list[Exit] = []
        self.requested: list[Exit] = []

    def check(self) -> None:
        for proc in self.fleet.newly_exited():
            code = proc.popen.returncode
            if proc.requested is None:
                self.unrequested.append(Exit(proc, code))
                new = self.fleet.replace(proc)
                self.say(f"UNREQUESTED EXIT of {proc.describe()}, code {code}; replaced by {new.describe()}")
            else:
                self.requested.append(Exit(proc, code))


def done_faults(faults: list[Done]) -> Counter[Fault]:
    return Counter(f.fault for f in faults if not f.target.startswith("skipped"))


def _recovery(r: Recovery, rel: Callable[[float], str]) -> str:
    took = "never claimed again" if r.seconds is None else f"claimed again after {r.seconds:.1f}s"
    return (
        f"{r.held.work_id}: {r.fault.fault.value} at {rel(r.fault.at)} ({r.fault.target}), {took}{r.note}"
        f"; its events since: {r.trail or 'none'}"
    )


@dataclass(frozen=True)
class Report:
    seed: int
    seconds: float
    lease_s: float
    bound_s: float
    started_at: float
    submitted: int
    verdict: Verdict
    faults: list[Done]
    supervisor: Supervisor

    def rel(self, epoch: float) -> str:
        return f"+{epoch - self.started_at:.1f}s"

    def text(self) -> str:
        v = self.verdict
        measured = [r.seconds for r in v.recoveries if r.seconds is not None]
        lines = [
            f"chaos seed {self.seed}, window {self.seconds:.0f}s, lease {self.lease_s}s, "
            f"recovery bound {self.bound_s}s",
            f"features submitted {self.submitted}, in the ledger {v.features}; "
            f"stage items {v.stage_items}; completed events {v.completions}",
            "faults done: " + ", ".join(f"{k.value} x{n}" for k, n in done_faults(self.faults).items()),
            *(
                f"  {self.rel(f.at)} {f.fault.value}: {f.target}; held {[h.work_id for h in f.held]}"
                for f in self.faults
            ),
            f"recovery times: {len(measured)} measured"
            + (f", median {statistics.median(measured):.1f}s, max {max(measured):.1f}s" if measured else ""),
            *(f"  {_recovery(r, self.rel)}" for r in v.recoveries),
            "longest waits from pending to the next claim: "
            + ", ".join(f"{s:.1f}s ({i.role.value} {i.id})" for s, i in v.longest_waits),
            f"lost {len(v.lost)}, duplicated {len(v.duplicated)}, stuck {len(v.stuck)}, metric mismatches "
            f"{len(v.metrics)}, unrequested exits {len(self.supervisor.unrequested)}, slow recoveries "
            f"{len(self.slow())}",
            *(
                f"  requested exit: {e.proc.describe()} ({e.proc.requested}), code {e.code}"
                for e in self.supervisor.requested
            ),
        ]
        return "\n".join(lines)

    def slow(self) -> list[Recovery]:
        return [r for r in self.verdict.recoveries if r.seconds is None or r.seconds > self.bound_s]

    def problems(self) -> list[str]:
        v = self.verdict
        found: list[str] = []

        def section(title: str, entries: list[str]) -> None:
            if entries:
                found.append(f"{title} ({len(entries)}):\n" + "\n".join(f"  - {e}" for e in entries))

        section("LOST: features that did not complete their last stage", v.lost)
        section("DUPLICATED: a stage completed or handed off more than once", v.duplicated)
        section("STUCK: items still pending or held at the end", v.stuck)
        section(
            "UNREQUESTED PROCESS EXITS", [e.describe(self.started_at) for e in self.supervisor.unrequested]
        )
        section("METRICS that disagree with the event stream", v.metrics)
        section(
            f"SLOW RECOVERIES: an interrupted item not claimed again within {self.bound_s}s",
            [_recovery(r, self.rel) for r in self.slow()],
        )
        done = done_faults(self.faults)
        harness = [
            f"no {kind.value} was done: the run did not test it"
            for kind in (Fault.REDIS_RESTART, Fault.KILL_BEAT, Fault.KILL_WORKER, Fault.KILL_CHILD)
            if not done[kind]
        ]
        if not v.recoveries:
            harness.append("no kill -9 interrupted a held item: no recovery time was measured")
        section("HARNESS: the run did not exercise every fault", harness)
        return found
