"""The work-lifecycle commands: submit, claim, progress, complete, fail, release, heartbeat, cancel,
show, list, events and reap."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

import typer

from swarm import validation
from swarm.cli.runtime import (
    AGENT_OPTION,
    FENCE_OPTION,
    JSON_OPTION,
    ledger_session,
    out,
    print_json,
    print_line,
    print_model,
    read_text_argument,
    require_agent,
    run,
)
from swarm.errors import BadInput, NotFound
from swarm.short_ids import resolve_work_id  # light: the ledger and its models only when it looks up

if TYPE_CHECKING:
    from swarm.models import WorkItem

CLI_SERVICE_NAME = "swarm-cli"  # OTEL_SERVICE_NAME's default for `swarm submit`
WORK_ID_HELP = "The item's id, or the short id a table shows (the tail of its digits)."


def _show_item(item: WorkItem, as_json: bool, headline: str, *, full: bool = False) -> None:
    """One JSON object with --json; else a one-line summary (the whole item for ``show``)."""
    if as_json:
        print_model(item)
    elif full:
        from swarm.cli import render

        out().print(render.item_table(item))
    else:
        print_line(headline)


def submit(
    type_: str = typer.Argument(..., metavar="TYPE", help="Work type, e.g. feature_development."),
    description: str = typer.Argument(..., help="Any text, stored byte-exact; '-' reads standard input."),
    priority: str | None = typer.Option(None, help="critical|high|medium|low."),
    team: str | None = typer.Option(None, help="Team that owns the work."),
    role: str | None = typer.Option(None, help="pm|architect|developer|qa|devops."),
    points: int | None = typer.Option(None, min=0, help="Story points (velocity)."),
    payload: str | None = typer.Option(None, help="The handler's input, a JSON object."),
    workflow: str | None = typer.Option(
        None, help="Start a workflow (feature, bugfix, or your own: README, Workflows) at its first stage."
    ),
    claim: bool = typer.Option(False, "--claim", help="Claim it for --agent in the same step."),
    enqueue: bool = typer.Option(
        True, help="Send it to the role's workers; --no-enqueue leaves it for manual claims."
    ),
    agent: str | None = AGENT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Submit a work item (pending, or claimed with --claim)."""

    def body() -> None:
        from swarm import tracing
        from swarm.dispatch import Dispatcher
        from swarm.submission import submit_work

        text = read_text_argument(description, "description")
        data = validation.parse_json_object(payload, "--payload") if payload is not None else None
        claim_for = require_agent(agent) if claim else None
        tracing.setup_tracing(CLI_SERVICE_NAME)  # only with OTEL_EXPORTER_OTLP_ENDPOINT set
        with ledger_session() as ledger:
            dispatch = Dispatcher(ledger, ledger.url) if enqueue and ledger.url else None
            try:
                item = submit_work(  # the item's trace starts there; its first send is in it
                    ledger,
                    dispatch,
                    type_,
                    text,
                    payload=data,
                    priority=priority,
                    team=team,
                    role=role,
                    points=points,
                    workflow=workflow,
                    claim_for=claim_for,
                )
            finally:
                if dispatch is not None:
                    dispatch.close()
                tracing.flush()
        verb = "submitted and claimed" if claim else "submitted"
        _show_item(item, as_json, f"{verb} {item.id}")

    run(as_json, body)


