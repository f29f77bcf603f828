"""The numbers the ceremonies share, as pure functions over work items and events.

Each ceremony's ``compute`` reads the ledger and hands lists of ``WorkItem``/``Event`` to these,
so every figure can be checked by hand in a unit test. Conventions used throughout:

- **Percentiles** are *nearest-rank*: the p-th percentile of n sorted values is the value at
  rank ``ceil(p / 100 * n)`` (1-based). It is always one of the observed values, and p50 of
  ``[1, 2, 3, 4]`` is 2.
- **Velocity** is a sum of ``points`` of completed items. The ledger itself counts a workflow's
  points once, at its last stage (a handoff copies the points to the next stage); here
  ``workflow_ends`` picks those items (completed, no ``next_id``) when that is what is meant.
- **Objectives** are followed along their ``next_id`` handoff chain (see ``objective_state``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from swarm.calendar import Period
from swarm.models import Event, EventKind, Priority, Role, Status, WorkItem

# WSJF's cost of delay by priority (SAFe's Fibonacci-like scale); ``payload["cost_of_delay"]``
# (an int) overrides it for one item.
COST_OF_DELAY: dict[Priority, int] = {
    Priority.CRITICAL: 20,
    Priority.HIGH: 13,
    Priority.MEDIUM: 8,
    Priority.LOW: 3,
}
# An objective's business value (1-10) by priority, unless ``payload["business_value"]`` gives one.
BUSINESS_VALUE: dict[Priority, int] = {
    Priority.CRITICAL: 10,
    Priority.HIGH: 8,
    Priority.MEDIUM: 5,
    Priority.LOW: 2,
}
MAX_CHAIN = 1000  # stages followed along one handoff chain (a guard, never reached in practice)


# -- percentiles and velocity -------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (see the module docstring); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def points_by(items: Iterable[WorkItem], key: Callable[[WorkItem], str]) -> dict[str, int]:
    """Sum of points per ``key`` (e.g. team or role), keys sorted."""
    sums: Counter[str] = Counter()
    for item in items:
        sums[key(item)] += item.points
    return dict(sorted(sums.items()))


def workflow_ends(items: Iterable[WorkItem]) -> list[WorkItem]:
    """Completed items that handed off to nothing: a workflow's last stage, or a lone item."""
    return [i for i in items if i.status is Status.COMPLETED and i.next_id is None]


def within(items: Iterable[WorkItem], period: Period) -> list[WorkItem]:
    """Items whose ``completed_at`` (their end, for any terminal status) falls in ``period``."""
    return [i for i in items if i.completed_at is not None and period.contains(i.completed_at)]


# -- capacity and WSJF --------------------------------------------------------------------------


class Capacity(BaseModel):
    """A team's capacity: points per iteration, and where the number came from."""

    team: str
    per_iteration: float
    basis: str  # "history" (mean over ``iterations``) or "default" (no history)
    iterations: list[str]
    history_points: int = 0  # workflow points completed in those iterations


def capacities(
    completed: Sequence[WorkItem], iterations: Sequence[Period], default: int, teams: Iterable[str]
) -> dict[str, Capacity]:
    """Each team's capacity: its mean workflow velocity over ``iterations``, or ``default``.

    Only workflow ends count, because a backlog item's points are the whole workflow's (each
    stage carries a copy); counting every stage would inflate capacity by the number of stages.
    The mean divides by every iteration given, including ones where the team finished nothing.
    """
    ended = [i for p in iterations for i in within(workflow_ends(completed), p)]
    totals = points_by(ended, lambda i: i.team)
    keys = [p.key for p in iterations]
    found: dict[str, Capacity] = {}
    for team in sorted(set(teams) | set(totals)):
        total = totals.get(team, 0)
        if iterations and total > 0:
            found[team] = Capacity(
                team=team,
                per_iteration=total / len(iterations),
                basis="history",
                iterations=keys,
                history_points=total,
            )
        else:
            found[team] = Capacity(team=team, per_iteration=float(default), basis="default", iterations=[])
    return found


