"""Eight OS processes race to claim the same 200 items (SPEC §5 "Claims", §13).

Every process claims every item, each in its own shuffled order, all released at once by a
barrier. Of the N concurrent claimers of one item exactly one may win; each loser must get a
``ClaimConflict`` naming the winner, and every win must carry a fencing token of its own.
"""

from __future__ import annotations

import multiprocessing
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.context import ForkContext
from typing import Any

import pytest

from swarm.errors import ClaimConflict
from swarm.ledger import Ledger
from swarm.models import Status
from swarm.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2

PROCESSES = 8
ITEMS = 200
RESULT_TIMEOUT = 60.0

# agent -> (wins: work_id -> fence, losses: work_id -> (holder named, work_id named))
Outcome = tuple[str, dict[str, int], dict[str, tuple[str | None, str]]]


@dataclass(frozen=True)
class Claimer:
    url: str
    prefix: str
    agent: str
    ids: list[str]
    seed: int


def _claimer(job: Claimer, barrier: Any, results: Any) -> None:
    """One racing process: claims every item in its own order and reports what it got."""
    ledger = Ledger.from_url(job.url, Settings(key_prefix=job.prefix, redis_url=None))
    ledger.client.ping()  # connect before the start line, so the race is on the claims
    agent = job.agent
    order = list(job.ids)
    random.Random(job.seed).shuffle(order)
    wins: dict[str, int] = {}
    losses: dict[str, tuple[str | None, str]] = {}
    barrier.wait(RESULT_TIMEOUT)
    for wid in order:
        try:
            item = ledger.claim(wid, agent)
        except ClaimConflict as exc:
            losses[wid] = (exc.holder, exc.work_id)
        else:
            assert item.fence is not None
            wins[wid] = item.fence
    results.put((agent, wins, losses))


@pytest.fixture(scope="module")
def mp() -> ForkContext:
    """Fork: the children start in milliseconds, so they all reach the barrier at once."""
    return multiprocessing.get_context("fork")


@dataclass(frozen=True)
class Race:
    ledger: Ledger
    ids: list[str]
    outcomes: list[Outcome]


@pytest.fixture(scope="module")
def race(redis_url: str, mp: ForkContext) -> Iterator[Race]:
    """Runs the race once for the module, in a namespace of its own (dropped afterwards)."""
    prefix = "t" + uuid.uuid4().hex[:12]
    ledger = Ledger.from_url(redis_url, Settings(key_prefix=prefix, redis_url=None))
    try:
        yield _run_race(ledger, redis_url, prefix, mp)
    finally:
        doomed = list(ledger.client.scan_iter(match="{" + prefix + "}*", count=1000))
        if doomed:
            ledger.client.delete(*doomed)
        ledger.client.close()


def _run_race(ledger: Ledger, redis_url: str, prefix: str, mp: ForkContext) -> Race:
    """Submits the items, runs the race, and returns the ids and each process's outcome."""
    ids = [ledger.submit("race", f"item {n}").id for n in range(ITEMS)]
    barrier = mp.Barrier(PROCESSES)
    results = mp.Queue()
    agents = [f"agent-{n}" for n in range(PROCESSES)]
    procs = [
        mp.Process(target=_claimer, args=(Claimer(redis_url, prefix, agent, ids, n), barrier, results))
        for n, agent in enumerate(agents)
    ]
    for proc in procs:
        proc.start()
    try:
        outcomes: list[Outcome] = [results.get(timeout=RESULT_TIMEOUT) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=RESULT_TIMEOUT)
            if proc.is_alive():
                proc.kill()
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    assert sorted(agent for agent, _, _ in outcomes) == sorted(agents)
    return Race(ledger, ids, outcomes)


def _winners(outcomes: list[Outcome]) -> dict[str, list[tuple[str, int]]]:
    winners: dict[str, list[tuple[str, int]]] = {}
    for agent, wins, _ in outcomes:
        for wid, fence in wins.items():
            winners.setdefault(wid, []).append((agent, fence))
    return winners


def test_every_item_has_exactly_one_winner(race: Race) -> None:
    ids, outcomes = race.ids, race.outcomes
    winners = _winners(outcomes)
    assert set(winners) == set(ids)
    assert {wid: len(won) for wid, won in winners.items() if len(won) != 1} == {}
    for agent, wins, losses in outcomes:
        assert set(wins) | set(losses) == set(ids), f"{agent} did not get an answer for every item"
        assert not set(wins) & set(losses)
    # The processes really raced: the wins are spread over more than one of them.
    assert len({agent for agent, wins, _ in outcomes if wins}) > 1


def test_every_loser_is_told_the_winner(race: Race) -> None:
    outcomes = race.outcomes
    winner_of = {wid: won[0][0] for wid, won in _winners(outcomes).items()}
    wrong = {
        (agent, wid): named
        for agent, _, losses in outcomes
        for wid, named in losses.items()
        if named != (winner_of[wid], wid)
    }
    assert wrong == {}
    assert sum(len(losses) for _, _, losses in outcomes) == ITEMS * (PROCESSES - 1)


def test_winning_fences_are_all_distinct(race: Race) -> None:
    outcomes = race.outcomes
    fences = [fence for _, wins, _ in outcomes for fence in wins.values()]
    assert len(fences) == ITEMS
    assert {f: n for f, n in Counter(fences).items() if n > 1} == {}
    assert min(fences) >= 1


def test_the_ledger_records_the_winner(race: Race) -> None:
    ids, outcomes = race.ids, race.outcomes
    winners = _winners(outcomes)
    for wid in ids:
        item = race.ledger.get(wid)
        [(agent, fence)] = winners[wid]
        assert (item.status, item.agent_id, item.fence) == (Status.CLAIMED, agent, fence)
    counts = race.ledger.counts()
    assert (counts[Status.CLAIMED], counts[Status.PENDING]) == (ITEMS, 0)
