"""``swarm health`` names the waiting work types that no live worker has a handler for."""

from __future__ import annotations

from swarm.health_handlers import unhandled_work
from swarm.ledger import Ledger
from swarm.models import AgentStatus, Role


def _now_ms(ledger: Ledger) -> int:
    seconds, micros = ledger.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_types_without_a_live_handler_are_named_per_role(fake_ledger: Ledger) -> None:
    fake_ledger.register_agent("dev-1", role="developer", handles={"feature_development"})
    fake_ledger.register_agent("qa-1", role="qa", handles={"*"})
    for _ in range(2):
        fake_ledger.submit("feature", "x", role="developer")
    fake_ledger.submit("feature_development", "x", role="developer")
    fake_ledger.submit("review", "x", role="qa")
    fake_ledger.submit("plan", "x", role="pm")
    fake_ledger.submit("plan", "for a person", role="pm", dispatch=False)  # no worker's business
    found = {(u.role, u.type): u.waiting for u in unhandled_work(fake_ledger, _now_ms(fake_ledger))}
    assert found == {(Role.DEVELOPER, "feature"): 2, (Role.PM, "plan"): 1}


def test_an_offline_workers_handlers_do_not_count(fake_ledger: Ledger) -> None:
    fake_ledger.register_agent("qa-1", role="qa", handles={"review"})
    fake_ledger.submit("review", "x", role="qa")
    assert unhandled_work(fake_ledger, _now_ms(fake_ledger)) == []
    fake_ledger.mark_agent("qa-1", AgentStatus.OFFLINE)
    found = unhandled_work(fake_ledger, _now_ms(fake_ledger))
    assert [(u.role, u.type) for u in found] == [(Role.QA, "review")]


def test_an_agent_that_does_not_say_what_it_handles_is_taken_to_handle_anything(fake_ledger: Ledger) -> None:
    fake_ledger.register_agent("person-1", role="qa")  # registered by hand: it may claim anything
    fake_ledger.submit("review", "x", role="qa")
    assert unhandled_work(fake_ledger, _now_ms(fake_ledger)) == []