def _int_in(payload: dict[str, object], name: str) -> int | None:
    value = payload.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cost_of_delay(item: WorkItem) -> int:
    override = _int_in(item.payload, "cost_of_delay")
    return COST_OF_DELAY[item.priority] if override is None else override


def wsjf(item: WorkItem) -> float:
    """Weighted shortest job first: cost of delay / job size, job size = max(points, 1)."""
    return cost_of_delay(item) / max(item.points, 1)


def business_value(item: WorkItem) -> int:
    """``payload["business_value"]`` when it is an int from 1 to 10, else by priority."""
    given = _int_in(item.payload, "business_value")
    return given if given is not None and 1 <= given <= 10 else BUSINESS_VALUE[item.priority]


def plan_order(items: Iterable[WorkItem]) -> list[WorkItem]:
    """Priority first (critical first), then WSJF descending, then id (oldest first)."""
    return sorted(items, key=lambda i: (i.priority.rank, -wsjf(i), i.id))


def choose(items: Iterable[WorkItem], capacity: float) -> tuple[list[WorkItem], list[WorkItem]]:
    """Greedy in ``plan_order``: an item is taken when its points fit what is left, else it is
    left over and the next (perhaps smaller) item is tried. Returns (chosen, leftovers)."""
    chosen: list[WorkItem] = []
    leftovers: list[WorkItem] = []
    left = capacity
    for item in plan_order(items):
        if item.points <= left:
            chosen.append(item)
            left -= item.points
        else:
            leftovers.append(item)
    return chosen, leftovers


def predictability(planned: int, actual: int) -> float | None:
    """Actual over planned business value; None when nothing was planned."""
    return actual / planned if planned > 0 else None


# -- objectives along their handoff chains ----------------------------------------------------


class ObjectiveState(StrEnum):
    DONE = "done"
    IN_PROGRESS = "in_progress"
    NOT_STARTED = "not_started"
    FAILED = "failed"  # a stage ended failed, dead or cancelled
    MISSING = "missing"  # the objective's item is not in the ledger


@dataclass(frozen=True)
class ChainState:
    state: ObjectiveState
    stages_completed: int
    current: WorkItem | None  # the stage the chain has reached
    done_at: datetime | None


def objective_state(chain: Sequence[WorkItem], as_of: datetime) -> ChainState:
    """Where an objective's chain (its item, then each ``next_id``) stood at ``as_of``.

    A stage counts as completed when it completed before ``as_of``. The chain is *done* when its
    last stage completed (and handed off to nothing) before ``as_of``; *failed* when the first
    unfinished stage ended failed, dead or cancelled before it; *in progress* when a stage has
    completed or the current one has been claimed (a retried item keeps its attempts); else *not
    started*. An unfinished stage's held/attempts state is read as it is now.
    """
    if not chain:
        return ChainState(ObjectiveState.MISSING, 0, None, None)
    done = 0
    for stage in chain:
        finished = stage.completed_at is not None and stage.completed_at < as_of
        if not (stage.status is Status.COMPLETED and finished):
            if stage.status.terminal and finished:
                return ChainState(ObjectiveState.FAILED, done, stage, None)
            started = (
                done > 0
                or stage.status.held
                or stage.attempts > 0
                or (stage.claimed_at is not None and stage.claimed_at < as_of)
            )
            state = ObjectiveState.IN_PROGRESS if started else ObjectiveState.NOT_STARTED
            return ChainState(state, done, stage, None)
        done += 1
    last = chain[-1]
    if last.next_id is not None:  # handed off to a stage that is not in the ledger (any more)
        return ChainState(ObjectiveState.IN_PROGRESS, done, last, None)
    return ChainState(ObjectiveState.DONE, done, last, last.completed_at)


def chains_from(items: dict[str, WorkItem], heads: Iterable[str]) -> dict[str, list[WorkItem]]:
    """Each head's chain, following ``next_id`` through ``items`` (as far as it is known)."""
    found: dict[str, list[WorkItem]] = {}
    for head in heads:
        chain: list[WorkItem] = []
        at: str | None = head
        while at is not None and at in items and len(chain) < MAX_CHAIN:
            chain.append(items[at])
            at = items[at].next_id
        found[head] = chain
    return found


