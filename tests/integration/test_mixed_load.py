"""Concurrent claim / progress / complete / release / fail / cancel from many processes (SPEC §5, §13).

Six processes work one backlog at once and log every write the ledger accepted; they also try
writes on items they do not hold, which must all be refused. Afterwards the ledger must agree
with the logs and with itself: nothing completed twice, velocity counted once, and every
registry (status, ready, leases) and the event stream matching the items.
"""

from __future__ import annotations

import multiprocessing
import random
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from swarm.errors import InvalidTransition, NotOwner
from swarm.ledger import Ledger
from swarm.models import EventKind, Priority, Role, Status, WorkItem
from swarm.settings import Settings

pytestmark = pytest.mark.integration

ITEMS = 150
ROLES = (Role.DEVELOPER, Role.QA)
WORKERS = 6
CLAIMS_PER_WORKER = 20
MAX_ATTEMPTS = 2
TIMEOUT = 60.0
INTERFERING_OPS = ("progress", "complete", "release", "fail", "heartbeat")

Op = tuple[str, str, str, int | None, str]  # (op, work_id, agent, fence, status after)


@dataclass(frozen=True)
class Job:
    url: str
    prefix: str
    agent: str
    role: Role
    ids: list[str]
    seed: int
    hold_last: bool


@dataclass
class Report:
    agent: str
    accepted: list[Op] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # (op, work_id, error type)
    violations: list[str] = field(default_factory=list)
    holding: str | None = None


def _settings(prefix: str) -> Settings:
    return Settings(key_prefix=prefix, redis_url=None, max_attempts=MAX_ATTEMPTS)


def _interfere(ledger: Ledger, job: Job, rng: random.Random, mine: str | None, report: Report) -> None:
    """A write on an item this agent does not hold: it must be refused."""
    target = rng.choice([wid for wid in job.ids if wid != mine])
    op = rng.choice(INTERFERING_OPS)
    fence = rng.choice([None, rng.randint(1, 400)])
    calls = {
        "progress": lambda: ledger.progress(target, job.agent, 50, fence=fence),
        "complete": lambda: ledger.complete(target, job.agent, fence=fence),
        "release": lambda: ledger.release(target, job.agent, fence=fence),
        "fail": lambda: ledger.fail(target, job.agent, "meddling", fence=fence, retry=True),
        "heartbeat": lambda: ledger.heartbeat(target, job.agent, fence=fence),
    }
    try:
        calls[op]()
    except (NotOwner, InvalidTransition) as exc:
        report.refused.append((op, target, type(exc).__name__))
    else:
        report.violations.append(f"{job.agent} {op} on {target} (fence {fence}) was accepted")


def _work(ledger: Ledger, job: Job, rng: random.Random, report: Report) -> None:
    log = report.accepted
    for n in range(CLAIMS_PER_WORKER):
        if rng.random() < 0.3:
            _interfere(ledger, job, rng, None, report)
        item = ledger.claim_next(job.role, job.agent)
        if item is None:
            return
        wid, fence = item.id, item.fence
        log.append(("claim", wid, job.agent, fence, item.status.value))
        for _ in range(rng.randint(0, 2)):
            done = ledger.progress(wid, job.agent, rng.randint(1, 99), fence=rng.choice([fence, None]))
            log.append(("progress", wid, job.agent, done.fence, done.status.value))
            if rng.random() < 0.3:
                _interfere(ledger, job, rng, wid, report)
        if rng.random() < 0.08:
            target = rng.choice(job.ids)
            try:
                cancelled = ledger.cancel(target, job.agent)
                log.append(("cancel", target, job.agent, None, cancelled.status.value))
            except InvalidTransition as exc:
                report.refused.append(("cancel", target, type(exc).__name__))
        if job.hold_last and n == CLAIMS_PER_WORKER - 1:
            report.holding = wid
            return
        roll, use = rng.random(), rng.choice([fence, None])
        if roll < 0.1:
            done = ledger.release(wid, job.agent, fence=use)
            log.append(("release", wid, job.agent, done.fence, done.status.value))
        elif roll < 0.25:
            done = ledger.fail(wid, job.agent, "boom", fence=use, retry=rng.random() < 0.7)
            log.append(("fail", wid, job.agent, done.fence, done.status.value))
        else:
            points = rng.choice([None, None, rng.randint(0, 13)])
            done = ledger.complete(wid, job.agent, fence=use, result={"ok": True}, points=points)
            log.append(("complete", wid, job.agent, done.fence, done.status.value))


