"""Running one work item: claim → handler under a ``LeaseKeeper`` → complete or fail, fenced.

This is the whole of what the Celery execute task does with an item. A transient failure goes
back to pending with a backoff (``backoff_seconds``) after which the dispatch sweep sends it
again. A duplicate delivery finds the item claimed or finished and does nothing. A handler's
options give the claim its lease and attempt budget before it starts (``_with_options``), and
its timeout stops it (``workers.time_limit``).

Observability: the claim and the outcome's write each run in a span (``swarm.claim``, then
``swarm.complete``, ``swarm.fail`` or ``swarm.release``), children of the current span (the
worker's ``run/swarm.execute``); a failure that leaves the item failed or dead ends both the
write's span and the run's with ERROR status and the item's error, the handler's exception on
the run's span. Log lines made meanwhile carry ``work_id``, ``agent_id``, ``role`` and the
item's ``trace_id`` (bound with ``structlog.contextvars``, unbound after).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog
from opentelemetry.trace import Span
from structlog.contextvars import bound_contextvars

from swarm import codec, tracing
from swarm.errors import (
    BadInput,
    ClaimConflict,
    InvalidTransition,
    LeaseLost,
    Misrouted,
    NotFound,
    NotOwner,
    SwarmError,
    Unhandled,
)
from swarm.ledger import Dispatch, Handoff, Ledger
from swarm.models import Priority, Role, Status, WorkItem
from swarm.workflows import SendBackLimit, Workflow, load_workflows, next_handoff
from workers.context import HandlerContext
from workers.handlers import HandlerOptions, HandlerRegistry, PermanentError, TransientError, registry
from workers.lease import LeaseKeeper, tuning
from workers.outage import OutageOutlastedLease, within_lease
from workers.time_limit import run_limited

BACKOFF_BASE_S = 1.0  # first retry after about 1 s, then 2 s, 4 s, ...
BACKOFF_CAP_S = 300.0  # never wait longer than 5 minutes between tries
BACKOFF_JITTER = 0.1  # +-10%, so that a burst of failures does not retry in lockstep

log = structlog.get_logger("swarm.execute")


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"  # back to pending after a transient failure: sent again after a backoff
    DEAD = "dead"
    CANCELLED = "cancelled"
    LEASE_LOST = "lease_lost"  # another holder took over; this run's result was not written
    SKIPPED = "skipped"  # not claimable (a duplicate delivery, or finished meanwhile)
    LEFT = "left"  # not run here (no handler for its type, another role's): left for another worker


@dataclass(frozen=True)
class Execution:
    work_id: str
    outcome: Outcome
    item: WorkItem | None = None
    detail: str = ""

    handoff: Handoff | None = None  # where the completion handed the work on to
    redirect: Dispatch | None = None  # a misrouted message's item: its own role's queue

    @property
    def next_id(self) -> str | None:
        """The workflow's next-stage item this run handed off to, if any."""
        return self.item.next_id if self.item is not None else None

    @property
    def next_dispatch(self) -> Dispatch | None:
        """What sending the next stage needs; the handoff copied type and priority from this item."""
        item = self.item
        if item is None or item.next_id is None or self.handoff is None:
            return None
        role = Role(self.handoff.role)
        return Dispatch(item.next_id, item.type, role, item.priority, traceparent=item.traceparent)


_said: set[tuple[str, str]] = set()  # (type, role) pairs this process said it has no handler for
_said_lock = threading.Lock()


def no_handler(type: str, role: str) -> None:
    """Says, once per type and role in a process, that items of that type are left for others."""
    with _said_lock:
        first = (type, role) not in _said
        _said.add((type, role))
    if first:
        log.warning(
            "no_handler",
            type=type,
            role=role,
            detail="no handler here: its items are left untouched for a worker that has one (said once)",
        )