# -- failure causes -----------------------------------------------------------------------------

_ID = re.compile(r"\b(work|agent)_[0-9A-Za-z_]+")
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")
CAUSE_MAX_CHARS = 200
NO_ERROR = "(no error recorded)"


def normalise_error(error: str | None) -> str:
    """What makes two errors one cause: the first line, with ids and numbers blanked out.

    ``work_…``/``agent_…`` ids become ``<work>``/``<agent>``, digit runs ``<n>``, whitespace is
    collapsed, and the result is cut to 200 characters.
    """
    first = (error or "").strip().splitlines()[0] if (error or "").strip() else ""
    text = _ID.sub(lambda m: f"<{m.group(1)}>", first)
    text = _SPACE.sub(" ", _DIGITS.sub("<n>", text)).strip()
    return text[:CAUSE_MAX_CHARS] or NO_ERROR


@dataclass(frozen=True)
class Failure:
    """One failure occurrence: an item and the error it failed with."""

    work_id: str
    type: str
    role: Role
    team: str
    error: str


class FailureCause(BaseModel):
    type: str
    cause: str  # the normalised error
    example_error: str  # one occurrence's first line, as it was
    count: int  # occurrences
    items: int  # distinct items
    example_ids: list[str]
    role: Role  # the most common role among the failing items
    team: str  # the most common team


EXAMPLE_IDS = 5


def _most_common(values: Iterable[str]) -> str:
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))  # ties: alphabetical, so reports are stable


def group_failures(failures: Iterable[Failure], top: int) -> list[FailureCause]:
    """Failures grouped by (item type, normalised error); the ``top`` largest by occurrences
    (then distinct items, then type and cause, so equal counts order the same way each time)."""
    groups: dict[tuple[str, str], list[Failure]] = {}
    for failure in failures:
        groups.setdefault((failure.type, normalise_error(failure.error)), []).append(failure)
    causes = []
    for (wtype, cause), members in groups.items():
        ids = list(dict.fromkeys(f.work_id for f in members))
        first = (members[0].error or "").strip().splitlines()
        causes.append(
            FailureCause(
                type=wtype,
                cause=cause,
                example_error=(first[0] if first else NO_ERROR)[:CAUSE_MAX_CHARS],
                count=len(members),
                items=len(ids),
                example_ids=ids[:EXAMPLE_IDS],
                role=Role(_most_common(f.role.value for f in members)),
                team=_most_common(f.team for f in members),
            )
        )
    causes.sort(key=lambda c: (-c.count, -c.items, c.type, c.cause))
    return causes[:top]


def failures_in(
    events: Iterable[Event], items: dict[str, WorkItem], ended: Iterable[WorkItem]
) -> list[Failure]:
    """The failure occurrences of a window, each counted once:

    - every ``failed`` event (its ``detail`` is the error; a retried failure is an occurrence too);
    - a ``dead`` event of an item with no ``failed`` event in the window (reaped to dead after
      lost leases): the item's last error;
    - a failed or dead item that ended in the window with no event there (the stream is capped,
      so old events may be gone): its ``error``.

    Events of items no longer in ``items`` are skipped: their type and role are unknown.
    """
    found: list[Failure] = []
    seen: set[str] = set()
    stream = list(events)
    for event in stream:
        item = items.get(event.work_id or "")
        if event.event is EventKind.FAILED and item is not None:
            found.append(Failure(item.id, item.type, item.role, item.team, event.detail))
            seen.add(item.id)
    for event in stream:
        item = items.get(event.work_id or "")
        if event.event is EventKind.DEAD and item is not None and item.id not in seen:
            found.append(Failure(item.id, item.type, item.role, item.team, item.error or ""))
            seen.add(item.id)
    for item in ended:
        if item.status in (Status.FAILED, Status.DEAD) and item.id not in seen:
            found.append(Failure(item.id, item.type, item.role, item.team, item.error or ""))
            seen.add(item.id)
    return found
