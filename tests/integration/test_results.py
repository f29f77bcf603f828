"""Results without a result backend: ``Swarm.wait`` / ``swarm wait`` follow an item (and a workflow
to its last stage) through the event stream, ``swarm retry`` re-runs failed and dead items, and
``swarm show --chain`` shows a workflow's stages in order. On a real Redis: the waits block in
XREAD, and each test checks that they did before it makes the move they wait for."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from swarm import InvalidTransition, NotFound, Settings, Status, Swarm, WaitTimeout
from swarm.cli import app
from swarm.ledger import Handoff, Ledger
from swarm.models import EventKind, Role, WorkItem

from .polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2

AGENT = "dev-1"


@pytest.fixture
def swarm(redis_url: str, settings: Settings, real_redis: redis.Redis) -> Iterator[Swarm]:
    with Swarm(redis_url, agent_id="ops-1", settings=settings) as client:
        yield client


def blocked_in_xread(client: redis.Redis) -> bool:
    """A client of this test's database is blocked reading the event stream."""
    db = str(client.connection_pool.connection_kwargs.get("db", 0))
    return any(
        c.get("cmd") == "xread" and "b" in c.get("flags", "") and str(c.get("db")) == db
        for c in client.client_list()
    )


def once_blocked(client: redis.Redis, move: Callable[[], object]) -> threading.Thread:
    """Runs ``move`` in a thread as soon as a waiter is blocked in XREAD (not before: the wait
    must wake on the event, not find the work finished when it starts)."""

    def run() -> None:
        wait_until(lambda: blocked_in_xread(client), "the waiter to block on the event stream")
        move()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def finish(ledger: Ledger, item: WorkItem, how: str = "complete", **kwargs: Any) -> WorkItem:
    held = ledger.claim(item.id, AGENT)
    if how == "complete":
        return ledger.complete(item.id, AGENT, fence=held.fence, **kwargs)
    return ledger.fail(item.id, AGENT, "it broke", fence=held.fence, **kwargs)


# -- Swarm.wait --------------------------------------------------------------------------------


def test_wait_returns_a_finished_item_at_once(swarm: Swarm) -> None:
    item = finish(swarm.ledger, swarm.submit("feature", "done already", enqueue=False), result={"n": 1})
    got = swarm.wait(item, timeout=0)  # no time at all: nothing to wait for
    assert (got.id, got.status, got.result) == (item.id, Status.COMPLETED, {"n": 1})


def test_wait_wakes_on_the_completion_event_with_the_result(swarm: Swarm, real_redis: redis.Redis) -> None:
    item = swarm.submit("feature", "wait for me", enqueue=False)
    mover = once_blocked(real_redis, lambda: finish(swarm.ledger, item, result={"pr": 42}))
    got = swarm.wait(item.id, timeout=60)
    mover.join()
    assert (got.status, got.result) == (Status.COMPLETED, {"pr": 42})


@pytest.mark.parametrize("ending", ["failed", "dead", "cancelled"])
def test_wait_returns_failed_dead_and_cancelled_items_as_they_ended(
    swarm: Swarm, real_redis: redis.Redis, ending: str
) -> None:
    item = swarm.ledger.submit("feature", "doomed", dispatch=False, max_attempts=1)
    moves = {
        "failed": lambda: finish(swarm.ledger, item, "fail"),
        "dead": lambda: finish(swarm.ledger, item, "fail", retry=True),
        "cancelled": lambda: swarm.cancel(item.id),
    }
    mover = once_blocked(real_redis, moves[ending])
    got = swarm.wait(item, timeout=60)
    mover.join()
    assert got.status is Status(ending)
    if ending != "cancelled":
        assert got.error == "it broke"


def test_wait_follows_a_workflow_to_its_last_stage(swarm: Swarm, real_redis: redis.Redis) -> None:
    ledger = swarm.ledger
    first = ledger.submit("feature", "three stages", dispatch=False, workflow="bugfix", stage="developer")

    def run_stages() -> None:
        stage = first
        for role in (Role.QA, Role.DEVOPS):
            done = finish(ledger, stage, handoff=Handoff(role, role.value))
            assert done.next_id is not None
            stage = ledger.get(done.next_id)
            wait_until(lambda: blocked_in_xread(real_redis), "the waiter to follow the handoff")
        finish(ledger, stage, result="shipped")

    mover = once_blocked(real_redis, run_stages)
    last = swarm.wait(first, timeout=60)
    mover.join()
    assert (last.role, last.status, last.result) == (Role.DEVOPS, Status.COMPLETED, "shipped")
    assert last.parent_id is not None
    assert ledger.get(last.parent_id).role is Role.QA


def test_wait_times_out_with_the_item_as_it_stood(swarm: Swarm) -> None:
    item = swarm.submit("feature", "never done", enqueue=False)
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=f"{item.id} is still pending after 0.5s") as caught:
        swarm.wait(item, timeout=0.5)
    assert time.monotonic() - started >= 0.5
    assert caught.value.item.status is Status.PENDING
    assert caught.value.exit_code == 11


def test_wait_for_an_unknown_item_is_not_found(swarm: Swarm) -> None:
    with pytest.raises(NotFound):
        swarm.wait("work_1_nothing", timeout=1)


# -- Swarm.retry and Swarm.chain ---------------------------------------------------------------


def test_retry_sends_a_dead_item_back_to_pending_and_a_wrong_state_is_refused(swarm: Swarm) -> None:
    item = swarm.ledger.submit("feature", "flaky", max_attempts=1)
    finish(swarm.ledger, item, "fail", retry=True)
    again = swarm.retry(item)
    assert (again.status, again.attempts) == (Status.PENDING, 0)
    last = swarm.ledger.events(1)[0]
    assert (last.event, last.agent_id) == (EventKind.RETRIED, "ops-1")
    with pytest.raises(InvalidTransition):
        swarm.retry(item)


