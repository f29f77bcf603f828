"""The ledger's contract (SPEC §4-§5) on fakeredis with Lua: claims, fenced writes, leases, registries."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import fakeredis
import pytest

from swarm.errors import BadInput, ClaimConflict, InvalidTransition, LeaseLost, NotFound, NotOwner
from swarm.ledger import Ledger
from swarm.models import AgentStatus, EventKind, Priority, Role, Status, WorkItem
from swarm.settings import Settings

A = "agent-a"
B = "agent-b"
WORK_ID = re.compile(r"^work_\d{19}_[0-9a-f]{12}$")


# -- helpers -----------------------------------------------------------------------------------


def _raw_client(ledger: Ledger) -> fakeredis.FakeRedis:
    """A non-decoding client on the same fake server, to read stored bytes as they are."""
    server = ledger.client.connection_pool.connection_kwargs["server"]
    return fakeredis.FakeRedis(server=server)


def _with_settings(ledger: Ledger, **overrides: Any) -> Ledger:
    """Another ledger on the same server and namespace, with some settings changed."""
    settings = ledger.settings.model_copy(update=overrides)
    return Ledger(ledger.client, settings)


def _field(ledger: Ledger, work_id: str, name: str) -> str | None:
    value: str | None = ledger.client.hget(ledger.keys.item(work_id), name)
    return value


def snapshot(ledger: Ledger) -> dict[str, tuple[str, Any]]:
    """Every key of the ledger's namespace with its type and value (TTLs left out)."""
    client, out = ledger.client, {}
    for key in sorted(client.keys(ledger.keys.tag + "*")):
        kind = client.type(key)
        if kind == "hash":
            value: Any = client.hgetall(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            value = client.get(key)
        elif kind == "stream":
            value = client.xrange(key)
        else:  # pragma: no cover - the ledger makes no other types
            raise AssertionError(f"unexpected {kind} at {key}")
        out[key] = (kind, value)
    return out


def assert_consistent(ledger: Ledger) -> None:
    """The registries (status sets, ready sets, leases, claim keys) agree with the item hashes."""
    client, keys = ledger.client, ledger.keys
    items: dict[str, WorkItem] = {
        key[len(keys.item_prefix) :]: ledger.get(key[len(keys.item_prefix) :])
        for key in client.keys(keys.item_prefix + "*")
    }
    for status in Status:
        in_registry = set(client.zrange(keys.status(status), 0, -1))
        assert in_registry == {w for w, i in items.items() if i.status is status}, status
    for role in Role:
        ready = dict(client.zrange(keys.ready(role), 0, -1, withscores=True))
        expected = {
            w: float(i.priority.rank)
            for w, i in items.items()
            if i.status is Status.PENDING and i.role is role
        }
        assert ready == expected, role
    leases = dict(client.zrange(keys.leases, 0, -1, withscores=True))
    held = {w: i for w, i in items.items() if i.status.held}
    assert set(leases) == set(held)
    for wid, item in held.items():
        assert item.agent_id
        assert item.fence
        assert item.lease_expires_at
        assert leases[wid] == int(_field(ledger, wid, "lease_expires_at") or 0) // 1000
        holder = client.get(keys.claim(wid))
        assert holder in (None, item.agent_id)  # None only once the PX ran out
    for wid, item in items.items():
        if not item.status.held:
            assert not client.exists(keys.claim(wid)), wid
            assert item.lease_expires_at is None, wid
        if item.status is Status.PENDING:
            assert item.agent_id is None, wid
        if item.status.terminal:
            assert item.completed_at is not None, wid
    claim_keys = {k[len(keys.claim_prefix) :] for k in client.keys(keys.claim_prefix + "*")}
    assert claim_keys <= set(held)
    assert sum(ledger.counts().values()) == len(items)


def expire_lease(ledger: Ledger, work_id: str) -> None:
    """What a lapsed lease looks like: the claim key's PX ran out and its expiry time has passed."""
    ledger.client.delete(ledger.keys.claim(work_id))
    ledger.client.zadd(ledger.keys.leases, {work_id: 0})


def events_of(ledger: Ledger, work_id: str) -> list[EventKind]:
    return [e.event for e in ledger.events(10_000) if e.work_id == work_id]


def claimed(ledger: Ledger, agent: str = A, **submit: Any) -> WorkItem:
    item = ledger.submit(submit.pop("type", "build"), **submit)
    return ledger.claim(item.id, agent)


class CountingRedis(fakeredis.FakeRedis):
    """A fakeredis client that records the commands it sends (to count round trips)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]).upper())
        return super().execute_command(*args, **options)


# -- submit ------------------------------------------------------------------------------------


def test_submit_creates_a_pending_item_with_the_defaults(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", "do it")
    assert WORK_ID.fullmatch(item.id)
    assert (item.type, item.description, item.payload, item.artifacts) == ("build", "do it", {}, {})
    assert (item.role, item.team, item.priority, item.points) == (Role.DEVELOPER, "core", Priority.MEDIUM, 1)
    assert (item.status, item.progress, item.attempts, item.max_attempts) == (Status.PENDING, 0, 0, 3)
    assert item.agent_id is None
    assert item.fence is None
    assert item.claimed_at is None
    assert item.completed_at is None
    assert item.lease_expires_at is None
    assert item.created_at == item.updated_at
    assert re.fullmatch(r"[0-9a-f]{32}", item.trace_id)
    assert fake_ledger.get(item.id) == item
    assert_consistent(fake_ledger)


def test_submit_stores_every_option_it_is_given(fake_ledger: Ledger) -> None:
    parent = fake_ledger.submit("plan")
    item = fake_ledger.submit(
        "feature",
        "Add SSO",
        payload={"repo": "x", "n": [1, 2.5, None, True]},
        role="qa",
        team="blue",
        priority="critical",
        points=8,
        trace_id="ab" * 16,
        parent_id=parent.id,
        workflow="delivery",
        stage="verify",
        artifacts={"pr": "https://example.test/1"},
        max_attempts=5,
    )
    assert fake_ledger.get(item.id) == item
    assert item.payload == {"repo": "x", "n": [1, 2.5, None, True]}
    assert (item.role, item.team, item.priority, item.points) == (Role.QA, "blue", Priority.CRITICAL, 8)
    assert (item.trace_id, item.parent_id, item.workflow, item.stage) == (
        "ab" * 16,
        parent.id,
        "delivery",
        "verify",
    )
    assert item.artifacts == {"pr": "https://example.test/1"}
    assert item.max_attempts == 5


def test_submitted_ids_are_unique_and_sort_by_submission(fake_ledger: Ledger) -> None:
    ids = [fake_ledger.submit("build").id for _ in range(50)]
    assert len(set(ids)) == 50
    assert ids == sorted(ids)


DESCRIPTIONS = {
    "quotes": "she said \"stop\" and 'go' `now`",
    "newlines": "line one\nline two\r\nline three\r\n\n",
    "nul": "before\x00after\x00",
    "emoji": "ship it 🚀👩‍💻 — naïve café ✓ 中文",
    "json-and-lua-lookalikes": '{"a": 1} ]]-- [[ %s %d \\n \\" \\\\',
    "control-characters": "".join(chr(c) for c in range(32)) + "\x7f",
    "empty": "",
}


@pytest.mark.parametrize("text", DESCRIPTIONS.values(), ids=DESCRIPTIONS.keys())
def test_description_round_trips_byte_exact(fake_ledger: Ledger, text: str) -> None:
    item = fake_ledger.submit("build", text)
    assert item.description == text
    assert fake_ledger.get(item.id).description == text
    assert fake_ledger.list(Status.PENDING)[0].description == text
    stored = _raw_client(fake_ledger).hget(fake_ledger.keys.item(item.id), "description")
    assert stored == text.encode("utf-8")


def test_one_mebibyte_description_round_trips_byte_exact(fake_ledger: Ledger) -> None:
    text = ("0123456789abcdé🚀\n\x00\"'" * 50_000)[: 1024 * 1024 // 2]
    text = text + "x" * (1024 * 1024 - len(text.encode()))
    assert len(text.encode()) == 1024 * 1024  # exactly the default cap
    item = fake_ledger.submit("build", text)
    assert fake_ledger.get(item.id).description == text
    stored = _raw_client(fake_ledger).hget(fake_ledger.keys.item(item.id), "description")
    assert stored == text.encode("utf-8")


def test_description_one_byte_over_the_default_cap_is_refused_and_nothing_written(
    fake_ledger: Ledger,
) -> None:
    with pytest.raises(BadInput, match=r"description is 1048577 bytes; the cap is 1048576"):
        fake_ledger.submit("build", "x" * (1024 * 1024 + 1))
    assert snapshot(fake_ledger) == {}


def test_description_cap_is_configurable(fake_ledger: Ledger) -> None:
    small = _with_settings(fake_ledger, description_max_bytes=16)
    assert small.submit("build", "x" * 16).description == "x" * 16
    before = snapshot(small)
    with pytest.raises(BadInput, match="the cap is 16"):
        small.submit("build", "x" * 17)
    assert snapshot(small) == before


BAD_SUBMITS: dict[str, tuple[dict[str, Any], str]] = {
    "empty type": ({"type": ""}, "type must not be empty"),
    "blank type": ({"type": "  "}, "type must not be empty"),
    "unknown priority": ({"priority": "urgent"}, "unknown priority 'urgent'"),
    "unknown role": ({"role": "tester"}, "unknown role 'tester'"),
    "bad team": ({"team": "a team"}, "team 'a team'"),
    "negative points": ({"points": -1}, "points must be from 0"),
    "boolean points": ({"points": True}, "points must be a whole number"),
    "payload not an object": ({"payload": [1, 2]}, "payload must be a JSON object"),
    "payload with NaN": ({"payload": {"x": float("nan")}}, "payload is not JSON-serialisable"),
    "artifacts not an object": ({"artifacts": "x"}, "artifacts must be a JSON object"),
    "lone surrogate": ({"description": "x\ud800"}, "description is not valid UTF-8"),
    "non-text description": ({"description": b"bytes"}, "description must be text"),
    "bad trace id": ({"trace_id": "XYZ"}, "trace id 'XYZ'"),
    "bad parent id": ({"parent_id": "not an id"}, "is not a work id"),
    "bad workflow": ({"workflow": "two words"}, "must be 1-64 letters"),
    "negative max_attempts": ({"max_attempts": -2}, "max_attempts must be a whole number of at least 1"),
    "claim_for with a space": ({"claim_for": "agent a"}, "agent id 'agent a'"),
    "claim_for with a newline": ({"claim_for": "agent\na"}, "agent id"),
    "zero lease": ({"claim_for": A, "lease_seconds": 0}, "lease must be from"),
}


@pytest.mark.parametrize(("kwargs", "message"), BAD_SUBMITS.values(), ids=BAD_SUBMITS.keys())
def test_bad_submit_is_refused_before_anything_is_written(
    fake_ledger: Ledger, kwargs: dict[str, Any], message: str
) -> None:
    args = {"type": "build", "description": "d", **kwargs}
    with pytest.raises(BadInput, match=re.escape(message)):
        fake_ledger.submit(**args)
    assert snapshot(fake_ledger) == {}


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"priority": ""}, {"role": ""}, {"team": ""}],
    ids=["zero max_attempts", "empty priority", "empty role", "empty team"],
)
def test_explicit_invalid_values_are_refused_not_replaced_by_defaults(
    fake_ledger: Ledger, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(BadInput):
        fake_ledger.submit("build", **kwargs)
    assert snapshot(fake_ledger) == {}


def test_submit_claim_for_creates_and_claims_in_one_step(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", "now", claim_for=A)
    assert item.status is Status.CLAIMED
    assert item.agent_id == A
    assert item.fence == 1
    assert item.claimed_at == item.created_at
    assert fake_ledger.client.get(fake_ledger.keys.claim(item.id)) == A
    assert events_of(fake_ledger, item.id) == [EventKind.SUBMITTED, EventKind.CLAIMED]
    assert fake_ledger.claim_next(Role.DEVELOPER, B) is None
    assert_consistent(fake_ledger)


def test_submit_claim_for_is_one_atomic_script_call(settings: Settings) -> None:
    client = CountingRedis(server=fakeredis.FakeServer(), decode_responses=True)
    ledger = Ledger(client, settings)
    ledger.submit("warm-up")  # loads the scripts
    client.commands.clear()
    item = ledger.submit("build", claim_for=A)
    assert client.commands == ["EVALSHA"]
    assert item.status is Status.CLAIMED


def test_a_claim_is_one_round_trip(settings: Settings) -> None:
    client = CountingRedis(server=fakeredis.FakeServer(), decode_responses=True)
    ledger = Ledger(client, settings)
    item = ledger.submit("build")
    ledger.claim(ledger.submit("warm-up").id, B)
    client.commands.clear()
    ledger.claim(item.id, A)
    assert client.commands == ["EVALSHA"]


# -- claim -------------------------------------------------------------------------------------


def test_claim_gives_the_agent_a_fenced_lease_of_the_default_length(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    got = fake_ledger.claim(item.id, A)
    assert got.status is Status.CLAIMED
    assert got.agent_id == A
    assert got.fence == 1
    assert got.claimed_at is not None
    assert got.updated_at == got.claimed_at
    claimed_us = int(_field(fake_ledger, item.id, "claimed_at") or 0)
    expires_us = int(_field(fake_ledger, item.id, "lease_expires_at") or 0)
    assert expires_us - claimed_us == 30_000_000
    claim_key = fake_ledger.keys.claim(item.id)
    assert fake_ledger.client.get(claim_key) == A
    assert 29_000 < fake_ledger.client.pttl(claim_key) <= 30_000
    assert_consistent(fake_ledger)


def test_claim_lease_seconds_sets_the_lease_length(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=5)
    assert item.lease_expires_at is not None
    assert item.claimed_at is not None
    assert abs(item.lease_expires_at - item.claimed_at - timedelta(seconds=5)) <= timedelta(microseconds=1)
    assert 4_000 < fake_ledger.client.pttl(fake_ledger.keys.claim(item.id)) <= 5_000


def test_fencing_tokens_strictly_increase_with_every_claim(fake_ledger: Ledger) -> None:
    fences = [claimed(fake_ledger).fence for _ in range(3)]
    assert fences == [1, 2, 3]
    item = claimed(fake_ledger)
    fake_ledger.release(item.id, A)
    again = fake_ledger.claim(item.id, A)
    assert again.fence is not None
    assert item.fence is not None
    assert again.fence > item.fence


def test_second_claimer_gets_conflict_naming_holder(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(ClaimConflict) as caught:
        fake_ledger.claim(item.id, B)
    assert caught.value.holder == A
    assert caught.value.work_id == item.id
    assert A in str(caught.value)
    assert caught.value.exit_code == 3
    assert snapshot(fake_ledger) == before


def test_claim_by_the_holder_itself_is_also_a_conflict(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    with pytest.raises(ClaimConflict, match=f"held by {A}"):
        fake_ledger.claim(item.id, A)


def test_claim_of_an_in_progress_item_is_a_conflict_naming_holder(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.progress(item.id, A, 10)
    with pytest.raises(ClaimConflict) as caught:
        fake_ledger.claim(item.id, B)
    assert caught.value.holder == A


def test_claim_of_a_lapsed_lease_names_the_old_holder_until_reaped(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    with pytest.raises(ClaimConflict, match="lease expired") as caught:
        fake_ledger.claim(item.id, B)
    assert caught.value.holder == A
    fake_ledger.reap()
    assert fake_ledger.claim(item.id, B).agent_id == B


@pytest.mark.parametrize("finish", ["complete", "fail", "cancel"])
def test_claim_of_a_finished_item_is_an_invalid_transition(fake_ledger: Ledger, finish: str) -> None:
    item = claimed(fake_ledger, A)
    if finish == "complete":
        fake_ledger.complete(item.id, A)
    elif finish == "fail":
        fake_ledger.fail(item.id, A, "boom")
    else:
        fake_ledger.cancel(item.id)
        fake_ledger.release(item.id, A)
    before = snapshot(fake_ledger)
    with pytest.raises(InvalidTransition, match="cannot claim"):
        fake_ledger.claim(item.id, B)
    assert snapshot(fake_ledger) == before


# -- claim_next --------------------------------------------------------------------------------


def test_claim_next_takes_the_highest_priority_then_the_oldest(fake_ledger: Ledger) -> None:
    order = ["low", "medium", "critical", "high", "medium", "critical", "low", "high"]
    submitted = [fake_ledger.submit("build", f"#{n}", priority=p) for n, p in enumerate(order)]
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    # ids sort by creation time, so (rank, id) is "highest priority, then oldest"
    expected = [i.id for i in sorted(submitted, key=lambda i: (rank[i.priority], i.id))]
    got = []
    while (item := fake_ledger.claim_next("developer", A)) is not None:
        got.append(item.id)
        assert item.agent_id == A
    assert got == expected
    assert_consistent(fake_ledger)


def test_claim_next_takes_only_the_roles_items(fake_ledger: Ledger) -> None:
    qa_item = fake_ledger.submit("test", role="qa", priority="critical")
    dev_item = fake_ledger.submit("build", role="developer", priority="low")
    assert fake_ledger.claim_next(Role.PM, A) is None
    got_dev = fake_ledger.claim_next(Role.DEVELOPER, A)
    assert got_dev is not None
    assert got_dev.id == dev_item.id
    got_qa = fake_ledger.claim_next("qa", B)
    assert got_qa is not None
    assert got_qa.id == qa_item.id


def test_claim_next_returns_none_and_writes_nothing_when_nothing_is_pending(fake_ledger: Ledger) -> None:
    assert fake_ledger.claim_next(Role.DEVELOPER, A) is None
    held = claimed(fake_ledger, A)
    done = claimed(fake_ledger, A)
    fake_ledger.complete(done.id, A)
    before = snapshot(fake_ledger)
    assert fake_ledger.claim_next(Role.DEVELOPER, B) is None
    assert snapshot(fake_ledger) == before
    assert fake_ledger.get(held.id).agent_id == A


def test_claim_next_refuses_an_unknown_role(fake_ledger: Ledger) -> None:
    with pytest.raises(BadInput, match="unknown role 'tester'"):
        fake_ledger.claim_next("tester", A)


def test_retried_item_keeps_its_place_by_age(fake_ledger: Ledger) -> None:
    first = fake_ledger.submit("build", "first")
    fake_ledger.submit("build", "second")
    fake_ledger.claim(first.id, A)
    fake_ledger.fail(first.id, A, "flaky", retry=True)
    nxt = fake_ledger.claim_next(Role.DEVELOPER, B)
    assert nxt is not None
    assert nxt.id == first.id


# -- heartbeat ---------------------------------------------------------------------------------


def test_heartbeat_renews_the_lease(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=5)
    beat = fake_ledger.heartbeat(item.id, A, fence=item.fence, lease_seconds=60)
    assert beat.lease_expires_at is not None
    assert item.lease_expires_at is not None
    assert beat.lease_expires_at >= item.lease_expires_at + timedelta(seconds=55)
    assert beat.status is Status.CLAIMED
    assert fake_ledger.client.pttl(fake_ledger.keys.claim(item.id)) > 55_000
    assert_consistent(fake_ledger)  # the lease registry moved with the claim key


def _lease_renewed_at(ledger: Ledger, work_id: str, agent: str) -> int:
    """Microseconds from the holder's last touch (its heartbeat time) to its lease's expiry."""
    beat = int(ledger.client.hget(ledger.keys.agent(agent), "last_heartbeat") or 0)
    return int(_field(ledger, work_id, "lease_expires_at") or 0) - beat


def test_heartbeat_without_lease_seconds_renews_for_the_claims_own_length(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=120)
    beat = fake_ledger.heartbeat(item.id, A)
    assert beat.lease_expires_at is not None
    assert item.lease_expires_at is not None
    assert beat.lease_expires_at >= item.lease_expires_at
    assert _lease_renewed_at(fake_ledger, item.id, A) == 120_000_000
    assert 115_000 < fake_ledger.client.pttl(fake_ledger.keys.claim(item.id)) <= 120_000
    assert_consistent(fake_ledger)


def test_heartbeat_returns_cancel_requested(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    assert fake_ledger.heartbeat(item.id, A).cancel_requested is False
    fake_ledger.cancel(item.id, B)
    beat = fake_ledger.heartbeat(item.id, A, fence=item.fence)
    assert beat.cancel_requested is True
    assert beat.status is Status.CLAIMED


def test_heartbeat_marks_the_agent_active(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.register_agent(A, role="developer")  # re-registering sets it idle
    assert fake_ledger.agent(A).status is AgentStatus.IDLE
    fake_ledger.heartbeat(item.id, A)
    assert fake_ledger.agent(A).status is AgentStatus.ACTIVE


# -- progress ----------------------------------------------------------------------------------


def test_progress_moves_a_claimed_item_to_in_progress_with_its_note(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    got = fake_ledger.progress(item.id, A, 40, 'half way, "quoted"\nsecond line', fence=item.fence)
    assert got.status is Status.IN_PROGRESS
    assert got.progress == 40
    assert got.note == 'half way, "quoted"\nsecond line'
    assert fake_ledger.get(item.id) == got
    assert_consistent(fake_ledger)
    again = fake_ledger.progress(item.id, A, "75")
    assert (again.status, again.progress) == (Status.IN_PROGRESS, 75)
    assert_consistent(fake_ledger)


def test_progress_renews_the_lease_for_the_claims_own_length(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=120)
    got = fake_ledger.progress(item.id, A, 10)
    renewed_from = int(_field(fake_ledger, item.id, "updated_at") or 0)
    assert int(_field(fake_ledger, item.id, "lease_expires_at") or 0) - renewed_from == 120_000_000
    assert got.lease_expires_at is not None
    assert item.lease_expires_at is not None
    assert got.lease_expires_at >= item.lease_expires_at
    assert fake_ledger.client.pttl(fake_ledger.keys.claim(item.id)) > 115_000
    assert_consistent(fake_ledger)


def test_progress_by_a_non_holder_is_not_owner_naming_the_holder(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(NotOwner) as caught:
        fake_ledger.progress(item.id, B, 50)
    assert not isinstance(caught.value, LeaseLost)
    assert caught.value.holder == A
    assert f"{B} does not hold {item.id}; {A} does" in str(caught.value)
    assert caught.value.exit_code == 5
    assert snapshot(fake_ledger) == before


def test_progress_with_a_superseded_fence_is_lease_lost(fake_ledger: Ledger) -> None:
    first = claimed(fake_ledger, A)
    fake_ledger.release(first.id, A)
    second = fake_ledger.claim(first.id, A)
    before = snapshot(fake_ledger)
    with pytest.raises(LeaseLost, match=f"newer claim \\(fence {second.fence}\\) superseded it"):
        fake_ledger.progress(first.id, A, 50, fence=first.fence)
    assert snapshot(fake_ledger) == before
    assert fake_ledger.progress(first.id, A, 50, fence=second.fence).progress == 50


def test_holder_superseded_by_another_agent_after_reap_gets_lease_lost(fake_ledger: Ledger) -> None:
    old = claimed(fake_ledger, A)
    expire_lease(fake_ledger, old.id)
    fake_ledger.reap()
    new = fake_ledger.claim(old.id, B)
    before = snapshot(fake_ledger)
    with pytest.raises(LeaseLost, match="superseded"):
        fake_ledger.progress(old.id, A, 90, fence=old.fence)
    with pytest.raises(LeaseLost):
        fake_ledger.complete(old.id, A, fence=old.fence)
    with pytest.raises(NotOwner) as caught:  # without its token, A is simply not the owner
        fake_ledger.complete(old.id, A)
    assert caught.value.holder == B
    assert snapshot(fake_ledger) == before
    assert fake_ledger.complete(new.id, B, fence=new.fence).status is Status.COMPLETED


def test_holder_whose_lease_lapsed_gets_lease_lost_and_changes_nothing(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    before = snapshot(fake_ledger)
    for write in (
        lambda: fake_ledger.progress(item.id, A, 10, fence=item.fence),
        lambda: fake_ledger.heartbeat(item.id, A),
        lambda: fake_ledger.complete(item.id, A, fence=item.fence),
        lambda: fake_ledger.fail(item.id, A, "x"),
        lambda: fake_ledger.release(item.id, A),
    ):
        with pytest.raises(LeaseLost, match="lease expired"):
            write()
    assert snapshot(fake_ledger) == before


def test_holder_of_a_reaped_item_gets_lease_lost(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    fake_ledger.reap()
    with pytest.raises(LeaseLost, match="went back to pending"):
        fake_ledger.heartbeat(item.id, A, fence=item.fence)


def test_holder_showing_a_token_newer_than_its_claim_gets_lease_lost(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    assert item.fence is not None
    with pytest.raises(LeaseLost, match="is not the current claim"):
        fake_ledger.progress(item.id, A, 10, fence=item.fence + 1)


def test_stranger_showing_a_token_on_a_pending_item_is_not_owner(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.release(item.id, A)
    with pytest.raises(NotOwner) as caught:
        fake_ledger.progress(item.id, B, 10, fence=item.fence)
    assert not isinstance(caught.value, LeaseLost)
    with pytest.raises(LeaseLost):  # the last holder, though, lost its lease
        fake_ledger.progress(item.id, A, 10, fence=item.fence)


def test_progress_on_a_pending_item_is_not_owner(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    with pytest.raises(NotOwner, match="not claimed"):
        fake_ledger.progress(item.id, A, 10)


@pytest.mark.parametrize("value", ["abc", "-1", "101", "NaN", "inf", "50.5", -1, 101, float("nan"), True])
def test_bad_progress_is_refused_and_changes_nothing(fake_ledger: Ledger, value: Any) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(BadInput, match="progress must be"):
        fake_ledger.progress(item.id, A, value)
    assert snapshot(fake_ledger) == before


# -- complete ----------------------------------------------------------------------------------


def test_complete_succeeds_once(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A, points=3)
    fake_ledger.progress(item.id, A, 60)
    done = fake_ledger.complete(item.id, A, fence=item.fence, result={"ok": True, "files": ["a.py"]})
    assert done.status is Status.COMPLETED
    assert done.progress == 100
    assert done.result == {"ok": True, "files": ["a.py"]}
    assert done.completed_at is not None
    assert done.agent_id == A  # who did it stays on the item
    assert_consistent(fake_ledger)
    before = snapshot(fake_ledger)
    with pytest.raises(InvalidTransition, match=f"cannot complete {item.id}: it is already completed"):
        fake_ledger.complete(item.id, A, fence=item.fence)
    assert snapshot(fake_ledger) == before


def test_velocity_is_counted_once(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A, points=5, team="blue")
    fake_ledger.complete(item.id, A)
    with pytest.raises(InvalidTransition):
        fake_ledger.complete(item.id, A)
    with pytest.raises(InvalidTransition):
        fake_ledger.complete(item.id, B)
    assert fake_ledger.velocity() == {"blue": 5}


def test_complete_points_override_the_items_points_and_velocity(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A, points=2)
    done = fake_ledger.complete(item.id, A, points=8)
    assert done.points == 8
    assert fake_ledger.velocity() == {"core": 8}


def test_velocity_is_kept_per_team(fake_ledger: Ledger) -> None:
    for team, pts in [("red", 1), ("blue", 3), ("red", 2), ("blue", 0)]:
        fake_ledger.complete(claimed(fake_ledger, A, team=team, points=pts).id, A)
    fake_ledger.fail(claimed(fake_ledger, A, team="red", points=13).id, A, "no")
    assert fake_ledger.velocity() == {"red": 3, "blue": 3}


def test_complete_by_a_non_holder_is_not_owner(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(NotOwner):
        fake_ledger.complete(item.id, B)
    assert snapshot(fake_ledger) == before
    assert fake_ledger.velocity() == {}


def test_complete_with_a_result_that_is_not_json_is_refused(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(BadInput, match="result is not JSON-serialisable"):
        fake_ledger.complete(item.id, A, result={"x": float("inf")})
    assert snapshot(fake_ledger) == before


# -- fail --------------------------------------------------------------------------------------


def test_fail_without_retry_is_final(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    failed = fake_ledger.fail(item.id, A, "compiler said no", fence=item.fence)
    assert failed.status is Status.FAILED
    assert failed.error == "compiler said no"
    assert failed.attempts == 0
    assert failed.completed_at is not None
    assert_consistent(fake_ledger)
    with pytest.raises(InvalidTransition, match="already failed"):
        fake_ledger.fail(item.id, A, "again")


def test_fail_with_retry_returns_the_item_to_pending_with_attempts_plus_one(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    retried = fake_ledger.fail(item.id, A, "flaky network", retry=True)
    assert retried.status is Status.PENDING
    assert retried.attempts == 1
    assert retried.agent_id is None
    assert retried.error == "flaky network"
    assert_consistent(fake_ledger)
    again = fake_ledger.claim_next(Role.DEVELOPER, B)
    assert again is not None
    assert again.id == item.id
    assert again.attempts == 1


def test_fail_with_retry_goes_dead_at_max_attempts(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", max_attempts=2)
    fake_ledger.claim(item.id, A)
    assert fake_ledger.fail(item.id, A, "1st", retry=True).status is Status.PENDING
    fake_ledger.claim(item.id, A)
    dead = fake_ledger.fail(item.id, A, "2nd", retry=True)
    assert dead.status is Status.DEAD
    assert dead.attempts == 2
    assert_consistent(fake_ledger)
    assert events_of(fake_ledger, item.id)[-2:] == [EventKind.FAILED, EventKind.DEAD]
    with pytest.raises(InvalidTransition, match="already dead"):
        fake_ledger.claim(item.id, B)


def test_fail_by_a_non_holder_is_not_owner(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(NotOwner):
        fake_ledger.fail(item.id, B, "not mine", retry=True)
    assert snapshot(fake_ledger) == before


# -- release -----------------------------------------------------------------------------------


def test_release_returns_the_item_to_pending_keeping_attempts(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    fake_ledger.reap()  # attempts 1
    fake_ledger.claim(item.id, A)
    released = fake_ledger.release(item.id, A)
    assert released.status is Status.PENDING
    assert released.attempts == 1
    assert released.agent_id is None
    assert_consistent(fake_ledger)
    nxt = fake_ledger.claim_next(Role.DEVELOPER, B)
    assert nxt is not None
    assert nxt.id == item.id


@pytest.mark.parametrize("how", ["release", "reap", "fail-retry"])
def test_item_back_in_pending_is_a_fresh_start_for_the_next_claimer(fake_ledger: Ledger, how: str) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.progress(item.id, A, 60, "half done")
    if how == "release":
        fake_ledger.release(item.id, A)
    elif how == "reap":
        expire_lease(fake_ledger, item.id)
        fake_ledger.reap()
    else:
        fake_ledger.fail(item.id, A, "flaky", retry=True)
    back = fake_ledger.get(item.id)
    assert (back.status, back.progress, back.note, back.agent_id) == (Status.PENDING, 0, "", None)
    assert_consistent(fake_ledger)


def test_release_by_a_non_holder_is_not_owner(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    before = snapshot(fake_ledger)
    with pytest.raises(NotOwner):
        fake_ledger.release(item.id, B)
    assert snapshot(fake_ledger) == before


def test_release_of_a_pending_item_is_not_owner(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    with pytest.raises(NotOwner):
        fake_ledger.release(item.id, A)


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_of_a_pending_item_cancels_it_at_once(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    got = fake_ledger.cancel(item.id, B)
    assert got.status is Status.CANCELLED
    assert got.completed_at is not None
    assert_consistent(fake_ledger)
    assert fake_ledger.claim_next(Role.DEVELOPER, A) is None
    assert events_of(fake_ledger, item.id) == [EventKind.SUBMITTED, EventKind.CANCELLED]


def test_cancel_of_a_held_item_requests_it_and_release_cancels_it(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    requested = fake_ledger.cancel(item.id, B)
    assert requested.status is Status.CLAIMED
    assert requested.cancel_requested is True
    assert requested.agent_id == A
    assert_consistent(fake_ledger)
    released = fake_ledger.release(item.id, A, fence=item.fence)
    assert released.status is Status.CANCELLED
    assert_consistent(fake_ledger)
    assert events_of(fake_ledger, item.id) == [
        EventKind.SUBMITTED,
        EventKind.CLAIMED,
        EventKind.CANCEL_REQUESTED,
        EventKind.RELEASED,
        EventKind.CANCELLED,
    ]


def test_cancel_requested_item_that_is_reaped_ends_cancelled(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.cancel(item.id)
    expire_lease(fake_ledger, item.id)
    assert fake_ledger.reap() == [(item.id, Status.CANCELLED)]
    assert fake_ledger.get(item.id).status is Status.CANCELLED
    assert_consistent(fake_ledger)


def test_cancel_requested_item_failed_for_retry_ends_cancelled(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.cancel(item.id)
    assert fake_ledger.fail(item.id, A, "stopping", retry=True).status is Status.CANCELLED
    assert_consistent(fake_ledger)


def test_cancelling_twice_records_one_request(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.cancel(item.id)
    before = snapshot(fake_ledger)
    assert fake_ledger.cancel(item.id).cancel_requested is True
    assert snapshot(fake_ledger) == before


def test_cancel_of_a_finished_item_is_an_invalid_transition(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.complete(item.id, A)
    before = snapshot(fake_ledger)
    with pytest.raises(InvalidTransition, match="cannot cancel"):
        fake_ledger.cancel(item.id)
    assert snapshot(fake_ledger) == before


# -- reap --------------------------------------------------------------------------------------


def test_reap_returns_an_expired_item_to_pending_with_attempts_plus_one(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    assert fake_ledger.reap() == [(item.id, Status.PENDING)]
    back = fake_ledger.get(item.id)
    assert back.status is Status.PENDING
    assert back.attempts == 1
    assert back.agent_id is None
    assert fake_ledger.agent(A).status is AgentStatus.IDLE
    assert_consistent(fake_ledger)
    lapsed = [e for e in fake_ledger.events() if e.event is EventKind.LEASE_EXPIRED]
    assert [(e.work_id, e.agent_id, e.fence, e.status) for e in lapsed] == [
        (item.id, A, item.fence, Status.PENDING)
    ]


def test_a_second_reap_is_a_no_op(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    expire_lease(fake_ledger, item.id)
    fake_ledger.reap()
    before = snapshot(fake_ledger)
    assert fake_ledger.reap() == []
    assert snapshot(fake_ledger) == before
    assert fake_ledger.get(item.id).attempts == 1


def test_reap_makes_the_item_dead_at_max_attempts(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", max_attempts=2)
    fake_ledger.claim(item.id, A)
    expire_lease(fake_ledger, item.id)
    assert fake_ledger.reap() == [(item.id, Status.PENDING)]
    fake_ledger.claim(item.id, B)
    expire_lease(fake_ledger, item.id)
    assert fake_ledger.reap() == [(item.id, Status.DEAD)]
    dead = fake_ledger.get(item.id)
    assert (dead.status, dead.attempts) == (Status.DEAD, 2)
    assert_consistent(fake_ledger)
    assert events_of(fake_ledger, item.id)[-2:] == [EventKind.LEASE_EXPIRED, EventKind.DEAD]


def test_reap_leaves_a_live_lease_alone_and_realigns_its_registry_score(fake_ledger: Ledger) -> None:
    item = claimed(fake_ledger, A)
    fake_ledger.client.zadd(fake_ledger.keys.leases, {item.id: 0})  # stale score, key still live
    assert fake_ledger.reap() == []
    assert fake_ledger.get(item.id).status is Status.CLAIMED
    score = fake_ledger.client.zscore(fake_ledger.keys.leases, item.id)
    assert score is not None
    assert score > time.time() * 1000 + 25_000


def test_reap_with_nothing_expired_writes_nothing(fake_ledger: Ledger) -> None:
    claimed(fake_ledger, A)
    fake_ledger.submit("build")
    before = snapshot(fake_ledger)
    assert fake_ledger.reap() == []
    assert snapshot(fake_ledger) == before


def test_crashed_agents_item_becomes_claimable_again_when_its_lease_runs_out(fake_ledger: Ledger) -> None:
    item = fake_ledger.claim(fake_ledger.submit("build").id, A, lease_seconds=0.001)
    deadline = time.monotonic() + 5
    reaped: list[tuple[str, Status]] = []
    while not reaped and time.monotonic() < deadline:  # the PX runs out by itself; poll for it
        reaped = fake_ledger.reap()
    assert reaped == [(item.id, Status.PENDING)]
    again = fake_ledger.claim_next(Role.DEVELOPER, B)
    assert again is not None
    assert (again.id, again.agent_id, again.attempts) == (item.id, B, 1)
    assert again.fence is not None
    assert item.fence is not None
    assert again.fence > item.fence


def test_reap_handles_many_expired_items_in_one_pass(fake_ledger: Ledger) -> None:
    items = [claimed(fake_ledger, A) for _ in range(20)]
    for item in items:
        expire_lease(fake_ledger, item.id)
    assert sorted(fake_ledger.reap()) == sorted((i.id, Status.PENDING) for i in items)
    assert_consistent(fake_ledger)


# -- refusals change nothing -------------------------------------------------------------------


def _held(ledger: Ledger) -> str:
    return claimed(ledger, A).id


def _completed(ledger: Ledger) -> str:
    wid = claimed(ledger, A).id
    ledger.complete(wid, A)
    return wid


def _reclaimed(ledger: Ledger) -> str:
    wid = claimed(ledger, A).id  # fence 1
    ledger.release(wid, A)
    ledger.claim(wid, A)  # fence 2
    return wid


def _lapsed(ledger: Ledger) -> str:
    wid = claimed(ledger, A).id
    expire_lease(ledger, wid)
    return wid


def _pending(ledger: Ledger) -> str:
    return ledger.submit("build").id


Refusal = tuple[Callable[[Ledger], str], Callable[[Ledger, str], object], type[Exception]]
REFUSALS: dict[str, Refusal] = {
    "claim held by another": (_held, lambda lg, w: lg.claim(w, B), ClaimConflict),
    "claim completed": (_completed, lambda lg, w: lg.claim(w, B), InvalidTransition),
    "claim lapsed, unreaped": (_lapsed, lambda lg, w: lg.claim(w, B), ClaimConflict),
    "heartbeat by non-holder": (_held, lambda lg, w: lg.heartbeat(w, B), NotOwner),
    "heartbeat with stale fence": (_reclaimed, lambda lg, w: lg.heartbeat(w, A, fence=1), LeaseLost),
    "heartbeat of pending": (_pending, lambda lg, w: lg.heartbeat(w, A), NotOwner),
    "progress by non-holder": (_held, lambda lg, w: lg.progress(w, B, 5), NotOwner),
    "progress with stale fence": (_reclaimed, lambda lg, w: lg.progress(w, A, 5, fence=1), LeaseLost),
    "progress after lapse": (_lapsed, lambda lg, w: lg.progress(w, A, 5), LeaseLost),
    "progress 'abc'": (_held, lambda lg, w: lg.progress(w, A, "abc"), BadInput),
    "progress of completed": (_completed, lambda lg, w: lg.progress(w, A, 5), InvalidTransition),
    "complete twice": (_completed, lambda lg, w: lg.complete(w, A), InvalidTransition),
    "complete by non-holder": (_held, lambda lg, w: lg.complete(w, B), NotOwner),
    "complete with stale fence": (_reclaimed, lambda lg, w: lg.complete(w, A, fence=1), LeaseLost),
    "complete with bad points": (_held, lambda lg, w: lg.complete(w, A, points=-1), BadInput),
    "fail by non-holder": (_held, lambda lg, w: lg.fail(w, B, "x", retry=True), NotOwner),
    "fail of completed": (_completed, lambda lg, w: lg.fail(w, A, "x"), InvalidTransition),
    "release by non-holder": (_held, lambda lg, w: lg.release(w, B), NotOwner),
    "release with stale fence": (_reclaimed, lambda lg, w: lg.release(w, A, fence=1), LeaseLost),
    "release of pending": (_pending, lambda lg, w: lg.release(w, A), NotOwner),
    "cancel of completed": (_completed, lambda lg, w: lg.cancel(w), InvalidTransition),
    "zero fence": (_held, lambda lg, w: lg.complete(w, A, fence=0), BadInput),
    "unknown id": (_held, lambda lg, w: lg.claim(w + "0", A), NotFound),
}


@pytest.mark.parametrize(("setup", "attempt", "error"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refused_operation_leaves_items_registries_and_stream_unchanged(
    fake_ledger: Ledger,
    setup: Callable[[Ledger], str],
    attempt: Callable[[Ledger, str], object],
    error: type[Exception],
) -> None:
    wid = setup(fake_ledger)
    before = snapshot(fake_ledger)
    with pytest.raises(error):
        attempt(fake_ledger, wid)
    assert snapshot(fake_ledger) == before


# -- not found ---------------------------------------------------------------------------------

UNKNOWN = "work_0000000000000000001_000000000000"
ON_UNKNOWN: dict[str, Callable[[Ledger], object]] = {
    "get": lambda lg: lg.get(UNKNOWN),
    "claim": lambda lg: lg.claim(UNKNOWN, A),
    "heartbeat": lambda lg: lg.heartbeat(UNKNOWN, A),
    "progress": lambda lg: lg.progress(UNKNOWN, A, 5),
    "complete": lambda lg: lg.complete(UNKNOWN, A),
    "fail": lambda lg: lg.fail(UNKNOWN, A, "x"),
    "release": lambda lg: lg.release(UNKNOWN, A),
    "cancel": lambda lg: lg.cancel(UNKNOWN),
}


@pytest.mark.parametrize("operation", ON_UNKNOWN.values(), ids=ON_UNKNOWN.keys())
def test_unknown_work_id_is_not_found_and_writes_nothing(
    fake_ledger: Ledger, operation: Callable[[Ledger], object]
) -> None:
    fake_ledger.submit("build")
    before = snapshot(fake_ledger)
    with pytest.raises(NotFound, match=f"no work item {UNKNOWN}") as caught:
        operation(fake_ledger)
    assert caught.value.exit_code == 4
    assert snapshot(fake_ledger) == before


def test_unknown_agent_is_not_found(fake_ledger: Ledger) -> None:
    with pytest.raises(NotFound, match="no agent nobody"):
        fake_ledger.agent("nobody")


def test_malformed_work_id_is_bad_input_not_not_found(fake_ledger: Ledger) -> None:
    with pytest.raises(BadInput, match="is not a work id"):
        fake_ledger.get("no such id")


# -- registries --------------------------------------------------------------------------------


def test_registries_agree_with_items_after_every_operation(fake_ledger: Ledger) -> None:
    lg = fake_ledger
    steps: list[Callable[[], object]] = []
    a = lg.submit("build", priority="high")
    b = lg.submit("test", role="qa", team="blue")
    c = lg.submit("plan", role="pm", priority="critical", max_attempts=1)
    d = lg.submit("ship", role="devops", claim_for=B)
    assert_consistent(lg)
    steps = [
        lambda: lg.claim(a.id, A),
        lambda: lg.progress(a.id, A, 30),
        lambda: lg.heartbeat(a.id, A),
        lambda: lg.claim_next("qa", B),
        lambda: lg.fail(b.id, B, "flaky", retry=True),
        lambda: lg.claim(c.id, A),
        lambda: expire_lease(lg, c.id),
        lg.reap,  # c goes dead (max_attempts 1)
        lambda: lg.cancel(d.id),
        lambda: lg.release(d.id, B),  # d cancelled
        lambda: lg.complete(a.id, A, points=3),
        lambda: lg.claim(b.id, A),
        lambda: lg.release(b.id, A),
        lambda: lg.cancel(b.id),
        lambda: lg.submit("again", claim_for=A),
    ]
    for n, step in enumerate(steps):
        step()
        if n != 6:  # between a simulated expiry and the reap, the lease registry is due, not wrong
            assert_consistent(lg)
    counts = lg.counts()
    assert counts[Status.COMPLETED] == 1
    assert counts[Status.DEAD] == 1
    assert counts[Status.CANCELLED] == 2
    assert counts[Status.CLAIMED] == 1


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
    capped = _with_settings(fake_ledger, events_max_len=100)
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
    updated_ms = [int(_field(fake_ledger, i.id, "updated_at") or 0) // 1000 for i in listed]
    assert updated_ms == sorted(updated_ms, reverse=True)
    assert int(_field(fake_ledger, items[0].id, "updated_at") or 0) // 1000 == updated_ms[0]
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
