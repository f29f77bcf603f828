"""Workers honour the lease the improvement cycle set for a role (``keys.tuning``), read at most
once a second per process."""

from __future__ import annotations

from typing import Any

import pytest

from swarm.ledger import Ledger
from swarm.models import WorkItem
from workers import lease
from workers.context import HandlerContext
from workers.execute import Outcome, execute
from workers.handlers import HandlerRegistry
from workers.lease import LeaseTuning


def _handlers(seen: dict[str, Any]) -> HandlerRegistry:
    handlers = HandlerRegistry()

    def record(item: WorkItem, ctx: HandlerContext) -> None:
        seen["lease_ms"] = ctx.ledger.client.hget(ctx.ledger.keys.item(item.id), "lease_ms")

    for role in ("qa", "developer"):
        handlers.register("t", role, record)
    return handlers


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease, "tuning", LeaseTuning())
    monkeypatch.setattr("workers.execute.tuning", lease.tuning)


def test_a_claim_uses_the_tuned_lease_of_its_role_and_the_default_otherwise(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    ledger.client.hset(ledger.keys.tuning, "lease_seconds:qa", "45.0")
    seen: dict[str, Any] = {}
    qa = ledger.submit("t", "x", role="qa")
    assert execute(ledger, qa.id, "a1", handlers=_handlers(seen), workflows={}).outcome is Outcome.COMPLETED
    assert seen["lease_ms"] == "45000"
    dev = ledger.submit("t", "y", role="developer")
    execute(ledger, dev.id, "a1", handlers=_handlers(seen), workflows={})
    assert seen["lease_ms"] == str(round(ledger.settings.lease_seconds * 1000))


def test_the_tuning_is_read_at_most_once_per_ttl_and_bad_values_are_ignored(fake_ledger: Ledger) -> None:
    ledger = fake_ledger
    tuning = LeaseTuning(ttl=3600)
    ledger.client.hset(ledger.keys.tuning, mapping={"lease_seconds:qa": "45", "lease_seconds:pm": "-3"})
    item = ledger.submit("t", "x", role="qa")
    assert tuning.lease_for(ledger, item.id) == 45.0
    assert tuning.lease_for(ledger, item.id, role="pm") is None, "an out-of-bounds lease is ignored"
    ledger.client.hset(ledger.keys.tuning, "lease_seconds:qa", "90")
    assert tuning.lease_for(ledger, item.id) == 45.0, "cached"
    assert LeaseTuning(ttl=0).lease_for(ledger, item.id) == 90.0
    ledger.client.delete(ledger.keys.tuning)
    assert LeaseTuning(ttl=0).lease_for(ledger, item.id) is None


def test_the_cycle_and_the_workers_read_the_tuning_hash_alike(fake_ledger: Ledger) -> None:
    from ceremonies.improve.discovery import lease_overrides
    from swarm.models import Role

    ledger = fake_ledger
    ledger.client.hset(
        ledger.keys.tuning,
        mapping={"lease_seconds:qa": "30", "lease_seconds:pm": "100000", "lease_seconds:devops": "soon"},
    )
    assert LeaseTuning(ttl=0).leases(ledger) == {"qa": 30.0}, "out of bounds or unreadable: ignored"
    assert lease_overrides(ledger) == {Role.QA: 30.0}, "discovery sees the leases the workers use"
