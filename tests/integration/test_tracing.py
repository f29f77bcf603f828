"""Tracing across real processes: ``swarm submit`` and real ``swarm worker`` processes export
OTLP/HTTP to a collector of the test's own, and one item's spans form one trace."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.ledger import Ledger
from swarm.models import Role, Status, WorkItem

from .otlp_collector import CollectedSpan, Collector, running_collector, tracing_env
from .polling import wait_until
from .workers_harness import running_worker

pytestmark = pytest.mark.integration

DEADLINE_S = 90.0
ROLES = "pm,architect,developer,qa,devops"
STAGES = [Role.PM, Role.ARCHITECT, Role.DEVELOPER, Role.QA, Role.DEVOPS]
RUN_SPAN = "run/swarm.execute"
SWARM_ATTRIBUTES = {"swarm.work_id", "swarm.type", "swarm.role", "swarm.agent_id", "swarm.fence"}


def submit_cli(redis_url: str, prefix: str, env: dict[str, str], *args: str) -> WorkItem:
    """``swarm submit ... --json`` as its own process (the submitting side of the trace)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
        "REDIS_URL": redis_url,
        "SWARM_KEY_PREFIX": prefix,
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "swarm", "submit", *args, "--json"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return WorkItem.model_validate(json.loads(done.stdout))


def stage_chain(ledger: Ledger, first: WorkItem) -> list[WorkItem]:
    """The workflow's items, first stage first, following ``next_id``."""
    chain = [ledger.get(first.id)]
    while chain[-1].next_id is not None:
        chain.append(ledger.get(chain[-1].next_id))
    return chain


def wait_for_workflow(ledger: Ledger, first: WorkItem, log: Path) -> list[WorkItem]:
    def done() -> bool:
        chain = stage_chain(ledger, first)
        return len(chain) == len(STAGES) and chain[-1].status is Status.COMPLETED

    wait_until(
        done, "the devops stage to complete", DEADLINE_S, explain=lambda: log.read_text(errors="replace")
    )
    return stage_chain(ledger, first)


class Trace:
    """The collected spans, indexed."""

    def __init__(self, spans: list[CollectedSpan]) -> None:
        self.spans = spans
        self.by_id = {s.span_id: s for s in spans}

    def one(self, name: str, work_id: str | None = None) -> CollectedSpan | None:
        found = [
            s
            for s in self.spans
            if s.name == name and (work_id is None or s.attributes.get("swarm.work_id") == work_id)
        ]
        if name == "swarm.claim":
            # A message delivered again on a loaded machine (the ledger re-sends an owed item
            # whose message is late) is turned away by the ledger: its claim span is a refusal,
            # with no fence. Exactly one claim per item wins, and carries the fence.
            refused = [s for s in found if "swarm.fence" not in s.attributes]
            assert all(s.status == "ERROR" and "cannot claim" in s.status_message for s in refused), refused
            found = [s for s in found if "swarm.fence" in s.attributes]
        assert len(found) <= 1, f"more than one {name} span for {work_id}: {found}"
        return found[0] if found else None

    def ancestors(self, span: CollectedSpan) -> list[CollectedSpan]:
        """Its parent, grandparent, ... as far as they were collected."""
        out: list[CollectedSpan] = []
        while span.parent_id is not None and span.parent_id in self.by_id:
            span = self.by_id[span.parent_id]
            out.append(span)
        return out

    def run_span(self, work_id: str) -> CollectedSpan | None:
        """The worker's ``run/swarm.execute`` span that claimed ``work_id``."""
        claim = self.one("swarm.claim", work_id)
        if claim is None or claim.parent_id not in self.by_id:
            return None
        return self.by_id[claim.parent_id]


def complete_trace(collector: Collector, chain: list[WorkItem]) -> Trace | None:
    """The trace once every stage's claim, completion and execute span and the submit span
    arrived, and each execute span's ancestry reaches the submit span; else None."""
    trace = Trace(collector.spans)
    submit = trace.one("swarm.submit")
    if submit is None:
        return None
    for item in chain:
        run = trace.run_span(item.id)
        if run is None or trace.one("swarm.complete", item.id) is None:
            return None
        if submit not in trace.ancestors(run):
            return None
    return trace


