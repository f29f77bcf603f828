"""Results: ``swarm wait`` (an item's, or its workflow's, final state and result), ``swarm retry``
(a failed or dead item runs again) and ``swarm show --chain`` (a workflow's stages in order).

``swarm wait`` exits 0 when the work completed and, beyond SPEC §6's codes, 8 when it failed, 9
when it went dead, 10 when it was cancelled, and 11 (``WaitTimeout``) when ``--timeout`` ran out
first.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from swarm.cli.runtime import (
    AGENT_OPTION,
    JSON_OPTION,
    ledger_session,
    out,
    print_json,
    print_model,
    run,
)
from swarm.short_ids import resolve_work_id  # light: the ledger only when it looks a short id up

if TYPE_CHECKING:  # imported where used: `swarm --help` imports this module and must stay fast
    from rich.table import Table

    from swarm.models import WorkItem

# `swarm wait`'s exit code for each way work ends (WaitTimeout's, 11, is in swarm.errors).
WAIT_EXIT_CODES = {"completed": 0, "failed": 8, "dead": 9, "cancelled": 10}


def wait(
    work_id: str = typer.Argument(
        ..., help="The item (or any stage of a workflow) to wait for, or the short id a table shows."
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0, help="Give up after this many seconds (exit 11); default: wait for ever."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Wait until an item, or the workflow it hands off to, finishes; print its final stage.

    Exit 0 completed, 8 failed, 9 dead, 10 cancelled, 11 timed out.
    """

    def body() -> str:
        from swarm import results

        with ledger_session() as ledger:
            asked = resolve_work_id(ledger, work_id)
            item = results.wait(ledger, asked, timeout)
        if as_json:
            print_model(item)
        else:
            _print_outcome(item, asked)
        return item.status.value

    status = run(as_json, body)
    raise typer.Exit(WAIT_EXIT_CODES[status])


def _print_outcome(item: WorkItem, asked: str) -> None:
    from rich.text import Text

    from swarm.cli import render

    line = Text(f"{item.id} {item.status.value}")
    line.stylize(render.STATUS_STYLE[item.status], len(item.id) + 1)
    if item.id != asked:
        line.append(f" (stage {item.stage or item.role.value}, the last of the work {asked} started)")
    out().print(line)
    if item.result is not None:
        out().print(Text("result: " + json.dumps(item.result, ensure_ascii=False)))
    if item.error:
        out().print(Text("error: " + item.error))


def retry(
    work_id: str = typer.Argument(..., help="A failed or dead item, or the short id a table shows."),
    agent: str | None = AGENT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a failed or dead item again: pending, with a new attempt budget, sent to its workers."""

    def body() -> None:
        with ledger_session() as ledger:
            item = ledger.retry(resolve_work_id(ledger, work_id), agent)
        if as_json:
            print_model(item)
        else:
            line = f"retried {item.id}: {item.status.value}, {item.max_attempts} attempt(s)"
            out().print(line, markup=False)

    run(as_json, body)


def show_chain(work_id: str, as_json: bool) -> None:
    """``swarm show ID --chain``: the stages of the workflow ``work_id`` (or its short id) belongs
    to, in order."""
    from swarm import results

    with ledger_session() as ledger:
        asked = resolve_work_id(ledger, work_id)
        stages = results.chain(ledger, asked)
    if as_json:
        print_json([stage.model_dump(mode="json") for stage in stages])
    else:
        out().print(chain_table(stages, asked))


def chain_table(stages: list[WorkItem], asked: str) -> Table:
    from rich.table import Table
    from rich.text import Text

    from swarm.cli import render

    workflow = stages[0].workflow
    title = f"workflow {workflow}: " if workflow else ""
    table = Table(title=f"{title}{len(stages)} stage(s)")
    table.add_column("#", justify="right")
    for column in ("stage", "role", "status", "tries"):
        table.add_column(column, overflow="ellipsis")
    table.add_column("id", overflow="fold")
    for number, stage in enumerate(stages, 1):
        table.add_row(
            str(number),
            Text(stage.stage or stage.type),
            Text(stage.role.value),
            Text(stage.status.value, style=render.STATUS_STYLE[stage.status]),
            f"{stage.attempts}/{stage.max_attempts}",
            Text(stage.id, style="bold" if stage.id == asked else ""),
        )
    return table
