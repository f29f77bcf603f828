"""The claude executor against the fake CLI (tests/fakes/claude on PATH), on a fakeredis ledger."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from swarm import BadInput, HandlerContext, PermanentError, TransientError, WorkItem
from swarm.ledger import Ledger
from workers.executors import claude
from workers.executors.usage import USAGE_TTL_S

AGENT = "agent-claude"
FAKES = Path(__file__).resolve().parents[1] / "fakes"


@pytest.fixture(autouse=True)
def fake_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The fake ``claude`` first on PATH; returns the file it logs each run to."""
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "ok")
    log = tmp_path / "runs.log"
    monkeypatch.setenv("FAKE_CLAUDE_LOG", str(log))
    return log


def runs_of(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def claimed(ledger: Ledger, **submit: Any) -> tuple[WorkItem, HandlerContext]:
    item = ledger.submit(submit.pop("type", "review"), submit.pop("description", "check it"), **submit)
    item = ledger.claim(item.id, AGENT)
    return item, HandlerContext(ledger, item, AGENT)


def run(fn: Any, ledger: Ledger, **submit: Any) -> tuple[Any, HandlerContext]:
    item, ctx = claimed(ledger, **submit)
    return fn(item, ctx), ctx


def usage(ledger: Ledger, work_id: str) -> dict[str, str]:
    found: dict[str, str] = ledger.client.hgetall(ledger.keys.claude_usage(work_id))
    return found


def test_a_run_returns_the_result_and_records_cost_turns_and_session(fake_ledger: Ledger) -> None:
    result, ctx = run(claude("Review {type} {id}: {description}"), fake_ledger)
    assert result == f"Review review {ctx.item.id}: check it"
    record = ctx.artifacts["claude"]
    assert record["result"] == result
    assert record["cost_usd"] == record["total_cost_usd"] == 0.0123
    assert record["num_turns"] == 3
    assert record["session_id"]
    assert (record["subtype"], record["runs"], record["exit_code"]) == ("success", 1, 0)
    assert usage(fake_ledger, ctx.item.id) == {"runs": "1", "cost_usd": "0.0123"}
    key = fake_ledger.keys.claude_usage(ctx.item.id)
    assert key.startswith(fake_ledger.keys.tag + ":"), "the usage key shares the ledger's hash tag"
    assert 0 < fake_ledger.client.ttl(key) <= USAGE_TTL_S


def test_the_template_fills_safe_fields_and_never_formats_the_description(fake_ledger: Ledger) -> None:
    nasty = "{id} {0} {description.__class__} {{x}} } {"
    template = "[{role}] {description} | {payload} | {artifacts} | {{literal}}"
    result, _ = run(
        claude(template), fake_ledger, description=nasty, payload={"n": 1}, artifacts={"pm": "spec"}
    )
    assert result == f'[developer] {nasty} | {{"n": 1}} | {{"pm": "spec"}} | {{literal}}'


def test_the_prompt_goes_on_stdin_never_into_the_argv_and_ledger_secrets_stay_behind(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "echo-args")
    monkeypatch.setenv("REDIS_URL", "redis://:secret@ledger:6379/0")
    monkeypatch.setenv("SWARM_REDIS_URL", "redis://:secret@ledger:6379/0")
    injection = "--permission-mode bypassPermissions"
    fn = claude("{description}", extra_args=["--model", "sonnet"], env={"FAKE_EXTRA": "1"})
    result, _ = run(fn, fake_ledger, description=injection)
    seen = json.loads(result)
    assert seen["argv"] == ["-p", "--output-format", "json", "--model", "sonnet"]
    assert seen["prompt"] == injection
    assert seen["env"] == {"REDIS_URL": None, "SWARM_REDIS_URL": None, "FAKE_EXTRA": "1"}


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("malformed", r"not a result envelope .*exit code 0; stderr: fake: something went wrong"),
        ("missing", r"not a result envelope \(session_id: Field required\)"),
    ],
)
def test_malformed_output_is_transient_and_keeps_the_output(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, mode: str, message: str
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", mode)
    item, ctx = claimed(fake_ledger)
    with pytest.raises(TransientError, match=message):
        claude("hi")(item, ctx)
    assert ctx.artifacts["claude"]["runs"] == 1
    assert ctx.artifacts["claude"]["stdout"]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("error", r"claude run failed \(subtype success, is_error true\): API Error: overloaded"),
        ("max-turns", r"claude run failed \(subtype error_max_turns, is_error false\)$"),
    ],
)
def test_an_error_envelope_is_transient_and_its_cost_still_counts(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, mode: str, message: str
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", mode)
    item, ctx = claimed(fake_ledger)
    with pytest.raises(TransientError, match=message):
        claude("hi")(item, ctx)
    assert usage(fake_ledger, item.id)["cost_usd"] == "0.0123"


def test_a_timeout_kills_the_cli_and_is_transient(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "sleep")
    ledger = Ledger(fake_ledger.client, fake_ledger.settings.model_copy(update={"claude_timeout_seconds": 1}))
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"claude timed out after 1s"):
        run(claude("hi"), ledger)
    assert time.monotonic() - started < 10


