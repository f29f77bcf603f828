"""What the execute task's Celery state says: the ledger's outcome, so that Flower tells the truth.

| the run's outcome | Celery state | what Flower shows |
|---|---|---|
| completed | SUCCESS | the result ``'completed'`` |
| failed, dead | FAILURE | ``ItemFailed('failed: <error>')``, ``ItemFailed('dead: <error> (...)')`` |
| a transient failure, retried | RETRY | ``ItemRetried('<error> (attempt N of M; ...)')`` |
| the lease lost | RETRY | ``ItemRetried('lease lost: ...')``: the ledger runs the item again (or dead) |
| cancelled (running, or before it ran) | REVOKED | a ``task-revoked`` event |
| a duplicate delivery | SUCCESS | ``'skipped: duplicate delivery (<why>)'`` |
| left for another worker | SUCCESS | ``'left: no handler for type ... here ...'``, ``'left: ... re-sent'`` |

Every one of them acknowledges the message (``acks_late``), and none makes Celery send anything:

- ``ItemFailed`` is an expected exception (the task's ``throws``): Celery logs one line without a
  traceback, acknowledges (``task_acks_on_failure_or_timeout``), and never retries it;
- ``Retry`` is raised without a new message (``Task.retry`` would send one): the ledger's sweep
  sends the item again when its backoff ends, as a new task with the same arguments;
- a cancel sends the ``task-revoked`` event Celery sends for a revoked task, then raises
  ``Ignore`` (acknowledged, no other state): Celery has no other way to end a task as revoked.

The poison-message guard never sees any of this: it checks messages before Celery runs them.
"""

from __future__ import annotations

from collections.abc import Callable

from celery.exceptions import Ignore, Retry

from workers.execute import Execution, Outcome

SendEvent = Callable[..., object]  # Task.send_event


class ItemFailed(Exception):
    """The item failed for good or went dead: the task ends FAILURE with the item's error."""


class ItemRetried(Exception):
    """The item goes back to pending: the task ends RETRY; the ledger sends it again."""


def _attempts(run: Execution) -> str:
    item = run.item
    return "" if item is None else f" (after {item.attempts} of {item.max_attempts} attempts)"


def task_result(run: Execution, send_event: SendEvent) -> str:
    """The task's return value for ``run``, or the exception that gives it its true state."""
    outcome, detail = run.outcome, run.detail
    if outcome is Outcome.COMPLETED:
        return outcome.value
    if outcome is Outcome.FAILED:
        raise ItemFailed(f"failed: {detail}")
    if outcome is Outcome.DEAD:
        raise ItemFailed(f"dead: {detail}{_attempts(run)}")
    if outcome is Outcome.RETRY:
        item = run.item
        tries = "" if item is None else f"attempt {item.attempts} of {item.max_attempts}; "
        reason = ItemRetried(f"{detail} ({tries}the ledger sends it again after its backoff)")
        raise Retry(str(reason), exc=reason)
    if outcome is Outcome.LEASE_LOST:
        reason = ItemRetried(f"lease lost: {detail} (the ledger runs it again, or it is dead)")
        raise Retry(str(reason), exc=reason)
    if outcome is Outcome.CANCELLED:
        send_event("task-revoked", terminated=False, signum=None, expired=False)
        raise Ignore(f"cancelled: {run.work_id}")
    if outcome is Outcome.SKIPPED:
        return f"skipped: duplicate delivery ({detail})"
    return f"left: {detail}"  # Outcome.LEFT
