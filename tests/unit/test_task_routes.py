"""Celery's own router sends ``swarm.execute`` to its role's queue at its item's priority, whoever
sends it (``.delay``, ``apply_async``, ``send_task``, Flower); a queue the sender names wins."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from swarm.celery_app import EXECUTE_TASK, create_app
from swarm.ledger import Ledger
from swarm.settings import Settings
from swarm.task_routes import ExecuteRouter

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens there: a read there fails at once


@pytest.fixture
def app_and_ledger(settings: Settings) -> tuple[Any, Ledger]:
    app = create_app(settings, UNREACHABLE)
    router = next(r for r in app.conf.task_routes if isinstance(r, ExecuteRouter))
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    router._client = client  # the ledger's Redis, as the broker's URL would give
    return app, Ledger(client, settings)


def _queue(app: Any, name: str, args: Any = (), kwargs: Any = None, **options: Any) -> str:
    """The queue Celery's router picks for a call, as ``send_task``/``apply_async`` ask it."""
    route = app.amqp.router.route(options, name, args, kwargs)
    return str(route["queue"].name)


def test_an_execute_call_goes_to_its_roles_queue_at_its_items_priority(
    app_and_ledger: tuple[Any, Ledger], prefix: str
) -> None:
    app, ledger = app_and_ledger
    urgent = ledger.submit("review", "x", role="qa", priority="critical")
    assert _queue(app, EXECUTE_TASK, [urgent.id, "review", "qa"]) == f"{prefix}.qa.critical"
    plan = ledger.submit("plan", "x", role="pm", priority="low")
    kwargs = {"work_id": plan.id, "work_type": "plan", "role": "pm"}
    assert _queue(app, EXECUTE_TASK, kwargs=kwargs) == f"{prefix}.pm.low", "by name too"


def test_an_unknown_item_goes_to_its_roles_medium_queue(
    app_and_ledger: tuple[Any, Ledger], prefix: str
) -> None:
    app, _ = app_and_ledger
    assert _queue(app, EXECUTE_TASK, ["work_1_ab", "review", "devops"]) == f"{prefix}.devops.medium"


def test_without_redis_the_role_still_decides(settings: Settings, prefix: str) -> None:
    app = create_app(settings, UNREACHABLE)
    assert _queue(app, EXECUTE_TASK, ["work_1_ab", "review", "architect"]) == f"{prefix}.architect.medium"


def test_a_queue_named_by_the_sender_wins(app_and_ledger: tuple[Any, Ledger], prefix: str) -> None:
    app, _ = app_and_ledger
    chosen = f"{prefix}.developer.high"
    assert _queue(app, EXECUTE_TASK, ["work_1_ab", "review", "qa"], queue=chosen) == chosen


def test_other_tasks_and_malformed_calls_keep_celerys_routes(
    app_and_ledger: tuple[Any, Ledger], prefix: str
) -> None:
    app, _ = app_and_ledger
    assert _queue(app, "swarm.ceremony", ["art_sync"]) == f"{prefix}.ceremonies"
    default = f"{prefix}.developer.medium"
    assert _queue(app, EXECUTE_TASK, ["work_1_ab", "review", "nobody"]) == default
    assert _queue(app, EXECUTE_TASK, []) == default