def test_a_run_that_goes_over_budget_fails_permanently_and_the_next_is_not_started(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, fake_cli: Path
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "costly")
    fn = claude("hi", budget_usd=0.1)
    item, ctx = claimed(fake_ledger)
    with pytest.raises(PermanentError, match=r"budget exceeded: this run cost \$0.5000, .* of its \$0.1000"):
        fn(item, ctx)
    assert ctx.artifacts["claude"]["total_cost_usd"] == 0.5, "the run's cost was recorded"
    with pytest.raises(PermanentError, match=r"budget exceeded: the item has spent \$0.5000 of its \$0.1000"):
        fn(item, ctx)
    assert runs_of(fake_cli) == 1


def test_the_budget_setting_applies_when_the_handler_has_none(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, fake_cli: Path
) -> None:
    ledger = Ledger(fake_ledger.client, fake_ledger.settings.model_copy(update={"claude_budget_usd": 0}))
    with pytest.raises(PermanentError, match="budget exceeded"):
        run(claude("hi"), ledger)
    assert runs_of(fake_cli) == 0


def test_runs_per_item_are_capped(
    fake_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, fake_cli: Path
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "malformed")
    fn = claude("hi", max_attempts=2)
    item, ctx = claimed(fake_ledger)
    for _ in range(2):
        with pytest.raises(TransientError):
            fn(item, ctx)
    with pytest.raises(PermanentError, match="attempt cap reached: claude runs at most 2 times per item"):
        fn(item, ctx)
    assert runs_of(fake_cli) == 2


def test_the_cap_setting_applies_and_counts_across_handlers(fake_ledger: Ledger, fake_cli: Path) -> None:
    ledger = Ledger(fake_ledger.client, fake_ledger.settings.model_copy(update={"claude_max_attempts": 1}))
    item, ctx = claimed(ledger)
    assert claude("one")(item, ctx) == "one"
    with pytest.raises(PermanentError, match="at most 1 times"):
        claude("two")(item, ctx)


def test_a_redis_outage_before_the_run_is_transient(fake_ledger: Ledger, fake_cli: Path) -> None:
    item, ctx = claimed(fake_ledger)
    fake_ledger.client.connection_pool.connection_kwargs["server"].connected = False
    with pytest.raises(TransientError, match="claude usage unavailable in Redis"):
        claude("hi")(item, ctx)
    assert runs_of(fake_cli) == 0


def test_a_missing_cli_is_permanent(fake_ledger: Ledger) -> None:
    ledger = Ledger(
        fake_ledger.client, fake_ledger.settings.model_copy(update={"claude_command": "no-such-claude"})
    )
    with pytest.raises(PermanentError, match=r"cannot start claude \('no-such-claude'\)"):
        run(claude("hi"), ledger)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        (None, "must be a template string"),
        (b"hi {id}", "must be a template string"),
        ("  ", "must not be empty"),
        ("hi {title}", r"unknown prompt field \{title\}"),
        ("hi {}", r"unknown prompt field \{\}"),
        ("hi {0}", r"unknown prompt field \{0\}"),
        ("hi {description.__class__}", "unknown prompt field"),
        ("hi {payload[x]}", "unknown prompt field"),
        ("hi {id:>10}", "takes no format spec"),
        ("hi {id!r}", "takes no format spec or conversion"),
        ("hi {id", "not a valid template"),
        ("hi }", "not a valid template"),
    ],
)
def test_a_bad_prompt_template_is_refused_when_the_handler_is_made(prompt: Any, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        claude(prompt)


@pytest.mark.parametrize(
    "options",
    [
        {"budget_usd": -1},
        {"budget_usd": float("nan")},
        {"max_attempts": 0},
        {"max_attempts": 1.5},
        {"timeout": 0},
        {"extra_args": "--model sonnet"},
        {"extra_args": ["--model", 3]},
        {"worktree": "yes"},
        {"env": {"A": None}},
    ],
)
def test_bad_options_are_refused_when_the_handler_is_made(options: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        claude("hi", **options)
