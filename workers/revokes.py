"""Revoke means cancel: a swarm task revoked through Celery cancels the item its arguments name.

``celery control revoke ID`` (or ``app.control.revoke``) is a broadcast: every running worker
adds the id to its revoked set. Celery then drops the message when a worker takes it and sends
``task_revoked``; ``on_task_revoked`` cancels the item there (a queued item is cancelled at once).
A revoke of a task that is running (without ``terminate``) does not stop it in Celery;
``RunningRevokes``, checked by the worker's upkeep thread, cancels its item, so its handler
sees ``ctx.cancelled`` at its next heartbeat (with ``terminate``, ``task_revoked`` does it).
The cancel's event names the revoke (``revoked: Celery task <id>``).

Celery keeps revoked ids in the memory of the workers running when the revoke was sent (and
hands them to workers that start while one of those runs). A revoke that reaches no worker,
because none was running, is lost: the task then runs when a worker takes it. ``swarm cancel``
is stored in Redis and reaches the item whatever runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog
from celery.worker import state as worker_state

from swarm.errors import InvalidTransition, NotFound, SwarmError
from swarm.ledger import Ledger

log = structlog.get_logger("swarm.revoke")


def cancel_for_revoke(ledger: Ledger, task_id: str, args: Sequence[Any]) -> bool:
    """Cancels the item of a revoked execute task with ``args``. True once that is settled
    (cancelled, or nothing to cancel: finished or gone); False when Redis did not answer."""
    if not args or not isinstance(args[0], str):
        return True
    work_id = args[0]
    try:
        item = ledger.cancel(work_id, reason=f"revoked: Celery task {task_id}")
    except (InvalidTransition, NotFound) as exc:
        log.info("revoked_nothing_to_cancel", work_id=work_id, task_id=task_id, reason=str(exc))
        return True
    except SwarmError as exc:
        log.warning("revoked_not_cancelled", work_id=work_id, task_id=task_id, reason=str(exc))
        return False
    log.info("revoked_cancelled", work_id=work_id, task_id=task_id, status=item.status.value)
    return True


def on_task_revoked(task_name: str, ledger: Callable[[], Ledger]) -> Callable[..., None]:
    """A ``task_revoked`` receiver for ``task_name``. An expired message is no cancel: its item
    stays owed, and the ledger sends it another message."""

    def receiver(sender: Any = None, request: Any = None, expired: bool = False, **_: Any) -> None:
        if getattr(sender, "name", None) != task_name or request is None:
            return
        task_id = str(getattr(request, "id", "") or "")
        args = list(getattr(request, "args", None) or [])
        if expired:
            log.info("revoked_expired", task_id=task_id, args=args[:1])
            return
        cancel_for_revoke(ledger(), task_id, args)

    return receiver


class RunningRevokes:
    """Cancels the items of running ``task_name`` tasks whose ids were revoked (each once)."""

    def __init__(self, ledger: Ledger, task_name: str) -> None:
        self.ledger = ledger
        self.task_name = task_name
        self._cancelled: set[str] = set()

    def __call__(self) -> None:
        try:
            running = [r for r in list(worker_state.active_requests) if r.name == self.task_name]
        except RuntimeError:  # the consumer changed the set meanwhile: look again next pass
            return
        for request in running:
            if request.id not in worker_state.revoked or request.id in self._cancelled:
                continue
            if cancel_for_revoke(self.ledger, request.id, list(request.args or [])):
                self._cancelled.add(request.id)  # else tried again at the next pass
        live = {r.id for r in running}
        self._cancelled &= live  # forget the finished ones
