"""A claimer killed with SIGKILL loses its item to the reaper (SPEC §5 "Leases", §13).

The seed's acceptance case: a crashed agent's item becomes claimable again automatically. A
child process claims an item with a one-second lease and is killed without any chance to clean
up; its claim must keep others out until the lease runs out, then the reaper must return the
item to pending, and the dead agent's late write must be refused.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarm.errors import ClaimConflict, LeaseLost
from swarm.ledger import Ledger
from swarm.models import EventKind, Status, WorkItem

from .polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2

LEASE_SECONDS = 1.0
REAP_DEADLINE = 10.0
DEAD_AGENT = "agent-doomed"
SURVIVOR = "agent-survivor"

CLAIMER = """
import sys, threading
from swarm.ledger import Ledger
from swarm.settings import Settings
url, prefix, work_id, agent, lease = sys.argv[1:6]
ledger = Ledger.from_url(url, Settings(key_prefix=prefix, redis_url=None, lease_seconds=float(lease)))
item = ledger.claim(work_id, agent)
print("claimed", item.fence, flush=True)
threading.Event().wait()
"""


@dataclass(frozen=True)
class Killed:
    work_id: str
    fence: int


@pytest.fixture
def killed(redis_url: str, prefix: str, ledger: Ledger) -> Iterator[Killed]:
    """An item claimed by a child process that was then killed with SIGKILL."""
    wid = ledger.submit("build", "claimed by a process about to die").id
    proc = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, redis_url, prefix, wid, DEAD_AGENT, str(LEASE_SECONDS)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()  # blocks until the claim is made (or the child dies)
        assert line[:1] == ["claimed"], f"the claimer did not claim: {line!r}"
        proc.kill()
        assert proc.wait(timeout=10) == -9
        yield Killed(wid, int(line[1]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _reap_until_pending(ledger: Ledger, work_id: str) -> tuple[WorkItem, list[tuple[str, Status]]]:
    """Runs the reaper until the item is pending again, or fails at the deadline."""
    reaped: list[tuple[str, Status]] = []

    def reaped_to_pending() -> bool:
        reaped.extend(ledger.reap())
        return ledger.get(work_id).status is Status.PENDING

    wait_until(reaped_to_pending, f"{work_id} to be reaped", REAP_DEADLINE)
    return ledger.get(work_id), reaped


def test_a_killed_claimers_item_is_held_until_its_lease_runs_out(ledger: Ledger, killed: Killed) -> None:
    with pytest.raises(ClaimConflict) as conflict:
        ledger.claim(killed.work_id, SURVIVOR)
    assert conflict.value.holder == DEAD_AGENT
    item = ledger.get(killed.work_id)
    assert (item.status, item.agent_id, item.fence) == (Status.CLAIMED, DEAD_AGENT, killed.fence)


def test_the_reaper_returns_a_killed_claimers_item_to_pending(ledger: Ledger, killed: Killed) -> None:
    claimed_at = ledger.get(killed.work_id).claimed_at
    item, reaped = _reap_until_pending(ledger, killed.work_id)
    assert reaped == [(killed.work_id, Status.PENDING)]
    assert (item.attempts, item.agent_id, item.lease_expires_at) == (1, None, None)
    assert claimed_at is not None
    # The reaper never takes an item before its lease ran out (both times are Redis's clock).
    assert (item.updated_at - claimed_at).total_seconds() >= LEASE_SECONDS
    expiries = [e for e in ledger.events(1000) if e.event is EventKind.LEASE_EXPIRED]
    assert [(e.work_id, e.agent_id, e.fence) for e in expiries] == [
        (killed.work_id, DEAD_AGENT, killed.fence)
    ]


def test_another_agent_claims_a_reaped_item_with_a_higher_fence(ledger: Ledger, killed: Killed) -> None:
    _reap_until_pending(ledger, killed.work_id)
    item = ledger.claim(killed.work_id, SURVIVOR)
    assert item.agent_id == SURVIVOR
    assert item.fence is not None
    assert item.fence > killed.fence


def test_the_dead_claimers_late_complete_is_refused(ledger: Ledger, killed: Killed) -> None:
    _reap_until_pending(ledger, killed.work_id)
    with pytest.raises(LeaseLost):
        ledger.complete(killed.work_id, DEAD_AGENT, fence=killed.fence)
    new = ledger.claim(killed.work_id, SURVIVOR)
    with pytest.raises(LeaseLost):
        ledger.complete(killed.work_id, DEAD_AGENT, fence=killed.fence)
    after = ledger.get(killed.work_id)
    assert (after.status, after.agent_id, after.fence) == (Status.CLAIMED, SURVIVOR, new.fence)
    assert ledger.velocity() == {}
    assert ledger.complete(killed.work_id, SURVIVOR, fence=new.fence).status is Status.COMPLETED
