"""Submitting work for the workers: the one path the Python API and the CLI share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from swarm import tracing
from swarm.ledger import Ledger
from swarm.models import Priority, Role, WorkItem
from swarm.workflows import workflow_start


def submit_work(
    ledger: Ledger,
    dispatch: Callable[[WorkItem], None] | None,
    type: str,
    description: str = "",
    *,
    payload: dict[str, Any] | None = None,
    role: Role | str | None = None,
    team: str | None = None,
    priority: Priority | str | None = None,
    points: int | None = None,
    workflow: str | None = None,
    claim_for: str | None = None,
) -> WorkItem:
    """Writes the item (at its workflow's first stage, if any) and sends it with ``dispatch``.

    Without ``dispatch`` the item stays out of the queues, for manual claims. An item claimed in
    the same step (``claim_for``) is not sent either: its agent works on it. With tracing on, the
    item's trace starts in a ``swarm.submit`` span around both the write and the first send.
    """
    stage = None
    if workflow is not None:
        role, stage = workflow_start(ledger.settings, workflow, role)
    with tracing.submit_span():
        item = ledger.submit(
            type,
            description,
            payload=payload,
            role=role,
            team=team,
            priority=priority,
            points=points,
            claim_for=claim_for,
            workflow=workflow,
            stage=stage,
            dispatch=dispatch is not None,
        )
        if dispatch is not None and claim_for is None:
            dispatch(item)
    return item