def test_chain_lists_a_workflows_stages_in_order_from_any_stage(swarm: Swarm) -> None:
    ledger = swarm.ledger
    first = ledger.submit("feature", "chain", dispatch=False, workflow="bugfix", stage="developer")
    second = ledger.get(finish(ledger, first, handoff=Handoff(Role.QA, "qa")).next_id or "")
    third = ledger.get(finish(ledger, second, handoff=Handoff(Role.DEVOPS, "devops")).next_id or "")
    ids = [first.id, second.id, third.id]
    for stage in ids:
        assert [s.id for s in swarm.chain(stage)] == ids
    alone = swarm.submit("feature", "no workflow", enqueue=False)
    assert [s.id for s in swarm.chain(alone)] == [alone.id]


# -- the CLI -----------------------------------------------------------------------------------


@pytest.fixture
def cli(redis_url: str, prefix: str) -> Callable[..., Any]:
    runner = CliRunner()
    env = {"REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, "SWARM_AGENT_ID": ""}

    def invoke(*args: str) -> Any:
        result = runner.invoke(app, list(args), env=env)
        assert "Traceback" not in result.output
        return result

    return invoke


ENDINGS = [("completed", 0), ("failed", 8), ("dead", 9), ("cancelled", 10)]


@pytest.mark.parametrize(("ending", "code"), ENDINGS)
def test_swarm_wait_exits_with_the_code_of_how_the_work_ended(
    cli: Callable[..., Any], ledger: Ledger, ending: str, code: int
) -> None:
    item = ledger.submit("feature", "x", dispatch=False, max_attempts=1)
    if ending == "completed":
        finish(ledger, item, result={"ok": True})
    elif ending == "cancelled":
        ledger.cancel(item.id)
    else:
        finish(ledger, item, "fail", retry=ending == "dead")
    result = cli("wait", item.id, "--json")
    assert result.exit_code == code, result.output
    body = json.loads(result.stdout)
    assert (body["id"], body["status"]) == (item.id, ending)
    human = cli("wait", item.id)
    assert human.exit_code == code
    assert human.stdout.splitlines()[0] == f"{item.id} {ending}"


def test_swarm_wait_blocks_until_the_work_completes_and_prints_the_result(
    cli: Callable[..., Any], ledger: Ledger, real_redis: redis.Redis
) -> None:
    item = ledger.submit("feature", "x", dispatch=False)
    mover = once_blocked(real_redis, lambda: finish(ledger, item, result={"pr": 7}))
    result = cli("wait", item.id, "--timeout", "60")
    mover.join()
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{item.id} completed", 'result: {"pr": 7}']


def test_swarm_wait_times_out_with_exit_11(cli: Callable[..., Any], ledger: Ledger) -> None:
    item = ledger.submit("feature", "x", dispatch=False)
    result = cli("wait", item.id, "--timeout", "0.2", "--json")
    assert result.exit_code == 11
    assert json.loads(result.stdout) == {
        "error": "WaitTimeout",
        "message": f"{item.id} is still pending after 0.2s",
        "exit_code": 11,
    }
    assert cli("wait", item.id, "--timeout", "-1").exit_code == 2
    assert cli("wait", "work_1_nothing", "--timeout", "1").exit_code == 4


def test_swarm_retry_reruns_a_failed_item_and_refuses_others_with_exit_6(
    cli: Callable[..., Any], ledger: Ledger
) -> None:
    item = ledger.submit("feature", "x", dispatch=False)
    finish(ledger, item, "fail")
    result = cli("retry", item.id, "--agent", "ops-1", "--json")
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["status"], ledger.get(item.id).status) == ("pending", Status.PENDING)
    refused = cli("retry", item.id)
    assert refused.exit_code == 6
    assert f"cannot retry {item.id}: it is already pending" in refused.output
    assert cli("retry", "work_1_nothing").exit_code == 4


def test_swarm_show_chain_lists_the_stages_first_to_last(cli: Callable[..., Any], ledger: Ledger) -> None:
    first = ledger.submit("feature", "x", dispatch=False, workflow="bugfix", stage="developer")
    second = ledger.get(finish(ledger, first, handoff=Handoff(Role.QA, "qa")).next_id or "")
    result = cli("show", second.id, "--chain", "--json")
    assert result.exit_code == 0, result.output
    assert [(s["id"], s["stage"], s["status"]) for s in json.loads(result.stdout)] == [
        (first.id, "developer", "completed"),
        (second.id, "qa", "pending"),
    ]
    table = cli("show", first.id, "--chain").stdout
    assert "workflow bugfix: 2 stage(s)" in table
    assert table.index("developer") < table.index("qa")


def test_wait_retry_and_show_chain_take_the_short_id_a_table_shows(
    cli: Callable[..., Any], ledger: Ledger
) -> None:
    item = ledger.submit("feature", "x", dispatch=False, workflow="bugfix", stage="developer", max_attempts=1)
    short = item.id.split("_")[1][-7:]
    finish(ledger, item, "fail")
    waited = cli("wait", short, "--json")
    assert waited.exit_code == 8, waited.output
    assert json.loads(waited.stdout)["id"] == item.id
    chain = cli("show", short, "--chain", "--json")
    assert chain.exit_code == 0, chain.output
    assert [s["id"] for s in json.loads(chain.stdout)] == [item.id]
    retried = cli("retry", short, "--json")
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout)["id"] == item.id
    assert cli("wait", "0000000", "--timeout", "1").exit_code == 4
