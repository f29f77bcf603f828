"""The execute task's Celery state is the ledger's outcome (workers/task_states.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from celery.exceptions import Ignore, Retry

from swarm.models import Status, WorkItem
from workers.execute import Execution, Outcome
from workers.task_states import ItemFailed, ItemRetried, task_result

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _item(status: Status, attempts: int = 0) -> WorkItem:
    return WorkItem(
        id="work_1_ab", type="t", status=status, attempts=attempts, created_at=NOW, updated_at=NOW
    )


class Events:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, type_: str, **fields: Any) -> None:
        self.sent.append((type_, fields))


def test_a_completed_item_is_success() -> None:
    events = Events()
    run = Execution("work_1_ab", Outcome.COMPLETED, _item(Status.COMPLETED))
    assert task_result(run, events) == "completed"
    assert events.sent == []


@pytest.mark.parametrize(("outcome", "said"), [(Outcome.FAILED, "failed: "), (Outcome.DEAD, "dead: ")])
def test_failed_and_dead_items_are_failures_with_the_items_error(outcome: Outcome, said: str) -> None:
    run = Execution("work_1_ab", outcome, _item(Status(outcome.value), attempts=3), "permanent: no spec")
    with pytest.raises(ItemFailed, match=f"^{said}permanent: no spec"):
        task_result(run, Events())


def test_a_retried_item_is_celerys_retry_without_a_new_message() -> None:
    run = Execution("work_1_ab", Outcome.RETRY, _item(Status.PENDING, attempts=1), "transient: timeout")
    with pytest.raises(Retry) as raised:
        task_result(run, Events())
    assert isinstance(raised.value.exc, ItemRetried)
    assert "transient: timeout (attempt 1 of 3;" in str(raised.value.exc)
    assert raised.value.sig is None, "nothing is sent: the ledger's sweep sends it after its backoff"


def test_a_lost_lease_is_a_retry() -> None:
    with pytest.raises(Retry, match="lease lost"):
        task_result(Execution("work_1_ab", Outcome.LEASE_LOST, detail="expired"), Events())


def test_a_cancelled_item_is_revoked() -> None:
    events = Events()
    with pytest.raises(Ignore):
        task_result(Execution("work_1_ab", Outcome.CANCELLED, _item(Status.CANCELLED)), events)
    assert events.sent == [("task-revoked", {"terminated": False, "signum": None, "expired": False})]


def test_skipped_and_left_runs_say_what_they_are() -> None:
    why = "cannot claim work_1_ab: it is already completed"
    skipped = Execution("work_1_ab", Outcome.SKIPPED, detail=why)
    assert task_result(skipped, Events()) == (
        "skipped: duplicate delivery (cannot claim work_1_ab: it is already completed)"
    )
    left = Execution("work_1_ab", Outcome.LEFT, detail="no handler for type 't' on role qa here")
    assert task_result(left, Events()) == "left: no handler for type 't' on role qa here"
