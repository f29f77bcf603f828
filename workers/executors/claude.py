"""The ``claude`` executor: one Claude Code CLI run per attempt, bounded in time, runs and money.

    registry.register("review", "qa", claude("Review {type} {id}: {description}"))

Each run is ``claude -p --output-format json [extra_args...]`` as an argv list (never a shell),
with the rendered prompt on stdin. The prompt is not put into the argv: work text there could
be read as a CLI option (a description of ``--permission-mode bypassPermissions``) or pass the
kernel's 128 KiB limit on one argument. The CLI reads a piped prompt exactly as ``-p PROMPT``.
The prompt template is filled with safe fields only (see ``workers.executors.prompt``).

The JSON envelope on stdout is parsed (``workers.executors.envelope``); the ``claude`` artifact
records ``result``, ``cost_usd`` (this run), ``total_cost_usd`` (the item so far),
``num_turns``, ``session_id``, ``subtype``, ``runs`` and, in a worktree, ``branch``. The item's
result is the envelope's ``result`` text.

Limits (arguments, else the settings ``SWARM_CLAUDE_*``):

- ``timeout`` (``claude_timeout_seconds``): the run's process group is killed; transient.
- ``budget_usd`` (``claude_budget_usd``), per item across all its attempts and workers: a run
  is refused (permanent) once the item has spent the budget, and a run that takes the total
  past it fails the item (permanent) after its cost is recorded. A budget of 0 refuses every run.
- ``max_attempts`` (``claude_max_attempts``): runs per item; one more is refused (permanent).
- ``worktree`` (``claude_worktree``): run in a git worktree on branch ``swarm/<work_id>``
  (``workers.executors.worktree``), when the working directory is in a git repository.

Failure semantics (transient: retried with backoff, ``dead`` after the item's ``max_attempts``;
the run cap and the budget bound the retries too):

- malformed output (not an envelope, or a field missing) with any exit code: transient;
- an envelope with ``is_error`` true or a subtype other than ``success``: transient;
- timeout, cancel, lost lease, a git or Redis failure: transient;
- budget spent or exceeded, run cap reached, the CLI not found: permanent.

The CLI inherits the worker's environment without the ledger's credentials (``REDIS_URL`` and
the other secrets of ``workers.executors.environment``): an agent that runs tools has no business
rewriting the ledger. Pass ``env={...}`` to add variables.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm.errors import BadInput
from swarm.models import WorkItem
from workers.context import HandlerContext
from workers.executors import process
from workers.executors.checks import (
    check_args,
    check_artifact,
    check_budget,
    check_env,
    check_max_attempts,
    check_timeout,
)
from workers.executors.envelope import Envelope, MalformedEnvelope, parse_envelope
from workers.executors.prompt import check_template, render
from workers.executors.usage import Usage
from workers.executors.worktree import item_worktree, repository_root
from workers.handlers import HandlerFn, PermanentError, TransientError

STDOUT_LIMIT_BYTES = 4 * 1024 * 1024  # the envelope, its result text included
OUTPUT_TAIL_BYTES = 16 * 1024  # stdout and stderr kept in the artifact of a malformed run


def claude(
    prompt: str,
    *,
    timeout: float | None = None,
    budget_usd: float | None = None,
    max_attempts: int | None = None,
    worktree: bool | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    artifact: str = "claude",
) -> HandlerFn:
    """A handler that runs Claude Code on the prompt ``prompt`` (a template) for each item.

    ``None`` limits come from the settings when the item runs. ``extra_args`` are appended to the
    argv (e.g. ``["--model", "sonnet", "--max-turns", "20"]``); ``env`` is added to the CLI's
    environment; ``cwd`` is where it runs (default: the worker's directory).
    """
    template = check_template(prompt)
    limits = _Limits(check_timeout(timeout), check_budget(budget_usd), check_max_attempts(max_attempts))
    if worktree is not None and not isinstance(worktree, bool):
        raise BadInput(f"worktree must be True, False or None, got {worktree!r}")
    args, extra_env, name = check_args(extra_args), check_env(env), check_artifact(artifact)

    def run_claude(item: WorkItem, ctx: HandlerContext) -> Any:
        settings = ctx.ledger.settings
        budget = settings.claude_budget_usd if limits.budget_usd is None else limits.budget_usd
        usage = Usage(ctx)
        spent = usage.spent_usd()
        if spent >= budget:
            raise PermanentError(f"budget exceeded: the item has spent ${spent:.4f} of its ${budget:.4f}")
        cap = settings.claude_max_attempts if limits.max_attempts is None else limits.max_attempts
        runs = usage.start_run()
        if runs > cap:
            raise PermanentError(f"attempt cap reached: claude runs at most {cap} times per item")
        record: dict[str, Any] = {"runs": runs}
        with _workdir(ctx, cwd, settings.claude_worktree if worktree is None else worktree) as where:
            if where.branch:
                record["branch"] = where.branch
            done = process.run(
                [settings.claude_command, "-p", "--output-format", "json", *args],
                ctx,
                what="claude",
                stdin=render(template, item).encode("utf-8"),
                timeout=settings.claude_timeout_seconds if limits.timeout is None else limits.timeout,
                cwd=where.path,
                env=extra_env,
                stdout_limit=STDOUT_LIMIT_BYTES,
                stderr_limit=OUTPUT_TAIL_BYTES,
            )
        envelope = _envelope(done, record, ctx, name)
        total = usage.add_cost(envelope.total_cost_usd)
        ctx.artifact(name, record | _envelope_record(envelope, total, done))
        if total > budget:
            raise PermanentError(
                f"budget exceeded: this run cost ${envelope.total_cost_usd:.4f}, "
                f"the item has spent ${total:.4f} of its ${budget:.4f}"
            )
        if not envelope.succeeded:
            detail = (envelope.result or "")[: process.MESSAGE_TAIL_BYTES]
            outcome = f"subtype {envelope.subtype}, is_error {str(envelope.is_error).lower()}"
            raise TransientError(f"claude run failed ({outcome})" + (f": {detail}" if detail else ""))
        return envelope.result

    run_claude.__qualname__ = run_claude.__name__ = "claude"
    return run_claude


@dataclass(frozen=True)
class _Limits:
    """The factory's limits; None means the setting, read when the item runs."""

    timeout: float | None
    budget_usd: float | None
    max_attempts: int | None


@dataclass(frozen=True)
class _Where:
    path: Path
    branch: str | None = None


@contextmanager
def _workdir(ctx: HandlerContext, cwd: str | Path | None, use_worktree: bool) -> Iterator[_Where]:
    """The directory to run in: ``cwd``, or its place in a fresh worktree of its repository."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    root = repository_root(base) if use_worktree else None
    if root is None:
        if use_worktree:
            ctx.log.warning("worktree_skipped", cwd=str(base), reason="not in a git repository")
        yield _Where(base)
        return
    with item_worktree(root, ctx.item.id) as tree:
        inside = tree.path / base.resolve().relative_to(root.resolve())
        inside.mkdir(parents=True, exist_ok=True)  # git keeps no empty directories
        yield _Where(inside, tree.branch)


def _envelope(done: process.Completed, record: dict[str, Any], ctx: HandlerContext, name: str) -> Envelope:
    """The run's envelope; a malformed one is recorded (output tails) and is a TransientError."""
    try:
        if done.stdout.truncated:
            raise MalformedEnvelope(f"stdout is over {STDOUT_LIMIT_BYTES} bytes")
        return parse_envelope(done.stdout.text())
    except MalformedEnvelope as exc:
        stdout, stderr = done.stdout.text(OUTPUT_TAIL_BYTES), done.stderr.text()
        ctx.artifact(name, record | {"exit_code": done.returncode, "stdout": stdout, "stderr": stderr})
        quoted = done.stderr.text(process.MESSAGE_TAIL_BYTES).strip()
        raise TransientError(
            f"claude output is not a result envelope ({exc}); {done.describe_exit()}"
            + (f"; stderr: {quoted}" if quoted else "")
        ) from None


def _envelope_record(envelope: Envelope, total: float, done: process.Completed) -> dict[str, Any]:
    return {
        "result": envelope.result,
        "subtype": envelope.subtype,
        "is_error": envelope.is_error,
        "cost_usd": envelope.total_cost_usd,
        "total_cost_usd": round(total, 6),
        "num_turns": envelope.num_turns,
        "session_id": envelope.session_id,
        "duration_ms": envelope.duration_ms,
        "exit_code": done.returncode,
        "seconds": done.seconds,
    }
