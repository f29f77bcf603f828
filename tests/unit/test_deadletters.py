"""Dead letters (``swarm/deadletters.py``): one event, one count and one kept copy per message;
``swarm health`` and ``swarm metrics`` show them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from swarm import deadletters
from swarm.deadletters import DeadLetter, DeadLetterReason
from swarm.health import check_health
from swarm.ledger import Ledger
from swarm.metrics import exposition
from swarm.models import EventKind


def _letter(reason: DeadLetterReason = DeadLetterReason.BODY, n: int = 0) -> DeadLetter:
    return DeadLetter(
        reason=reason, detail=f"detail {n}", queue="swarm.qa.medium", task="swarm.execute",
        message_id=f"m{n}", raw='{"body": "' + "x" * 20_000 + '"}',
    )  # fmt: skip


def test_a_dead_letter_is_one_event_one_count_and_one_kept_copy(fake_ledger: Ledger) -> None:
    deadletters.record(fake_ledger, _letter(DeadLetterReason.HEADERS))
    (event,) = fake_ledger.events(10)
    assert event.event is EventKind.DEAD_LETTERED
    assert event.detail == "headers: detail 0"
    assert event.work_id is None
    assert deadletters.total(fake_ledger) == 1
    (kept,) = deadletters.recent(fake_ledger, 10)
    assert (kept["reason"], kept["queue"], kept["task"], kept["message_id"]) == (
        "headers", "swarm.qa.medium", "swarm.execute", "m0",
    )  # fmt: skip
    assert len(str(kept["raw"])) == deadletters.RAW_KEPT_CHARS, "a huge message is kept truncated"


def test_the_kept_list_is_capped_newest_first_while_counts_and_events_count_every_one(
    fake_ledger: Ledger,
) -> None:
    extra = 3
    for n in range(deadletters.KEPT + extra):
        deadletters.record(fake_ledger, _letter(n=n))
    kept = deadletters.recent(fake_ledger, deadletters.KEPT + extra)
    assert len(kept) == deadletters.KEPT
    assert kept[0]["message_id"] == f"m{deadletters.KEPT + extra - 1}"
    assert deadletters.total(fake_ledger) == deadletters.KEPT + extra


def test_health_reports_dead_letters_since_the_last_acknowledgement(fake_ledger: Ledger) -> None:
    assert check_health(fake_ledger).check("dead_letters").ok
    deadletters.record(fake_ledger, _letter(DeadLetterReason.NOT_JSON))
    deadletters.record(fake_ledger, _letter(DeadLetterReason.ARGS, 1))
    check = check_health(fake_ledger).check("dead_letters")
    assert not check.ok
    assert check.reason.startswith("2 broker message(s) dead-lettered since the last acknowledgement")
    assert "newest: args: detail 1" in check.reason
    assert deadletters.acknowledge(fake_ledger) == 2
    assert check_health(fake_ledger).check("dead_letters").ok
    deadletters.record(fake_ledger, _letter(DeadLetterReason.EMBED, 2))
    assert check_health(fake_ledger).check("dead_letters").reason.startswith("1 broker message(s)")


def test_metrics_expose_dead_letters_by_reason(fake_ledger: Ledger) -> None:
    for reason in (DeadLetterReason.ARGS, DeadLetterReason.ARGS, DeadLetterReason.UNKNOWN_TASK):
        deadletters.record(fake_ledger, _letter(reason))
    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition(fake_ledger))
        for s in family.samples
    }
    assert samples[("swarm_dead_letters_total", (("reason", "args"),))] == 2
    assert samples[("swarm_dead_letters_total", (("reason", "unknown_task"),))] == 1
