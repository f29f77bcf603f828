"""The optional AI advisor: the Claude Code CLI, shown the metrics, answers with actions.

It runs exactly as the ``claude`` executor runs a work item (``workers.executors.process``: an
argv list, the prompt on stdin, its own process group killed on timeout; the ledger's
credentials are not passed on) and its stdout is the same JSON envelope
(``workers.executors.envelope``). The envelope's ``result`` text must be a JSON list of actions
that validates against the vocabulary; anything else (a timeout, a non-zero exit, a malformed
envelope, invalid JSON, an action outside the vocabulary, a run costing more than
``improve_budget_usd``) is ignored, and why is logged and recorded in the cycle. An ignored
advisor never stops a cycle: the analyser's proposals go on without it.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ceremonies.improve.discovery import Discovery
from ceremonies.improve.vocabulary import ACTIONS, KINDS, Action, action_schema
from swarm.ledger import Ledger
from swarm.models import WorkItem
from swarm.settings import Settings
from workers.context import HandlerContext
from workers.executors import process
from workers.executors.claude import STDOUT_LIMIT_BYTES
from workers.executors.envelope import MalformedEnvelope, parse_envelope
from workers.handlers import PermanentError, TransientError

STDERR_LIMIT_BYTES = 16 * 1024
ANSWER_KEPT_CHARS = 2000  # of the advisor's answer, kept in the cycle's record
_FENCED = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)

log = structlog.get_logger("swarm.improve")

INSTRUCTIONS = """You advise the self-improvement cycle of a Celery agent swarm with role-typed
worker pools (pm, architect, developer, qa, devops). Below are the metrics of the last window per
role and the live pool. Propose at most {max_actions} actions that would improve the swarm.

Answer with ONLY a JSON list of actions (no prose, no code fence). Each action must validate
against this JSON schema; "metric" is the per-role metric the action should improve and "better"
its better direction (throughput and success_rate: higher; every other metric: lower).
Pools stay within {min_c}..{max_c} slots per node. An empty list is a valid answer.

Schema:
{schema}

Metrics:
{metrics}
"""


class AdvisorReport(BaseModel):
    """What the advisor was asked, what it answered, and whether its proposals were used."""

    model_config = ConfigDict(frozen=True)

    ran: bool = False
    used: bool = False
    reason: str = ""  # why its answer was ignored ("" when used)
    proposals: list[Action] = Field(default_factory=list)
    cost_usd: float | None = None
    seconds: float | None = None
    exit_code: int | None = None
    answer: str = ""  # the start of its result text


def prompt(discovery: Discovery, settings: Settings) -> str:
    return INSTRUCTIONS.format(
        max_actions=settings.improve_max_actions,
        min_c=settings.improve_min_concurrency,
        max_c=settings.improve_max_concurrency,
        schema=json.dumps(action_schema()),
        metrics=discovery.model_dump_json(indent=1),
    )


def _context(ledger: Ledger, cycle_id: str, now: datetime) -> HandlerContext:
    """The run's context: the advisor is no work item, so nothing cancels it but its timeout."""
    item = WorkItem(id=f"improve-{cycle_id}", type="improve_advisor", fence=0, created_at=now, updated_at=now)
    return HandlerContext(ledger, item, "improve")


def advise(ledger: Ledger, discovery: Discovery, cycle_id: str) -> AdvisorReport:
    """Runs the advisor once; its proposals, or the reason they were ignored."""
    settings = ledger.settings
    if settings.improve_budget_usd <= 0:
        return _ignored(cycle_id, AdvisorReport(), "not run: improve_budget_usd is 0")
    argv = [settings.claude_command, "-p", "--output-format", "json"]
    started = time.monotonic()
    try:
        done = process.run(
            argv,
            _context(ledger, cycle_id, discovery.end),
            what="claude advisor",
            stdin=prompt(discovery, settings).encode(),
            timeout=settings.improve_advisor_timeout,
            cwd=None,
            env={},  # the worker's environment, without the ledger's credentials
            stdout_limit=STDOUT_LIMIT_BYTES,
            stderr_limit=STDERR_LIMIT_BYTES,
        )
    except (TransientError, PermanentError) as exc:  # a timeout, or no CLI to start
        seconds = round(time.monotonic() - started, 3)
        return _ignored(cycle_id, AdvisorReport(ran=True, seconds=seconds), str(exc))
    report = AdvisorReport(ran=True, seconds=done.seconds, exit_code=done.returncode)
    if done.returncode != 0:
        detail = done.stderr.text(500).strip()
        return _ignored(cycle_id, report, f"{done.describe_exit()}" + (f": {detail}" if detail else ""))
    try:
        envelope = parse_envelope(done.stdout.text())
    except MalformedEnvelope as exc:
        return _ignored(cycle_id, report, f"malformed envelope: {exc}")
    report = report.model_copy(
        update={"cost_usd": envelope.total_cost_usd, "answer": (envelope.result or "")[:ANSWER_KEPT_CHARS]}
    )
    if not envelope.succeeded:
        return _ignored(cycle_id, report, f"error envelope ({envelope.subtype})")
    if envelope.total_cost_usd > settings.improve_budget_usd:
        over = f"over budget: spent ${envelope.total_cost_usd:g} of ${settings.improve_budget_usd:g}"
        return _ignored(cycle_id, report, over)
    try:
        actions = parse_answer(envelope.result or "")
    except ValueError as exc:
        return _ignored(cycle_id, report, str(exc))
    log.info("advisor_answered", cycle_id=cycle_id, actions=len(actions), cost_usd=envelope.total_cost_usd)
    return report.model_copy(update={"used": True, "proposals": actions})


def parse_answer(text: str) -> list[Action]:
    """The actions in the advisor's answer: a JSON list (or ``{"actions": [...]}``), possibly in
    one code fence. Raises ValueError saying what is wrong."""
    body = text.strip()
    fenced = _FENCED.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        data: Any = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at char {exc.pos}") from None
    if isinstance(data, dict) and set(data) == {"actions"}:
        data = data["actions"]
    if not isinstance(data, list):
        raise ValueError(f"not a list of actions: a JSON {type(data).__name__}")
    if not all(isinstance(a, dict) for a in data):
        raise ValueError("out-of-vocabulary action(s): an action that is not a JSON object")
    unknown = sorted({str(a.get("kind")) for a in data if a.get("kind") not in KINDS})
    if unknown:
        raise ValueError(f"out-of-vocabulary action(s): {', '.join(unknown)}")
    try:
        return ACTIONS.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)[:3]
        )
        raise ValueError(f"invalid action(s): {problems}") from None


def _ignored(cycle_id: str, report: AdvisorReport, reason: str) -> AdvisorReport:
    log.warning("advisor_ignored", cycle_id=cycle_id, reason=reason)
    return report.model_copy(update={"used": False, "reason": reason, "proposals": []})
