"""Helpers shared by the ledger's unit tests (tests/unit/test_ledger_*.py), all on fakeredis."""

from __future__ import annotations

from typing import Any

import fakeredis

from swarm.ledger import Ledger
from swarm.models import EventKind, Role, Status, WorkItem

A = "agent-a"
B = "agent-b"


def raw_client(ledger: Ledger) -> fakeredis.FakeRedis:
    """A non-decoding client on the same fake server, to read stored bytes as they are."""
    server = ledger.client.connection_pool.connection_kwargs["server"]
    return fakeredis.FakeRedis(server=server)


def with_settings(ledger: Ledger, **overrides: Any) -> Ledger:
    """Another ledger on the same server and namespace, with some settings changed."""
    settings = ledger.settings.model_copy(update=overrides)
    return Ledger(ledger.client, settings)


def stored_field(ledger: Ledger, work_id: str, name: str) -> str | None:
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
        assert leases[wid] == int(stored_field(ledger, wid, "lease_expires_at") or 0) // 1000
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
    outbox = set(client.zrange(keys.outbox, 0, -1))
    pending = {w for w, i in items.items() if i.status is Status.PENDING}
    manual = {w for w in items if client.hget(keys.item(w), "manual") == "1"}
    assert outbox <= pending - manual, "only pending items that go through the queues are owed a send"
    for role in Role:
        sent = set(client.zrange(keys.sent(role), 0, -1))
        assert sent <= pending - manual, f"only pending queued items are owed a delivery ({role})"
        assert all(items[w].role is role for w in sent), role
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
