"""Tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT): nothing recorded, items still get a trace id."""

from __future__ import annotations

import re

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from swarm import tracing
from swarm.ledger import Dispatch, Handoff, Ledger


def test_without_an_endpoint_setup_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tracing.ENDPOINT_ENV, raising=False)
    assert tracing.setup_tracing("swarm-test") is False
    assert not tracing.enabled()
    with tracing.span("swarm.claim") as span:
        assert not span.is_recording()
        assert trace.get_current_span() is not span or not span.get_span_context().is_valid
    with tracing.submit_span() as span:
        assert tracing.trace_id_of(span) is None
        assert tracing.traceparent_of(span) is None
    assert tracing.log_ids() is None


def test_a_submitted_item_gets_a_random_trace_id_and_no_traceparent(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("feature", "x", role="qa")
    assert re.fullmatch(r"[0-9a-f]{32}", item.trace_id)
    assert item.traceparent is None
    assert Dispatch.of(item).traceparent is None


def test_a_chosen_trace_id_is_kept(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("feature", "x", trace_id="ab" * 16)
    assert item.trace_id == "ab" * 16


def test_traceparent_round_trip() -> None:
    ctx = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    text = tracing.traceparent_of(NonRecordingSpan(ctx))
    assert text == f"00-{0xABC:032x}-{0xDEF:016x}-01"
    parsed = tracing.parse_traceparent(text)
    assert parsed is not None
    assert (parsed.trace_id, parsed.span_id, parsed.is_remote) == (0xABC, 0xDEF, True)


@pytest.mark.parametrize(
    "bad", [None, "", "00-xyz", "00-" + "0" * 32 + "-" + "0" * 16 + "-01", "00-zz-yy-01"]
)
def test_malformed_traceparents_are_ignored(bad: str | None) -> None:
    assert tracing.parse_traceparent(bad) is None


PARENT = "00-" + "12" * 16 + "-" + "34" * 8 + "-01"  # as a traced submit stores it


def test_a_handed_off_stage_copies_the_traceparent(fake_ledger: Ledger) -> None:
    first = fake_ledger.submit("feature", "x", role="pm", workflow="feature", stage="pm", trace_id="12" * 16)
    fake_ledger.client.hset(fake_ledger.keys.item(first.id), "traceparent", PARENT)
    claimed = fake_ledger.claim(first.id, "agent_a")
    done = fake_ledger.complete(
        first.id, "agent_a", fence=claimed.fence, handoff=Handoff("architect", "architect")
    )
    assert done.next_id is not None
    child = fake_ledger.get(done.next_id)
    assert child.traceparent == PARENT
    assert child.trace_id == first.trace_id


def test_the_outbox_sweep_gets_the_traceparent_to_send_in(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("feature", "lost send", role="qa", trace_id="12" * 16)
    fake_ledger.client.hset(fake_ledger.keys.item(item.id), "traceparent", PARENT)
    fake_ledger.client.zadd(fake_ledger.keys.outbox, {item.id: 0})  # its grace ran out
    (taken,) = fake_ledger.due_dispatches()
    assert taken.traceparent == PARENT


def test_a_tasks_expected_exception_leaves_its_run_span_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery's instrumentation means to skip a task's ``throws`` but looks at billiard's wrapper
    of the exception: swarm's handler skips them (``ItemFailed``), and passes on the rest."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    seen: list[BaseException] = []
    monkeypatch.setattr(
        CeleryInstrumentor, "_trace_failure", staticmethod(lambda **kw: seen.append(kw["exception"]))
    )

    class Task:
        throws = (KeyError,)

    expected, unexpected = KeyError("item failed"), ValueError("a bug")
    tracing._trace_unexpected_failure(sender=Task(), exception=expected)
    tracing._trace_unexpected_failure(sender=Task(), exception=unexpected)
    tracing._trace_unexpected_failure(sender=object(), exception=expected)
    assert seen == [unexpected, expected]