def backoff_seconds(attempt: int, *, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: about 1 s, 2 s, 4 s... for attempts 1, 2, 3..."""
    base = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** max(0, attempt - 1))
    jitter: float = (rng or random.Random()).uniform(-BACKOFF_JITTER, BACKOFF_JITTER)
    return base * (1 + jitter)


def _finished(item: WorkItem) -> Outcome:
    return {
        Status.COMPLETED: Outcome.COMPLETED,
        Status.FAILED: Outcome.FAILED,
        Status.PENDING: Outcome.RETRY,
        Status.DEAD: Outcome.DEAD,
        Status.CANCELLED: Outcome.CANCELLED,
    }.get(item.status, Outcome.SKIPPED)


def execute(
    ledger: Ledger,
    work_id: str,
    agent_id: str,
    *,
    handlers: HandlerRegistry = registry,
    workflows: Mapping[str, Workflow] | None = None,
    lease_seconds: float | None = None,
    role: Role | str | None = None,
    delivery_id: str | None = None,
    handles: Collection[str] | None = None,
) -> Execution:
    """Claims ``work_id`` for ``agent_id``, runs its handler, and records the outcome.

    With ``role`` it is a queue message's claim (``Ledger.claim_delivery``): the role's most
    urgent owed item of a type in ``handles`` (default: any), normally ``work_id``;
    ``delivery_id`` (the message's task id) makes a retried claim get back the item it already
    claimed. An item of another type, or of another role than the message's, is left untouched
    (``Outcome.LEFT``). Without ``lease_seconds``, the claim uses the lease the improvement
    cycle tuned for the item's role, else the default.
    """
    known = {"work_id": work_id, "agent_id": agent_id}
    if role is not None:
        known["role"] = Role(role).value
    with bound_contextvars(**known):
        if lease_seconds is None:
            lease_seconds = tuning.lease_for(ledger, work_id, known.get("role"))
        claim_sent_at = time.monotonic()  # the lease clock starts no later than the server's
        try:
            with tracing.span("swarm.claim") as span:
                tracing.annotate(span, work_id=work_id, agent_id=agent_id)
                if role is None:
                    item = ledger.claim(work_id, agent_id, lease_seconds=lease_seconds)
                else:  # a queue message: this item, or another its role still owes a delivery
                    item = ledger.claim_delivery(
                        work_id, agent_id, role, lease_seconds=lease_seconds, delivery_id=delivery_id,
                        handles=handles,
                    )  # fmt: skip
                tracing.annotate(span, item)
        except Unhandled as exc:
            no_handler(exc.type, exc.role)
            return Execution(work_id, Outcome.LEFT, detail=str(exc))
        except Misrouted as exc:
            log.warning("misrouted", detail=str(exc))
            home = Dispatch(work_id, exc.type, Role(exc.role), Priority(exc.priority))
            return Execution(work_id, Outcome.LEFT, detail=str(exc), redirect=home)
        except (ClaimConflict, InvalidTransition, NotFound) as exc:
            log.info("skipped", reason=str(exc))
            if isinstance(exc, InvalidTransition) and exc.status == Status.CANCELLED.value:
                return Execution(work_id, Outcome.CANCELLED, detail=str(exc))  # its message's item
            return Execution(work_id, Outcome.SKIPPED, detail=str(exc))
        if item.id != work_id:
            log.info("claimed_instead", work_id=item.id, message_work_id=work_id)
        with bound_contextvars(work_id=item.id, role=item.role.value, trace_id=item.trace_id):
            return _run(
                ledger, item, agent_id, handlers=handlers, workflows=workflows,
                lease_seconds=lease_seconds, claim_sent_at=claim_sent_at,
            )  # fmt: skip


def _run(
    ledger: Ledger,
    item: WorkItem,
    agent_id: str,
    *,
    handlers: HandlerRegistry,
    workflows: Mapping[str, Workflow] | None,
    lease_seconds: float | None,
    claim_sent_at: float | None = None,
) -> Execution:
    """The claimed item's handler, then its outcome, written with the claim's fence."""
    lease = ledger.settings.lease_seconds if lease_seconds is None else lease_seconds
    ctx = HandlerContext(ledger, item, agent_id, lease_seconds=lease, claim_sent_at=claim_sent_at)
    wid, fence = item.id, ctx.fence
    handler = handlers.find(item.type, item.role)
    if handler is None:  # a claim by id (a queue message's claim takes only handled types)
        no_handler(item.type, item.role.value)
        back = Landing(frozenset({Status.PENDING, Status.CANCELLED}), attempts=item.attempts)
        run = _recorded(ctx, "release", lambda: ledger.release(wid, agent_id, fence=fence), back)
        left = f"no handler for type {item.type!r} on role {item.role.value} here; released untouched"
        if run.outcome is Outcome.RETRY:  # back in pending, untouched: no attempt spent
            return dataclasses.replace(run, outcome=Outcome.LEFT, detail=left)
        return run
    options = handler.options
    adopted = _with_options(ctx, options, lease, claim_sent_at)
    if isinstance(adopted, Execution):
        return adopted
    ctx, item = adopted, adopted.item
    lease = ctx.clock.lease_seconds
    ctx.log.debug("started", type=item.type, fence=fence, attempts=item.attempts)
    failure: tuple[str, bool] | None = None  # (reason, retry)
    raised: Exception | None = None  # the handler's exception, for the run's span
    result: Any = None

    def stuck(reason: str) -> None:  # a handler past its timeout that did not stop (time_limit)
        _fail(ctx, f"transient: {reason}", retry=True, backoff=backoff_seconds(item.attempts + 1))

    with LeaseKeeper(ctx, lease):
        try:
            result = run_limited(handler.fn, item, ctx, options.timeout, on_stuck=stuck)
        except LeaseLost as exc:  # a progress report found the lease gone (ctx.lease_lost is set)
            ctx.mark_lease_lost()
            ctx.log.warning("handler_lost_lease", reason=str(exc))
        except TransientError as exc:
            failure, raised = (f"transient: {exc}", True), exc
        except PermanentError as exc:
            failure, raised = (f"permanent: {exc}", False), exc
        except Exception as exc:  # a bug or a crash in user code: retried, then dead (poison)
            ctx.log.exception("handler_crashed")
            failure, raised = (f"{type(exc).__name__}: {exc}", True), exc
    if ctx.lease_lost:
        return Execution(wid, Outcome.LEASE_LOST, detail="the lease was lost while the handler ran")
    if ctx.cancelled:
        released = Landing(frozenset({Status.PENDING, Status.CANCELLED}), attempts=item.attempts)
        return _recorded(ctx, "release", lambda: ledger.release(wid, agent_id, fence=fence), released)
    if failure is not None:
        reason, retry = failure
        return _fail(ctx, reason, retry=retry, backoff=backoff_seconds(item.attempts + 1), exc=raised)
    try:
        handoff = _handoff(
            ctx, workflows if workflows is not None else load_workflows(ledger.settings.workflows_file)
        )
    except (SendBackLimit, PermanentError, BadInput) as exc:
        return _fail(ctx, f"permanent: {exc}")
    try:
        run = _recorded(
            ctx,
            "complete",
            lambda: ledger.complete(
                wid, agent_id, fence=fence, result=result, artifacts=ctx.artifacts, handoff=handoff
            ),
            Landing(frozenset({Status.COMPLETED})),
        )
        return dataclasses.replace(run, handoff=handoff)
    except BadInput as exc:  # e.g. a result that is not JSON: nothing was written
        return _fail(ctx, f"unrecordable result: {exc}")


def _with_options(
    ctx: HandlerContext, options: HandlerOptions, lease: float, claim_sent_at: float | None
) -> HandlerContext | Execution:
    """The claim takes its handler's lease and attempt budget, in one fenced write before the
    handler starts (nothing is written when they are the claim's already)."""
    item = ctx.item
    renew = options.lease if options.lease not in (None, lease) else None
    budget = options.max_attempts if options.max_attempts not in (None, item.max_attempts) else None
    if renew is None and budget is None:
        return ctx
    ledger, agent_id, fence = ctx.ledger, ctx.agent_id, ctx.fence
    sent = time.monotonic()
    try:
        updated = within_lease(
            lambda: ledger.set_options(
                item.id, agent_id, fence=fence, lease_seconds=renew, max_attempts=budget
            ),
            ctx.clock,
            "options",
            wait=_pause,
        )
    except (LeaseLost, NotOwner) as exc:
        ctx.log.warning("lease_lost", during="options", reason=str(exc))
        return Execution(item.id, Outcome.LEASE_LOST, detail=str(exc))
    if renew is None:
        return HandlerContext(ledger, updated, agent_id, lease_seconds=lease, claim_sent_at=claim_sent_at)
    return HandlerContext(ledger, updated, agent_id, lease_seconds=renew, claim_sent_at=sent)


REASON_MAX_CHARS = 8192  # a failure's reason is kept to this; a handler's message may be anything


def recordable(reason: str) -> str:
    """A failure reason the ledger accepts: valid UTF-8 (lone surrogates replaced), cut short
    (well under the ledger's note cap), so that no exception text can make the failure itself
    unrecordable."""
    text = reason.encode("utf-8", "replace").decode("utf-8")
    if len(text) > REASON_MAX_CHARS:
        text = text[: REASON_MAX_CHARS - 20] + f"... ({len(reason)} chars)"
    return text


def _fail(
    ctx: HandlerContext,
    reason: str,
    *,
    retry: bool = False,
    backoff: float = 0.0,
    exc: BaseException | None = None,
) -> Execution:
    """Fails the claimed item (``retry``: back to pending after ``backoff``, or dead); ``exc``, the
    handler's exception, goes on the run's span."""
    reason = recordable(reason)
    ledger, wid, agent_id, fence = ctx.ledger, ctx.item.id, ctx.agent_id, ctx.fence
    if retry:
        failed = Landing(
            frozenset({Status.PENDING, Status.DEAD, Status.CANCELLED}),
            attempts=ctx.item.attempts + 1,
            error=reason,
        )
    else:
        failed = Landing(frozenset({Status.FAILED}), error=reason)
    return _recorded(
        ctx,
        "fail",
        lambda: ledger.fail(wid, agent_id, reason, fence=fence, retry=retry, backoff_seconds=backoff),
        failed,
        exc=exc,
    )


def _handoff(ctx: HandlerContext, workflows: Mapping[str, Workflow]) -> Handoff | None:
    """Where a completed workflow stage goes next (None outside a workflow or at its end)."""
    item = ctx.item
    if item.workflow is None:
        return None
    workflow = workflows.get(item.workflow)
    if workflow is None:
        raise PermanentError(f"unknown workflow {item.workflow!r}")
    return next_handoff(workflow, item, send_back=ctx.send_back_reason is not None)


@dataclass(frozen=True)
class Landing:
    """What an outcome write leaves on the item, so that a write whose reply was lost in an
    outage can be recognised after a retry is refused: one of ``statuses``, this holder's fence
    and agent (``last_agent`` once back in pending), and ``attempts`` or ``error`` when given."""

    statuses: frozenset[Status]
    attempts: int | None = None
    error: str | None = None

    def matches(self, fields: dict[str, str], agent_id: str, fence: int) -> bool:
        if not fields:
            return False
        item = codec.item_from_hash(fields)
        holder = fields.get("last_agent") if item.status is Status.PENDING else item.agent_id
        return (
            item.status in self.statuses
            and item.fence == fence
            and holder == agent_id
            and (self.attempts is None or item.attempts == self.attempts)
            and (self.error is None or item.error == self.error)
        )


def _recorded(
    ctx: HandlerContext,
    kind: str,
    write: Callable[[], WorkItem],
    landing: Landing,
    *,
    exc: BaseException | None = None,
) -> Execution:
    """The fenced write of the outcome (in a ``swarm.<kind>`` span), tried again while Redis is
    unreachable and the lease lasts; a lost lease means another run owns the item now.

    A try whose reply was lost may have landed all the same, and then a retry (ours, or the
    Redis client's own) is refused: so a refusal reads the item, and ``landing`` found there
    (this holder's fence and agent) means that the write landed. A handoff is made once either
    way: it is part of the completion's own atomic step, and its id is the item's ``next_id``.
    """

    def unreachable(exc: BaseException) -> None:
        ctx.log.warning("outcome_write_unreachable", kind=kind, reason=str(exc))

    run_span = tracing.current_span()
    try:
        with tracing.span(f"swarm.{kind}") as span:
            tracing.annotate(span, ctx.item, agent_id=ctx.agent_id, fence=ctx.fence)
            try:
                item = within_lease(write, ctx.clock, kind, wait=_pause, on_unreachable=unreachable)
            except (LeaseLost, NotOwner, InvalidTransition) as refusal:
                if isinstance(refusal, OutageOutlastedLease):
                    raise
                item = _read_landed(ctx, kind, landing, refusal)
            _trace_outcome(item, span, run_span, exc)
    except (LeaseLost, NotOwner) as refused:
        ctx.log.warning("result_refused", reason=str(refused))
        return Execution(ctx.item.id, Outcome.LEASE_LOST, detail=str(refused))
    outcome = _finished(item)
    ctx.log.info("finished", outcome=outcome.value, status=item.status.value, error=item.error)
    return Execution(item.id, outcome, item, item.error or "")


def _trace_outcome(item: WorkItem, write_span: Span, run_span: Span, exc: BaseException | None) -> None:
    """A failed or dead item ends the write's span and the run's with ERROR and its error (the
    handler's exception on the run's); a retried attempt's exception is recorded on the run."""
    if item.status in (Status.FAILED, Status.DEAD):
        error = item.error or item.status.value
        tracing.record_error(write_span, error)
        tracing.record_error(run_span, error, exc)
    elif exc is not None:
        tracing.record_exception(run_span, exc)


def _read_landed(ctx: HandlerContext, kind: str, landing: Landing, refusal: SwarmError) -> WorkItem:
    """The item, if an earlier try of this outcome write landed; else ``LeaseLost``."""
    ledger = ctx.ledger
    key = ledger.keys.item(ctx.item.id)
    fields: dict[str, str] = within_lease(
        lambda: ledger.read(ledger.client.hgetall, key), ctx.clock, f"{kind} check", wait=_pause
    )
    if landing.matches(fields, ctx.agent_id, ctx.fence):
        ctx.log.info("outcome_write_landed", kind=kind, detail=f"its reply was lost; a retry got: {refusal}")
        return codec.item_from_hash(fields)
    raise LeaseLost(str(refusal), holder=ctx.agent_id) from refusal  # e.g. another run finished it


def _pause(seconds: float) -> bool:
    """The pause between tries of an outcome write: nothing cuts it short."""
    time.sleep(seconds)
    return False