def _worker(job: Job, barrier: Any, results: Any) -> None:
    report = Report(job.agent)
    try:
        ledger = Ledger.from_url(job.url, _settings(job.prefix))
        ledger.client.ping()
        barrier.wait(TIMEOUT)
        _work(ledger, job, random.Random(job.seed), report)
    except Exception:
        report.violations.append(f"{job.agent} crashed:\n{traceback.format_exc()}")
    results.put(report)


@dataclass(frozen=True)
class Load:
    ledger: Ledger
    items: dict[str, WorkItem]  # every item, read after the load
    reports: list[Report]

    def accepted(self, op: str | None = None) -> list[Op]:
        return [o for r in self.reports for o in r.accepted if op is None or o[0] == op]

    def with_status(self, *statuses: Status) -> set[str]:
        return {wid for wid, item in self.items.items() if item.status in statuses}


def _run(ledger: Ledger, url: str, prefix: str) -> Load:
    rng = random.Random(7)
    ids = [
        ledger.submit(
            "task",
            f"task {n}",
            role=rng.choice(ROLES),
            team=rng.choice(["alpha", "beta"]),
            priority=rng.choice(list(Priority)),
            points=rng.randint(0, 8),
        ).id
        for n in range(ITEMS)
    ]
    mp = multiprocessing.get_context("fork")
    barrier, results = mp.Barrier(WORKERS), mp.Queue()
    jobs = [Job(url, prefix, f"agent-{n}", ROLES[n % 2], ids, n, hold_last=n < 4) for n in range(WORKERS)]
    procs = [mp.Process(target=_worker, args=(job, barrier, results)) for job in jobs]
    for proc in procs:
        proc.start()
    try:
        reports: list[Report] = [results.get(timeout=TIMEOUT) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=TIMEOUT)
            if proc.is_alive():
                proc.kill()
    return Load(ledger, {wid: ledger.get(wid) for wid in ids}, reports)


@pytest.fixture(scope="module")
def load(redis_url: str) -> Iterator[Load]:
    prefix = "t" + uuid.uuid4().hex[:12]
    ledger = Ledger.from_url(redis_url, _settings(prefix))
    try:
        yield _run(ledger, redis_url, prefix)
    finally:
        doomed = list(ledger.client.scan_iter(match="{" + prefix + "}*", count=1000))
        if doomed:
            ledger.client.delete(*doomed)
        ledger.client.close()


def test_the_load_exercised_every_outcome(load: Load) -> None:
    statuses = Counter(item.status for item in load.items.values())
    held = statuses[Status.CLAIMED] + statuses[Status.IN_PROGRESS]
    failed = statuses[Status.FAILED] + statuses[Status.DEAD]
    assert (
        min(statuses[Status.PENDING], held, statuses[Status.COMPLETED], statuses[Status.CANCELLED], failed)
        > 0
    )
    assert {op for op, *_ in load.accepted()} >= {
        "claim",
        "progress",
        "complete",
        "release",
        "fail",
        "cancel",
    }


def test_every_write_on_an_unheld_item_is_refused(load: Load) -> None:
    assert [v for r in load.reports for v in r.violations] == []
    refused = [(op, wid, err) for r in load.reports for op, wid, err in r.refused if op != "cancel"]
    assert len(refused) > 20
    # InvalidTransition is only for items that are finished (and finished is for ever).
    assert {wid for _, wid, err in refused if err == "InvalidTransition"} <= load.with_status(
        *(s for s in Status if s.terminal)
    )