def assert_one_trace(trace: Trace, chain: list[WorkItem]) -> None:
    trace_id = chain[0].trace_id
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert {i.trace_id for i in chain} == {trace_id}, "every stage item carries the trace"
    assert {s.trace_id for s in trace.spans} == {trace_id}, "every span is in the item's trace"
    submit = trace.one("swarm.submit")
    assert submit is not None
    assert submit.parent_id is None, "the submit span starts the trace"
    assert submit.service == "swarm-cli"
    names_submit = f"00-{trace_id}-{submit.span_id}-"  # then the trace flags
    assert all((i.traceparent or "").startswith(names_submit) for i in chain), "traceparent copied"
    previous = submit
    for item in chain:
        run = trace.run_span(item.id)
        assert run is not None
        assert run.name == RUN_SPAN
        assert run.service == "swarm-worker"
        lineage = trace.ancestors(run)
        nearest = next(s for s in lineage if s.name in (RUN_SPAN, "swarm.submit"))
        assert nearest == previous, f"{item.role.value}'s execute span descends from the previous stage's"
        assert lineage[0].name == "apply_async/swarm.execute", "sent by an instrumented producer"
        for name in ("swarm.claim", "swarm.complete"):
            span = trace.one(name, item.id)
            assert span is not None
            assert span.parent_id == run.span_id, f"{name} is a child of the execute span"
            assert set(span.attributes) >= SWARM_ATTRIBUTES, span.attributes
            assert span.attributes["swarm.role"] == item.role.value
            assert span.attributes["swarm.type"] == "feature"
            assert span.attributes["swarm.agent_id"] == item.agent_id
            assert span.attributes["swarm.fence"] == item.fence
        previous = run


def test_one_trace_runs_from_submit_through_all_five_roles(
    redis_url: str, prefix: str, ledger: Ledger, tmp_path: Path
) -> None:
    log = tmp_path / "all.log"
    with running_collector() as collector:
        env = tracing_env(collector)
        with running_worker(redis_url, prefix, ROLES, log, "-c", "2", env=env):
            first = submit_cli(redis_url, prefix, env, "feature", "Add SSO", "--workflow", "feature")
            chain = wait_for_workflow(ledger, first, log)
            assert [i.role for i in chain] == STAGES
            wait_until(
                lambda: complete_trace(collector, chain) is not None,
                "every stage's spans to be exported",
                DEADLINE_S,
                explain=lambda: "\n".join(f"{s.name} {s.attributes}" for s in collector.spans),
            )
        assert_one_trace(Trace(collector.spans), chain)


def test_spans_survive_prefork_children_that_exit_after_one_task(
    redis_url: str, prefix: str, ledger: Ledger, tmp_path: Path
) -> None:
    """Each child runs one task and exits: its spans reach the collector only because the child
    flushes on exit (the batch delay is a minute, longer than the test waits)."""
    log = tmp_path / "prefork.log"
    with running_collector() as collector:
        env = {**tracing_env(collector), "OTEL_BSP_SCHEDULE_DELAY": "60000"}
        args = ("--pool", "prefork", "-c", "1", "--", "--max-tasks-per-child", "1")
        with running_worker(redis_url, prefix, ROLES, log, *args, env=env):
            first = submit_cli(redis_url, prefix, env, "feature", "Add SSO", "--workflow", "feature")
            chain = wait_for_workflow(ledger, first, log)
            wait_until(
                lambda: complete_trace(collector, chain) is not None,
                "every stage's spans, flushed by the exiting children",
                DEADLINE_S,
                explain=lambda: "\n".join(f"{s.name} {s.attributes}" for s in collector.spans),
            )
        assert_one_trace(Trace(collector.spans), chain)


