"""Workflows: completing a stage hands the work on once, with artifacts, trace and parent chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.errors import BadInput
from swarm.ledger import Dispatch, Ledger
from swarm.models import EventKind, Role, Status, WorkItem
from swarm.workflows import Workflow, load_workflows
from workers.context import HandlerContext
from workers.execute import Outcome, execute
from workers.handlers import HandlerRegistry

pytestmark = pytest.mark.integration

FEATURE = Workflow(
    "feature",
    (Role.PM, Role.ARCHITECT, Role.DEVELOPER, Role.QA, Role.DEVOPS),
    {Role.QA: Role.DEVELOPER},
    max_loops=2,
)
WORKFLOWS = {"feature": FEATURE}


def stage_handlers(qa_rejections: int = 0) -> HandlerRegistry:
    """Each role leaves an artifact; QA sends the work back ``qa_rejections`` times."""
    handlers = HandlerRegistry()
    rejections = {"left": qa_rejections}

    def work(item: WorkItem, ctx: HandlerContext) -> str:
        ctx.artifact(f"{item.role.value}_{item.loops}", f"by {ctx.agent_id}")
        if item.role is Role.QA and rejections["left"] > 0:
            rejections["left"] -= 1
            ctx.send_back("tests fail")
        return item.role.value

    for role in Role:
        handlers.register("feature", role, work)
    return handlers


def run_chain(ledger: Ledger, first: WorkItem, handlers: HandlerRegistry) -> list[WorkItem]:
    """Executes each stage as a worker of its role would, following next_id."""
    chain, work_id = [], first.id
    for _ in range(20):
        item = ledger.get(work_id)
        run = execute(ledger, work_id, f"{item.role.value}-agent", handlers=handlers, workflows=WORKFLOWS)
        assert run.item is not None
        chain.append(run.item)
        if run.next_id is None:
            assert run.next_dispatch is None
            return chain
        assert run.next_dispatch == Dispatch.of(ledger.get(run.next_id)), "sent as the ledger wrote it"
        work_id = run.next_id
    raise AssertionError("the workflow did not end")


def test_a_feature_flows_through_all_five_roles_once(ledger: Ledger) -> None:
    first = ledger.submit("feature", "Add SSO", role="pm", workflow="feature", stage="pm", points=5)
    chain = run_chain(ledger, first, stage_handlers())
    assert [i.role for i in chain] == list(FEATURE.stages)
    assert all(i.status is Status.COMPLETED for i in chain)
    assert {i.trace_id for i in chain} == {first.trace_id}, "one trace across every handoff"
    assert [i.parent_id for i in chain] == [None, *(i.id for i in chain[:-1])]
    assert [i.next_id for i in chain] == [*(i.id for i in chain[1:]), None]
    assert set(chain[-1].artifacts) == {"pm_0", "architect_0", "developer_0", "qa_0", "devops_0"}
    assert ledger.velocity() == {"core": 5}, "a feature's points count once, at its last stage"
    submitted = [e for e in ledger.events(1000) if e.event is EventKind.SUBMITTED]
    assert len(submitted) == 5, "one item per stage, each created once"


def test_qa_sends_work_back_to_the_developer_a_bounded_number_of_times(ledger: Ledger) -> None:
    first = ledger.submit("feature", "flaky", role="pm", workflow="feature", stage="pm")
    chain = run_chain(ledger, first, stage_handlers(qa_rejections=1))
    roles = [i.role.value for i in chain]
    assert roles == ["pm", "architect", "developer", "qa", "developer", "qa", "devops"]
    assert chain[-1].status is Status.COMPLETED
    assert "qa_send_back_1" in chain[-1].artifacts


def test_sending_back_past_max_loops_fails_the_work(ledger: Ledger) -> None:
    first = ledger.submit("feature", "hopeless", role="pm", workflow="feature", stage="pm")
    chain = run_chain(ledger, first, stage_handlers(qa_rejections=99))
    last = chain[-1]
    assert (last.role, last.status) == (Role.QA, Status.FAILED)
    assert last.error is not None
    assert "max_loops 2" in last.error
    assert [i.role.value for i in chain].count("developer") == 3


def test_a_duplicate_delivery_of_a_completed_stage_hands_off_nothing_more(ledger: Ledger) -> None:
    first = ledger.submit("feature", "x", role="pm", workflow="feature", stage="pm")
    handlers = stage_handlers()
    run = execute(ledger, first.id, "pm-1", handlers=handlers, workflows=WORKFLOWS)
    assert run.outcome is Outcome.COMPLETED
    again = execute(ledger, first.id, "pm-2", handlers=handlers, workflows=WORKFLOWS)
    assert again.outcome is Outcome.SKIPPED
    assert ledger.counts()[Status.PENDING] == 1


def test_the_shipped_workflow_file_defines_feature_and_refuses_bad_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config/workflows.toml: the packaged one
    shipped = load_workflows(None)
    assert shipped["feature"].stages == FEATURE.stages
    assert shipped["feature"].send_back == {Role.QA: Role.DEVELOPER}
    bad = tmp_path / "bad.toml"
    bad.write_text('[x]\nstages = ["pm", "boss"]\n')
    with pytest.raises(BadInput, match="not a valid workflow"):
        load_workflows(bad)
    with pytest.raises(BadInput, match="not a file"):
        load_workflows(tmp_path / "missing.toml")
