"""The ledger's submit (SPEC §4): defaults, options, byte-exact text, caps, refusals, claim_for."""

from __future__ import annotations

import re
from typing import Any

import fakeredis
import pytest
from ledger_helpers import (
    A,
    B,
    CountingRedis,
    assert_consistent,
    events_of,
    raw_client,
    snapshot,
    with_settings,
)

from swarm.errors import BadInput
from swarm.ledger import Ledger
from swarm.models import EventKind, Priority, Role, Status
from swarm.settings import Settings

WORK_ID = re.compile(r"^work_\d{19}_[0-9a-f]{12}$")


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
    stored = raw_client(fake_ledger).hget(fake_ledger.keys.item(item.id), "description")
    assert stored == text.encode("utf-8")


def test_one_mebibyte_description_round_trips_byte_exact(fake_ledger: Ledger) -> None:
    text = ("0123456789abcdé🚀\n\x00\"'" * 50_000)[: 1024 * 1024 // 2]
    text = text + "x" * (1024 * 1024 - len(text.encode()))
    assert len(text.encode()) == 1024 * 1024  # exactly the default cap
    item = fake_ledger.submit("build", text)
    assert fake_ledger.get(item.id).description == text
    stored = raw_client(fake_ledger).hget(fake_ledger.keys.item(item.id), "description")
    assert stored == text.encode("utf-8")


def test_description_one_byte_over_the_default_cap_is_refused_and_nothing_written(
    fake_ledger: Ledger,
) -> None:
    with pytest.raises(BadInput, match=r"description is 1048577 bytes; the cap is 1048576"):
        fake_ledger.submit("build", "x" * (1024 * 1024 + 1))
    assert snapshot(fake_ledger) == {}


def test_description_cap_is_configurable(fake_ledger: Ledger) -> None:
    small = with_settings(fake_ledger, description_max_bytes=16)
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