def test_every_accepted_complete_is_reflected_once(load: Load) -> None:
    completes = load.accepted("complete")
    assert {wid: n for wid, n in Counter(wid for _, wid, *_ in completes).items() if n > 1} == {}
    assert {wid for _, wid, *_ in completes} == load.with_status(Status.COMPLETED)
    for _, wid, agent, fence, _ in completes:
        item = load.items[wid]
        assert (item.status, item.agent_id, item.fence) == (Status.COMPLETED, agent, fence)


def test_every_accepted_write_was_made_under_a_claim_the_agent_won(load: Load) -> None:
    claims = load.accepted("claim")
    assert len({fence for *_, fence, _ in claims}) == len(claims)
    won = {(wid, agent, fence) for _, wid, agent, fence, _ in claims}
    for op, wid, agent, fence, _ in load.accepted():
        if op not in ("claim", "cancel"):
            assert (wid, agent, fence) in won, f"{op} by {agent} on {wid} under fence {fence}"


def test_every_finished_item_was_finished_by_one_accepted_write(load: Load) -> None:
    terminal = {s.value for s in Status if s.terminal}
    finishers = Counter(wid for _, wid, _, _, after in load.accepted() if after in terminal)
    finished = load.with_status(*(s for s in Status if s.terminal))
    assert dict(finishers) == dict.fromkeys(finished, 1)
    for _, wid, _, _, after in load.accepted():
        if after in terminal:
            assert load.items[wid].status.value == after
    cancelled_by_request = {wid for op, wid, *_ in load.accepted() if op == "cancel"}
    assert load.with_status(Status.CANCELLED) <= cancelled_by_request


def test_velocity_is_the_points_of_completed_items(load: Load) -> None:
    expected: Counter[str] = Counter()
    for item in load.items.values():
        if item.status is Status.COMPLETED:
            expected[item.team] += item.points
    assert {t: p for t, p in load.ledger.velocity().items() if p} == {t: p for t, p in expected.items() if p}


def test_counts_match_the_items(load: Load) -> None:
    expected = Counter(item.status for item in load.items.values())
    assert load.ledger.counts() == {s: expected[s] for s in Status}


def test_every_item_is_in_the_registry_of_its_status_only(load: Load) -> None:
    keys = load.ledger.keys
    registries = {s: set(load.ledger.client.zrange(keys.status(s), 0, -1)) for s in Status}
    for wid, item in load.items.items():
        assert {s for s, ids in registries.items() if wid in ids} == {item.status}
    assert set().union(*registries.values()) == set(load.items)


def test_pending_items_are_ready_for_their_role_only(load: Load) -> None:
    keys = load.ledger.keys
    for role in Role:
        ready = set(load.ledger.client.zrange(keys.ready(role), 0, -1))
        expected = {wid for wid in load.with_status(Status.PENDING) if load.items[wid].role is role}
        assert ready == expected, role


def test_the_lease_registry_holds_exactly_the_held_items(load: Load) -> None:
    leased = set(load.ledger.client.zrange(load.ledger.keys.leases, 0, -1))
    held = load.with_status(Status.CLAIMED, Status.IN_PROGRESS)
    assert leased == held
    assert held == {r.holding for r in load.reports if r.holding}
    for r in load.reports:
        if r.holding:
            assert load.items[r.holding].agent_id == r.agent
    ids = list(load.items)
    claim_keys = dict(
        zip(ids, load.ledger.client.mget([load.ledger.keys.claim(w) for w in ids]), strict=True)
    )
    assert {wid: agent for wid, agent in claim_keys.items() if agent} == {
        w: load.items[w].agent_id for w in held
    }


def test_one_completed_event_per_completed_item(load: Load) -> None:
    events = load.ledger.events(100_000)
    assert events[0].event is EventKind.SUBMITTED  # the stream was not trimmed
    completed = Counter(e.work_id for e in events if e.event is EventKind.COMPLETED)
    assert dict(completed) == dict.fromkeys(load.with_status(Status.COMPLETED), 1)
