"""One self-improvement cycle (SPEC §9): ``run_cycle`` runs its phases and records each one.

The phases run in this order, each recorded with its evidence in the cycle's record:

1. **discovery** of the window's metrics per role and of the live pool;
5-6. **monitoring and learning**: the earlier cycles' deployments still to be judged are
   measured since they were deployed, kept or rolled back. This comes before this cycle's own
   changes so that a rollback and a new change never touch a pool at once, and so that a change
   still being monitored holds its target back from another change;
2. **generation**: the deterministic analyser's proposals, then the AI advisor's (optional);
3. **validation**: guardrails, then a dry run of each proposal;
4. **deployment** of the accepted actions, each with its before-snapshot.

Tracing (``swarm.tracing``, when on): the cycle runs in a ``swarm.improve`` span, and each phase
in a child span named after it (``swarm.improve.discovery``, ``swarm.improve.generation``...).

A dry run stops after validation: it deploys nothing and judges nothing. ``keys.improve_lock``
keeps two cycles (two beats, or a manual run during a scheduled one) from overlapping: the
second raises ``CycleRunning``. The lock is renewed at each phase and each deployment.

The record is written as the cycle goes: after every phase (a phase that raises is recorded
too), and around every deployment (written ahead as *pending* with its before-snapshot, then
again once applied). A cycle whose process died stays *running* until the next cycle closes it
as *abandoned* and judges what it deployed (``learning.close_abandoned``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime

import structlog
from celery import Celery
from redis.exceptions import LockError
from redis.lock import Lock

from ceremonies.improve import records
from ceremonies.improve.advisor import advise
from ceremonies.improve.analyser import analyse
from ceremonies.improve.deploy import Deployment, execute, plan
from ceremonies.improve.discovery import Discovery, discover, refresh_pool
from ceremonies.improve.guardrails import validate
from ceremonies.improve.learning import learn
from ceremonies.improve.records import Cycle, CycleStatus, PhaseRecord, past_cycles
from ceremonies.improve.vocabulary import FileWorkItem, Proposal, Source
from swarm import tracing
from swarm.errors import SwarmError
from swarm.ledger import Ledger
from swarm.settings import Settings

LOCK_MARGIN_S = 120.0  # the lock outlasts the advisor's timeout by this much
FILED_LOOK_BACK = 50  # past cycles whose filed dead items are not filed again

log = structlog.get_logger("swarm.improve")
_held: ContextVar[tuple[Ledger, Lock] | None] = ContextVar("improve_lock", default=None)

__all__ = ["Cycle", "CycleRunning", "past_cycles", "run_cycle"]


class CycleRunning(SwarmError):
    """Another cycle holds the improvement lock."""

    exit_code = 3


def lock_seconds(settings: Settings) -> float:
    """How long a cycle may hold the lock before it is presumed dead."""
    return settings.improve_advisor_timeout + LOCK_MARGIN_S


def run_cycle(ledger: Ledger, app: Celery, *, dry_run: bool = False, now: datetime | None = None) -> Cycle:
    """Runs one cycle now and returns its record (also stored in Redis).

    Raises ``CycleRunning`` when another cycle is running; any other failure is recorded in the
    cycle (status ``failed``) and raised.
    """
    lock = ledger.client.lock(ledger.keys.improve_lock, timeout=lock_seconds(ledger.settings), blocking=False)
    if not ledger.read(lock.acquire):
        log.info("cycle_skipped", reason="a cycle is running")
        raise CycleRunning("an improvement cycle is running already; try again when it has finished")
    held = _held.set((ledger, lock))
    try:
        return _run(ledger, app, dry_run, now or ledger.server_time())
    finally:
        _held.reset(held)
        with contextlib.suppress(LockError):  # held past its timeout: it has expired already
            ledger.read(lock.release)


@contextlib.contextmanager
def _phase(cycle: Cycle, name: str) -> Iterator[list[str]]:
    """Times a phase, in its span; the body appends its one-line summary to the yielded list."""
    started, clock = datetime.now(cycle.started_at.tzinfo), time.monotonic()
    summary: list[str] = []
    words = [w for w in name.split() if not w[0].isdigit()]
    _renew()
    try:
        with tracing.span("swarm.improve." + "_".join(words)) as span:
            if span.is_recording():
                span.set_attribute("swarm.cycle_id", cycle.id)
                span.set_attribute("swarm.phase", name)
            yield summary
    except Exception as exc:
        summary.append(f"failed: {type(exc).__name__}: {exc}")
        raise
    finally:  # a phase that raises is recorded too, and the record written at once
        seconds = round(time.monotonic() - clock, 3)
        record = PhaseRecord(name=name, started_at=started, seconds=seconds, summary="; ".join(summary))
        cycle.phases.append(record)
        _save(cycle)


def _renew() -> None:
    """Renews the cycle's lock for another ``lock_seconds``; raises ``CycleRunning`` if it was lost
    (it expired and another cycle may have taken it)."""
    held = _held.get()
    if held is not None:
        ledger, lock = held
        try:
            ledger.read(lock.extend, lock_seconds(ledger.settings), replace_ttl=True)
        except LockError:
            raise CycleRunning("this cycle's lock expired; another cycle may be running") from None


def _save(cycle: Cycle) -> None:
    held = _held.get()
    if held is not None:
        records.save(held[0], cycle)


def _run(ledger: Ledger, app: Celery, dry_run: bool, now: datetime) -> Cycle:
    settings = ledger.settings
    window = settings.improve_window_seconds
    cycle = Cycle(id=records.new_cycle_id(now), started_at=now, dry_run=dry_run, window_s=window)
    records.save(ledger, cycle)
    log.info("cycle_started", cycle_id=cycle.id, dry_run=dry_run)
    try:
        with tracing.span("swarm.improve") as span:
            if span.is_recording():
                span.set_attribute("swarm.cycle_id", cycle.id)
            _phases(cycle, ledger, app)
        cycle.status = CycleStatus.COMPLETED
    except Exception as exc:
        cycle.status, cycle.error = CycleStatus.FAILED, f"{type(exc).__name__}: {exc}"
        log.exception("cycle_failed", cycle_id=cycle.id)
        raise
    finally:
        cycle.finished_at = ledger.server_time()
        records.save(ledger, cycle)
    deployed = len(cycle.deployments)
    log.info("cycle_finished", cycle_id=cycle.id, proposals=len(cycle.proposals), deployed=deployed)
    return cycle


def _phases(cycle: Cycle, ledger: Ledger, app: Celery) -> None:
    with _phase(cycle, "1 discovery") as summary:
        discovery = discover(ledger, app, cycle.started_at)
        summary.append(_describe(discovery))
    cycle.discovery = discovery
    monitored: frozenset[str] = frozenset()
    if not cycle.dry_run:
        with _phase(cycle, "5-6 monitoring and learning") as summary:
            cycle.learned, monitored = learn(ledger, app, cycle.id, ledger.server_time())
            summary.extend(
                [f"{x.action}: {x.judgement.outcome}" for x in cycle.learned] or ["nothing to judge"]
            )
        if any(x.judgement.rolled_back for x in cycle.learned):  # the pool may have changed
            discovery = cycle.discovery = refresh_pool(discovery, ledger, app)
    with _phase(cycle, "2 generation") as summary:
        cycle.proposals = _generate(cycle, ledger, discovery)
        summary.append(f"{len(cycle.proposals)} proposal(s)")
        if cycle.advisor is not None:
            summary.append(
                "advisor " + ("used" if cycle.advisor.used else f"ignored: {cycle.advisor.reason}")
            )
    with _phase(cycle, "3 validation") as summary:
        cost = cycle.advisor.cost_usd if cycle.advisor else None
        cycle.verdicts = validate(
            cycle.proposals, discovery, ledger, app, advisor_cost=cost, monitored=monitored
        )
        summary.append(f"{sum(v.accepted for v in cycle.verdicts)} of {len(cycle.verdicts)} accepted")
    if cycle.dry_run:
        return
    with _phase(cycle, "4 deployment") as summary:
        for verdict in (v for v in cycle.verdicts if v.accepted):
            action = verdict.proposal.action
            deployment = _deploy(cycle, verdict.proposal, discovery, ledger, app)
            summary.append(f"{action.describe()}: {'ok' if deployment.ok else deployment.error}")
        if not cycle.deployments:
            summary.append("nothing to deploy")


def _deploy(
    cycle: Cycle, proposal: Proposal, discovery: Discovery, ledger: Ledger, app: Celery
) -> Deployment:
    """Writes the deployment ahead (pending, with its before-snapshot), applies it, writes it again."""
    _renew()
    at = ledger.server_time()
    cycle.deployments.append(plan(proposal.action, proposal.source, discovery, ledger, app, at=at))
    records.save(ledger, cycle)
    cycle.deployments[-1] = execute(cycle.deployments[-1], discovery, ledger, app)
    records.save(ledger, cycle)
    return cycle.deployments[-1]


def _generate(cycle: Cycle, ledger: Ledger, discovery: Discovery) -> list[Proposal]:
    """The analyser's proposals, then the advisor's (when it is on and its answer is valid)."""
    actions = analyse(discovery, ledger.settings, _filed(ledger))
    proposals = [Proposal(action=a, source=Source.ANALYSER) for a in actions]
    if ledger.settings.improve_advisor:
        cycle.advisor = advise(ledger, discovery, cycle.id)
        proposals += [Proposal(action=a, source=Source.ADVISOR) for a in cycle.advisor.proposals]
    return proposals


def _filed(ledger: Ledger) -> set[str]:
    """Dead items whose investigation a recent cycle filed already."""
    return {
        wid
        for cycle in past_cycles(ledger, FILED_LOOK_BACK)
        for d in cycle.deployments
        if d.ok and isinstance(d.action, FileWorkItem)
        for wid in d.action.evidence
    }


def _describe(discovery: Discovery) -> str:
    busy = [
        f"{m.role.value}: {m.queue_depth} pending, {m.completed} done"
        + (f", {m.throughput:.2f}/s" if m.throughput is not None else "")
        + (f", {m.concurrency} slot(s)" if m.concurrency is not None else "")
        for m in discovery.roles.values()
        if m.queue_depth or m.completed or m.failed or m.dead_items or m.concurrency
    ]
    return "; ".join(busy) or "no activity"