def test_without_an_endpoint_nothing_is_exported_and_items_still_get_a_trace_id(
    redis_url: str, prefix: str, ledger: Ledger, tmp_path: Path
) -> None:
    log = tmp_path / "all.log"
    with running_collector() as collector:
        # The traces-only endpoint would be used by an installed SDK; swarm installs none without
        # OTEL_EXPORTER_OTLP_ENDPOINT, so nothing may arrive.
        env = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{collector.endpoint}/v1/traces",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        with running_worker(redis_url, prefix, ROLES, log, "-c", "2", env=env):
            first = submit_cli(redis_url, prefix, env, "feature", "Add SSO", "--workflow", "feature")
            chain = wait_for_workflow(ledger, first, log)
        # The worker has stopped (a traced one flushes then): nothing came.
        assert collector.requests == 0
        assert collector.spans == []
    assert re.fullmatch(r"[0-9a-f]{32}", first.trace_id)
    assert {i.trace_id for i in chain} == {first.trace_id}
    assert all(i.traceparent is None for i in chain)


def test_failed_and_dead_items_end_their_spans_with_error_status_and_the_error(
    redis_url: str, prefix: str, ledger: Ledger, tmp_path: Path
) -> None:
    log = tmp_path / "dev.log"
    with running_collector() as collector:
        env = tracing_env(collector)
        once = {**env, "SWARM_MAX_ATTEMPTS": "1"}  # one attempt: a transient failure kills it
        with running_worker(
            redis_url, prefix, "developer", log, "-c", "2", env={**env, "SWARM_REAPER_INTERVAL": "0.3s"}
        ):

            def chore(with_env: dict[str, str], text: str, *more: str) -> WorkItem:
                return submit_cli(redis_url, prefix, with_env, "chore", text, "--role", "developer", *more)

            ok = chore(env, "works")
            failed = chore(env, "fails", "--payload", '{"fail": "permanent"}')
            dies = chore(once, "dies", "--payload", '{"fail": "transient"}')
            reaped = chore(once, "held", "--no-enqueue")
            ledger.claim(reaped.id, "agent_gone", lease_seconds=0.2)  # and its holder dies
            wanted = {ok.id: Status.COMPLETED, failed.id: Status.FAILED}
            wanted |= {dies.id: Status.DEAD, reaped.id: Status.DEAD}
            wait_until(
                lambda: all(ledger.get(wid).status is status for wid, status in wanted.items()),
                "each item's outcome",
                DEADLINE_S,
                explain=lambda: log.read_text(errors="replace"),
            )

            def exported() -> bool:
                trace = Trace(collector.spans)
                return (
                    all(trace.run_span(i.id) is not None for i in (ok, failed, dies))
                    and all(trace.one("swarm.fail", i.id) is not None for i in (failed, dies))
                    and trace.one("swarm.complete", ok.id) is not None
                    and trace.one("swarm.reap", reaped.id) is not None
                )

            wait_until(exported, "the outcomes' spans", DEADLINE_S)
    trace = Trace(collector.spans)
    for item, exception in ((failed, "PermanentError"), (dies, "TransientError")):
        error = ledger.get(item.id).error
        write, run = trace.one("swarm.fail", item.id), trace.run_span(item.id)
        assert write is not None
        assert run is not None
        assert (write.status, write.status_message) == ("ERROR", error), write
        assert (run.status, run.status_message) == ("ERROR", error), run
        raised = [attrs for name, attrs in run.events if name == "exception"]
        assert [a["exception.type"].rsplit(".", 1)[-1] for a in raised] == [exception], run.events
        assert "demo" in raised[0]["exception.message"]
    completed, run = trace.one("swarm.complete", ok.id), trace.run_span(ok.id)
    assert completed is not None
    assert run is not None
    assert (completed.status, run.status) == ("UNSET", "UNSET"), "a completion is no error"
    reap = trace.one("swarm.reap", reaped.id)
    assert reap is not None
    assert reap.trace_id == reaped.trace_id, "in the dead item's own trace"
    assert (reap.status, reap.status_message) == ("ERROR", "lease expired on its last attempt")