def claim(
    work_id: str | None = typer.Argument(None, help="The item to claim, or its short id (omit with --next)."),
    next_: bool = typer.Option(False, "--next", help="Claim the role's most urgent pending item."),
    role: str | None = typer.Option(None, help="The role for --next."),
    lease: float | None = typer.Option(None, help="Lease length in seconds (default SWARM_LEASE_SECONDS)."),
    agent: str | None = AGENT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Claim an item by id, or the next one for a role."""

    def body() -> None:
        who = require_agent(agent)
        if next_ == (work_id is not None):
            raise BadInput("give either WORK_ID or --next --role ROLE")
        with ledger_session() as ledger:
            if work_id is not None:
                item = ledger.claim(resolve_work_id(ledger, work_id), who, lease_seconds=lease)
            else:
                if role is None:
                    raise BadInput("--next needs --role ROLE")
                found = ledger.claim_next(role, who, lease_seconds=lease)
                if found is None:
                    raise NotFound(f"no pending work for role {role}")
                item = found
        _show_item(
            item, as_json, f"claimed {item.id} (fence {item.fence}, lease until {item.lease_expires_at})"
        )

    run(as_json, body)


def progress(
    work_id: str = typer.Argument(..., help=WORK_ID_HELP),
    percent: str = typer.Argument(..., help="A whole number from 0 to 100."),
    note: str = typer.Argument("", help="A short status note."),
    fence: int | None = FENCE_OPTION,
    agent: str | None = AGENT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Report progress on an item you hold (it also renews the lease)."""

    def body() -> None:
        who = require_agent(agent)
        pct = validation.percent(percent)
        with ledger_session() as ledger:
            item = ledger.progress(resolve_work_id(ledger, work_id), who, pct, note, fence=fence)
        _show_item(item, as_json, f"{item.id} is {item.progress}% done")

    run(as_json, body)


def complete(
    work_id: str = typer.Argument(..., help=WORK_ID_HELP),
    result: str = typer.Option("success", help="success|failure."),
    points: int | None = typer.Option(None, min=0, help="Points to count (default: the item's)."),
    output: str | None = typer.Option(None, help="The result value, as JSON."),
    error: str = typer.Option("reported as failed", help="The reason, with --result failure."),
    fence: int | None = FENCE_OPTION,
    agent: str | None = AGENT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Complete an item you hold (or fail it with --result failure)."""

    def body() -> None:
        who = require_agent(agent)
        if result not in ("success", "failure"):
            raise BadInput(f"unknown result {result!r}; expected success|failure")
        value: Any = validation.parse_json(output, "--output") if output is not None else None
        with ledger_session() as ledger:
            wid = resolve_work_id(ledger, work_id)
            if result == "success":
                item = ledger.complete(wid, who, fence=fence, result=value, points=points)
            else:
                item = ledger.fail(wid, who, error, fence=fence)
        _show_item(item, as_json, f"{item.id} is {item.status.value}")

    run(as_json, body)


def fail(
    work_id: str = typer.Argument(..., help=WORK_ID_HELP),
    reason: str = typer.Argument(..., help="Why it failed."),
    retry: bool = typer.Option(False, "--retry", help="Return it to pending (dead past max attempts)."),
    fence: int | None = FENCE_OPTION,
    agent: str | None = AGENT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Fail an item you hold."""

    def body() -> None:
        who = require_agent(agent)
        with ledger_session() as ledger:
            item = ledger.fail(resolve_work_id(ledger, work_id), who, reason, fence=fence, retry=retry)
        _show_item(item, as_json, f"{item.id} is {item.status.value}")

    run(as_json, body)


def release(
    work_id: str = typer.Argument(..., help=WORK_ID_HELP),
    fence: int | None = FENCE_OPTION,
    agent: str | None = AGENT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Give an item you hold back to pending."""

    def body() -> None:
        who = require_agent(agent)
        with ledger_session() as ledger:
            item = ledger.release(resolve_work_id(ledger, work_id), who, fence=fence)
        _show_item(item, as_json, f"released {item.id}: {item.status.value}")

    run(as_json, body)


def heartbeat(
    work_id: str = typer.Argument(..., help=WORK_ID_HELP),
    lease: float | None = typer.Option(None, help="New lease length in seconds."),
    fence: int | None = FENCE_OPTION,
    agent: str | None = AGENT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Renew the lease on an item you hold."""

    def body() -> None:
        who = require_agent(agent)
        with ledger_session() as ledger:
            item = ledger.heartbeat(resolve_work_id(ledger, work_id), who, fence=fence, lease_seconds=lease)
        note = " (cancel requested)" if item.cancel_requested else ""
        _show_item(item, as_json, f"lease on {item.id} renewed until {item.lease_expires_at}{note}")

    run(as_json, body)


def cancel(
    work_id: str = typer.Argument(..., help=WORK_ID_HELP),
    agent: str | None = AGENT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Cancel an item: at once if pending, at its holder's next heartbeat if running."""

    def body() -> None:
        with ledger_session() as ledger:
            item = ledger.cancel(resolve_work_id(ledger, work_id), agent)
        state = item.status.value if item.status.terminal else "cancel requested"
        _show_item(item, as_json, f"{item.id}: {state}")

    run(as_json, body)


def show(
    work_id: str = typer.Argument(..., help=WORK_ID_HELP),
    chain: bool = typer.Option(False, "--chain", help="Show its workflow's stages in order instead."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one item (with --chain, the stages of its workflow, first to last)."""

    def body() -> None:
        if chain:
            from swarm.cli.results import show_chain  # only for --chain

            show_chain(work_id, as_json)
            return
        with ledger_session() as ledger:
            item = ledger.get(resolve_work_id(ledger, work_id))
        _show_item(item, as_json, item.id, full=True)

    run(as_json, body)


def list_items(
    status: str | None = typer.Option(None, help="Only this status."),
    role: str | None = typer.Option(None, help="Only this role."),
    team: str | None = typer.Option(None, help="Only this team."),
    limit: int = typer.Option(100, min=1, help="At most this many."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List items from the status registries."""

    def body() -> None:
        with ledger_session() as ledger:
            items = ledger.list(status, role=role, team=team, limit=limit)
        if as_json:
            print_json([item.model_dump(mode="json") for item in items])
        else:
            from swarm.cli import render

            out().print(render.ItemsTable(items))

    run(as_json, body)


def events(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    count: int = typer.Option(50, min=1, help="How many recent events."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the event stream (JSON lines with --json)."""

    def body() -> None:
        with ledger_session() as ledger:
            history = ledger.events(count)
            for event in history:
                _print_event(event, as_json)
            if follow:
                gc.enable()  # off while a ledger command starts (swarm/cli/__init__.py); this one runs on
                # From the last event shown: one appended since is printed, not skipped.
                for event in ledger.follow(after=history[-1].id if history else "0"):
                    _print_event(event, as_json)

    run(as_json, body)


def _print_event(event: Any, as_json: bool) -> None:
    if as_json:
        print_model(event)
    else:
        from swarm.cli import render

        out().print(render.event_line(event))


def reap(as_json: bool = JSON_OPTION) -> None:
    """Return items with expired leases to pending (or dead past max attempts), once."""

    def body() -> None:
        with ledger_session() as ledger:
            reaped = ledger.reap()
        if as_json:
            print_json([{"id": wid, "status": status.value} for wid, status in reaped])
        else:
            out().print(f"reaped {len(reaped)} item(s)")
            for wid, status in reaped:
                out().print(f"  {wid} -> {status.value}", markup=False)

    run(as_json, body)
