"""Reading the ledger (SPEC §4-§5): the event stream, agents and their metrics, listing items."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
from ledger_helpers import (
    A,
    B,
    CountingRedis,
    claimed,
    snapshot,
    stored_field,
    with_settings,
)

from swarm.errors import BadInput
from swarm.ledger import Ledger
from swarm.models import AgentStatus, EventKind, Role, Status, WorkItem
from swarm.settings import Settings

# -- events ------------------------------------------------------------------------------------


def test_every_transition_is_recorded_with_who_token_and_trace(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    got = fake_ledger.claim(item.id, A)
    fake_ledger.progress(item.id, A, 50)
    fake_ledger.complete(item.id, A)
    events = [e for e in fake_ledger.events() if e.work_id == item.id]
    assert [e.event for e in events] == [
        EventKind.SUBMITTED,
        EventKind.CLAIMED,
        EventKind.PROGRESSED,
        EventKind.COMPLETED,
    ]
    assert all(e.trace_id == item.trace_id for e in events)
    assert [e.status for e in events] == [
        Status.PENDING,
        Status.CLAIMED,
        Status.IN_PROGRESS,
        Status.COMPLETED,
    ]
    for e in events[1:]:
        assert (e.agent_id, e.fence) == (A, got.fence)
    assert events[2].detail == "50"
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_failure_events_carry_the_error(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.fail(item.id, A, "disk full")
    last = fake_ledger.events()[-1]
    assert (last.event, last.agent_id, last.fence, last.detail) == (
        EventKind.FAILED,
        A,
        item.fence,
        "disk full",
    )


def test_events_after_an_entry_are_the_later_ones_only(fake_ledger: Ledger) -> None:
    for _ in range(3):
        fake_ledger.submit("build")
    first, *rest = fake_ledger.events()
    assert fake_ledger.events(after=first.id) == rest
    assert fake_ledger.events(1) == rest[-1:]


def test_follow_yields_events_already_in_the_stream(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    stream = fake_ledger.follow(after="0-0", block_ms=10)
    assert next(stream).work_id == item.id


def test_event_stream_is_capped(fake_ledger: Ledger) -> None:
    capped = with_settings(fake_ledger, events_max_len=100)
    for _ in range(400):
        capped.submit("build")
    assert capped.client.xlen(capped.keys.events) < 400


# -- agents ------------------------------------------------------------------------------------


def test_register_agent_records_identity_with_empty_metrics(fake_ledger: Ledger) -> None:
    agent = fake_ledger.register_agent(
        A, role="qa", team="blue", capacity=4, specialization="APIs", host="box-1", pid=4242
    )
    assert (agent.id, agent.role, agent.team, agent.capacity) == (A, Role.QA, "blue", 4)
    assert (agent.specialization, agent.host, agent.pid) == ("APIs", "box-1", 4242)
    assert agent.status is AgentStatus.IDLE
    assert (agent.completed, agent.failed, agent.mean_duration, agent.success_rate) == (0, 0, 0.0, None)
    assert agent.last_heartbeat is not None
    assert fake_ledger.agent(A) == agent
    assert [a.id for a in fake_ledger.agents()] == [A]
    registered = fake_ledger.events()[-1]
    assert (registered.event, registered.agent_id) == (EventKind.AGENT_REGISTERED, A)


@pytest.mark.parametrize(
    "kwargs", [{"capacity": 0}, {"role": "boss"}, {"team": "a b"}, {"pid": -1}, {"specialization": None}]
)
def test_register_agent_refuses_bad_fields_and_writes_nothing(
    fake_ledger: Ledger, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(BadInput):
        fake_ledger.register_agent(A, **kwargs)
    assert snapshot(fake_ledger) == {}


def test_agent_metrics_follow_completions_and_failures(fake_ledger: Ledger) -> None:
    fake_ledger.register_agent(A, role="developer")
    finished = []
    for outcome in ("complete", "complete", "fail"):
        item = claimed(fake_ledger, A)
        if outcome == "complete":
            finished.append(fake_ledger.complete(item.id, A))
        else:
            finished.append(fake_ledger.fail(item.id, A, "no"))
    agent = fake_ledger.agent(A)
    assert (agent.completed, agent.failed) == (2, 1)
    assert agent.success_rate == pytest.approx(2 / 3)
    spans = [
        (i.completed_at - i.claimed_at).total_seconds() for i in finished if i.completed_at and i.claimed_at
    ]
    assert agent.mean_duration == pytest.approx(sum(spans) / 3, abs=1e-5)
    assert agent.status is AgentStatus.IDLE


def test_retried_failure_counts_as_a_failure_of_the_agent(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.fail(item.id, A, "flaky", retry=True)
    agent = fake_ledger.agent(A)
    assert (agent.completed, agent.failed, agent.success_rate) == (0, 1, 0.0)


def test_reregistering_keeps_the_agents_metrics(fake_ledger: Ledger) -> None:
    fake_ledger.register_agent(A, role="developer")
    fake_ledger.complete(claimed(fake_ledger, A).id, A)
    again = fake_ledger.register_agent(A, role="qa", capacity=2)
    assert (again.role, again.capacity, again.completed, again.success_rate) == (Role.QA, 2, 1, 1.0)


def test_claiming_creates_an_active_agent_record(fake_ledger: Ledger) -> None:
    claimed(fake_ledger, B, role="architect", team="red")
    agent = fake_ledger.agent(B)
    assert (agent.status, agent.role, agent.team) == (AgentStatus.ACTIVE, Role.ARCHITECT, "red")


def test_agents_are_listed_most_recently_seen_first(fake_ledger: Ledger) -> None:
    # Scores are milliseconds; names are chosen so that a same-millisecond tie (ordered by name,
    # descending) agrees with the true order, and only a wrong order can fail.
    fake_ledger.register_agent("b-seen-first")
    fake_ledger.register_agent("a-seen-second")
    claimed(fake_ledger, "b-seen-first")  # seen again, now the latest
    assert [a.id for a in fake_ledger.agents()] == ["b-seen-first", "a-seen-second"]


# -- list --------------------------------------------------------------------------------------


def test_list_filters_by_status_role_and_team(fake_ledger: Ledger) -> None:
    lg = fake_ledger
    dev_core = lg.submit("build")
    qa_blue = lg.submit("test", role="qa", team="blue")
    pm_blue = lg.submit("plan", role="pm", team="blue")
    done = lg.submit("build", team="blue")
    lg.claim(done.id, A)
    lg.complete(done.id, A)

    def ids(items: list[WorkItem]) -> set[str]:
        return {i.id for i in items}

    assert ids(lg.list()) == {dev_core.id, qa_blue.id, pm_blue.id, done.id}
    assert ids(lg.list(Status.PENDING)) == {dev_core.id, qa_blue.id, pm_blue.id}
    assert ids(lg.list("completed")) == {done.id}
    assert ids(lg.list(role="qa")) == {qa_blue.id}
    assert ids(lg.list(team="blue")) == {qa_blue.id, pm_blue.id, done.id}
    assert ids(lg.list(Status.PENDING, team="blue")) == {qa_blue.id, pm_blue.id}
    assert ids(lg.list("pending", role="developer")) == {dev_core.id}
    assert ids(lg.list("completed", role="developer", team="blue")) == {done.id}
    assert lg.list(Status.DEAD) == []
    assert lg.list(team="nobody") == []


def test_list_of_a_roles_pending_items_is_in_claim_order(fake_ledger: Ledger) -> None:
    low = fake_ledger.submit("a", priority="low")
    crit = fake_ledger.submit("b", priority="critical")
    med = fake_ledger.submit("c")
    assert [i.id for i in fake_ledger.list("pending", role="developer")] == [crit.id, med.id, low.id]


def test_list_is_newest_update_first_and_honours_the_limit(fake_ledger: Ledger) -> None:
    items = [fake_ledger.submit("build", str(n)) for n in range(5)]
    fake_ledger.claim(items[0].id, A)  # now the most recently updated
    listed = fake_ledger.list()
    assert {i.id for i in listed} == {i.id for i in items}
    # Registries are scored in milliseconds: order is checked at that grain.
    updated_ms = [int(stored_field(fake_ledger, i.id, "updated_at") or 0) // 1000 for i in listed]
    assert updated_ms == sorted(updated_ms, reverse=True)
    assert int(stored_field(fake_ledger, items[0].id, "updated_at") or 0) // 1000 == updated_ms[0]
    assert len(fake_ledger.list(limit=2)) == 2
    assert len(fake_ledger.list("pending", limit=3)) == 3


def test_list_pages_past_one_registry_page(fake_ledger: Ledger) -> None:
    ids = {fake_ledger.submit("build").id for _ in range(250)}
    assert {i.id for i in fake_ledger.list(limit=1000)} == ids
    assert {i.id for i in fake_ledger.list("pending", role="developer", limit=1000)} == ids


@pytest.mark.parametrize(
    "kwargs", [{"status": "done"}, {"role": "boss"}, {"team": "a b"}, {"limit": 0}], ids=str
)
def test_list_refuses_unknown_filters(fake_ledger: Ledger, kwargs: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        fake_ledger.list(**kwargs)


def test_list_never_scans_the_keyspace(settings: Settings) -> None:
    client = CountingRedis(server=fakeredis.FakeServer(), decode_responses=True)
    ledger = Ledger(client, settings)
    for _ in range(5):
        ledger.submit("build", team="blue")
    client.commands.clear()
    ledger.list()
    ledger.list("pending", role="developer", team="blue")
    ledger.counts()
    assert not {"KEYS", "SCAN"} & set(client.commands)


def test_agents_seen_renews_live_agents_only(fake_ledger: Ledger) -> None:
    fake_ledger.register_agent("agent_idle", role="qa")
    fake_ledger.register_agent("agent_gone", role="qa")
    fake_ledger.mark_agent("agent_gone", AgentStatus.OFFLINE)
    old = 1_000  # ms: long ago
    fake_ledger.client.zadd(fake_ledger.keys.agents, {"agent_idle": old, "agent_gone": old})
    assert fake_ledger.agents_seen(["agent_idle", "agent_gone", "agent_never"]) == 1
    scores = dict(fake_ledger.client.zrange(fake_ledger.keys.agents, 0, -1, withscores=True))
    assert scores["agent_idle"] > old
    assert scores["agent_gone"] == old
    assert "agent_never" not in scores
    assert fake_ledger.agent("agent_idle").status is AgentStatus.IDLE, "its status is left alone"
    assert fake_ledger.agents_seen([]) == 0
