"""The chaos test's verdict, read from the ledger alone: features lost, stages done twice, items
stuck, counters that disagree with the event stream, and how long each interrupted item waited
before it was claimed again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from swarm.metrics import LedgerCounters
from swarm.models import Agent, Event, EventKind, Role, Status, WorkItem

from .faults import Done, Fault, Held

HANDOFF_DETAIL = "handoff from "  # the `submitted` event of a next-stage item (lua/_lib.lua hand_off)
LONGEST_WAITS = 5  # the longest pending-to-claim waits printed
EVENTS_QUOTED = 6  # the last events quoted for a lost or stuck item
HELD = (Status.PENDING, Status.CLAIMED, Status.IN_PROGRESS)  # an item in one of these at the end is stuck
NEAR_BEFORE_S = 30.0  # a beat kill this long before a slow recovery may explain it: the dead
# leader's lock (5 x beat_max_interval, 25 s by default) must expire before the standby reaps


@dataclass(frozen=True)
class Recovery:
    fault: Done
    held: Held
    seconds: float | None  # from the fault to the item's next claim; None: never claimed again
    note: str = ""
    trail: str = ""  # the measured item's events from the fault on: where the time went


@dataclass
class Verdict:
    features: int = 0
    stage_items: int = 0
    completions: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    longest_waits: list[tuple[float, WorkItem]] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    """What the verdict reads: the whole namespace after the run, and what the harness did."""

    items: Sequence[WorkItem]
    events: Sequence[Event]
    counters: LedgerCounters
    velocity: dict[str, int]
    agents: Sequence[Agent]
    submitted: Sequence[str]
    stages: tuple[Role, ...]
    faults: Sequence[Done]
    started_at: float  # epoch seconds: times in messages are relative to it


class Judge:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.items = {i.id: i for i in run.items}
        self.by_item: dict[str, list[Event]] = {}
        for event in run.events:
            if event.work_id:
                self.by_item.setdefault(event.work_id, []).append(event)

    def rel(self, epoch: float) -> str:
        return f"+{epoch - self.run.started_at:.1f}s"

    def history(self, work_id: str) -> str:
        events = self.by_item.get(work_id, [])[-EVENTS_QUOTED:]
        return ", ".join(
            f"{e.event.value}({e.agent_id or '-'}, fence {e.fence}) {self.rel(e.at.timestamp())}"
            for e in events
        )

    def where(self, item: WorkItem) -> str:
        return (
            f"{item.id} stage {item.role.value} is {item.status.value} (attempts {item.attempts}/"
            f"{item.max_attempts}, agent {item.agent_id or '-'}, fence {item.fence}); events: "
            f"{self.history(item.id)}"
        )

    def verdict(self, bound_s: float) -> Verdict:
        verdict = Verdict()
        stage_items = [i for i in self.run.items if i.workflow == "feature"]
        verdict.stage_items = len(stage_items)
        verdict.completions = sum(e.event is EventKind.COMPLETED for e in self.run.events)
        self._lost(verdict)
        self._duplicated(verdict, stage_items)
        verdict.stuck = [self.where(i) for i in self.run.items if i.status in HELD]
        self._metrics(verdict)
        verdict.recoveries = self._recoveries(bound_s)
        verdict.longest_waits = self.longest_waits(LONGEST_WAITS)
        return verdict

    def _lost(self, verdict: Verdict) -> None:
        roots = [i for i in self.run.items if i.workflow == "feature" and i.parent_id is None]
        verdict.features = len(roots)
        final = self.run.stages[-1]
        for wid in self.run.submitted:
            if wid not in self.items:
                verdict.lost.append(f"{wid}: submitted, but not in the ledger")
        for root in roots:
            chain = [root]
            while chain[-1].next_id is not None:
                child = self.items.get(chain[-1].next_id)
                if child is None:
                    verdict.lost.append(f"feature {root.id}: {chain[-1].id} handed off to a missing item")
                    break
                chain.append(child)
            end = chain[-1]
            if end.role is not final or end.status is not Status.COMPLETED:
                done = " → ".join(i.role.value for i in chain[:-1]) or "no stage"
                verdict.lost.append(f"feature {root.id}: completed {done}; then {self.where(end)}")

    def _duplicated(self, verdict: Verdict, stage_items: list[WorkItem]) -> None:
        final = self.run.stages[-1]
        handoffs = Counter(
            e.detail.removeprefix(HANDOFF_DETAIL)
            for e in self.run.events
            if e.event is EventKind.SUBMITTED and e.detail.startswith(HANDOFF_DETAIL)
        )
        children = Counter(i.parent_id for i in stage_items if i.parent_id)
        for item in stage_items:
            completed = sum(e.event is EventKind.COMPLETED for e in self.by_item.get(item.id, []))
            expected = 1 if item.status is Status.COMPLETED else 0
            if completed != expected:
                verdict.duplicated.append(
                    f"{completed} completed events (expected {expected}): {self.where(item)}"
                )
            owed = 1 if item.status is Status.COMPLETED and item.role is not final else 0
            if handoffs[item.id] != owed or children[item.id] != owed:
                verdict.duplicated.append(
                    f"{handoffs[item.id]} handoff events and {children[item.id]} next-stage items "
                    f"(expected {owed}): {self.where(item)}"
                )

    def _metrics(self, verdict: Verdict) -> None:
        role_of = {i.id: i.role.value for i in self.run.items}
        final = self.run.stages[-1]
        expected_velocity = Counter[str]()
        for item in self.run.items:
            if item.workflow == "feature" and item.role is final and item.status is Status.COMPLETED:
                expected_velocity[item.team] += item.points
        if self.run.velocity != dict(expected_velocity):
            verdict.metrics.append(
                f"velocity {self.run.velocity} != {dict(expected_velocity)} "
                "(the points of the completed final stages)"
            )
        counted = self.run.counters
        for kind in (EventKind.CLAIMED, EventKind.COMPLETED, EventKind.FAILED):
            seen = Counter(role_of.get(e.work_id or "", "?") for e in self.run.events if e.event is kind)
            for role in Role:
                metric = counted.total(kind.value, role=role.value)
                if metric != seen[role.value]:
                    verdict.metrics.append(
                        f"{kind.value}:{role.value} counter {metric} != {seen[role.value]} events"
                    )
            agents_total = (
                sum(getattr(a, kind.value) for a in self.run.agents)
                if kind is not EventKind.CLAIMED
                else None
            )
            if agents_total is not None and agents_total != sum(seen.values()):
                verdict.metrics.append(
                    f"agents' {kind.value} sum {agents_total} != {sum(seen.values())} events"
                )
        completed = Counter(
            role_of.get(e.work_id or "", "?") for e in self.run.events if e.event is EventKind.COMPLETED
        )
        for role in Role:
            histogram = counted.duration.get((role.value, "completed"))
            observed = histogram.count if histogram is not None else 0
            if observed != completed[role.value]:
                verdict.metrics.append(
                    f"duration histogram {role.value}/completed counts {observed} "
                    f"!= {completed[role.value]} completions"
                )

    def _recoveries(self, bound_s: float) -> list[Recovery]:
        found = []
        for fault in self.run.faults:
            if not fault.measured:
                continue
            for held in fault.held:
                events = self.by_item.get(held.work_id, [])
                if any(e.event is EventKind.COMPLETED and e.fence == held.fence for e in events):
                    found += self._handoff_recovery(fault, held, bound_s)
                    continue
                again = [e for e in events if e.event is EventKind.CLAIMED and (e.fence or 0) > held.fence]
                seconds = again[0].at.timestamp() - fault.at if again else None
                note = self._context(fault, seconds, bound_s)
                found.append(Recovery(fault, held, seconds, note, self.trail(held.work_id, fault.at)))
        return found

    def _handoff_recovery(self, fault: Done, held: Held, bound_s: float) -> list[Recovery]:
        """The holder completed its item just before the kill: what the kill may have interrupted
        is the send of the next stage's message, so the next stage's first claim is measured."""
        item = self.items.get(held.work_id)
        child = item.next_id if item is not None else None
        if child is None:
            return []  # the last stage: nothing is owed to anyone
        claims = [e for e in self.by_item.get(child, []) if e.event is EventKind.CLAIMED]
        if claims and claims[0].at.timestamp() <= fault.at:
            return []  # the next stage was already running
        seconds = claims[0].at.timestamp() - fault.at if claims else None
        note = f" (it completed just before the kill: measured on its handoff {child})"
        note += self._context(fault, seconds, bound_s)
        return [Recovery(fault, held, seconds, note, self.trail(child, fault.at))]

    def trail(self, work_id: str, since: float) -> str:
        events = [e for e in self.by_item.get(work_id, []) if e.at.timestamp() >= since][:EVENTS_QUOTED]
        return ", ".join(f"{e.event.value} {self.rel(e.at.timestamp())}" for e in events)

    def longest_waits(self, count: int) -> list[tuple[float, WorkItem]]:
        """The longest times an item waited pending (submitted, reaped, released or retried)
        until its next claim: a figure to read beside the recovery times."""
        waits: list[tuple[float, WorkItem]] = []
        for wid, events in self.by_item.items():
            item = self.items.get(wid)
            since: float | None = None
            for event in events:
                if event.event is EventKind.CLAIMED and since is not None and item is not None:
                    waits.append((event.at.timestamp() - since, item))
                    since = None
                elif event.status is Status.PENDING:
                    since = event.at.timestamp()
        return sorted(waits, key=lambda w: -w[0])[:count]

    def _context(self, fault: Done, seconds: float | None, bound_s: float) -> str:
        """Other faults between the kill and its recovery (or the bound), that may explain a wait."""
        end = fault.at + (seconds if seconds is not None else bound_s)
        near = [
            f"{f.fault.value} {self.rel(f.at)}"
            for f in self.run.faults
            if f is not fault
            and f.fault in (Fault.KILL_BEAT, Fault.REDIS_RESTART)
            and fault.at - NEAR_BEFORE_S <= f.at <= end
        ]
        return "; near: " + ", ".join(near) if near else ""
