"""``swarm calendar``: where now (or a work item) falls in the PI and iteration calendar."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.table import Table

from swarm.calendar import Calendar, Placement
from swarm.cli.runtime import JSON_OPTION, ledger_session, out, print_json, run
from swarm.durations import format_duration


def _placed(calendar: Calendar, at: datetime | None) -> dict[str, object] | None:
    if at is None:
        return None
    place: Placement = calendar.place(at)
    return {
        "at": at.isoformat(),
        "pi": place.pi,
        "iteration": place.iteration,
        "key": f"PI{place.pi}.I{place.iteration}",
    }


def _short(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def calendar(
    work_id: str | None = typer.Argument(None, help="Place this work item's times instead of now."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the calendar: the epoch, the current PI and its iterations, or where an item falls."""

    def body() -> None:
        with ledger_session() as ledger:
            cal = Calendar.load(ledger)
            now = ledger.server_time()
            item = ledger.get(work_id) if work_id else None
        if item is not None:
            times = {
                "created_at": item.created_at,
                "claimed_at": item.claimed_at,
                "completed_at": item.completed_at,
            }
            placed = {name: _placed(cal, at) for name, at in times.items()}
            if as_json:
                print_json({"work_id": item.id, **placed})
                return
            for name, where in placed.items():
                out.print(f"{name:>12}: " + ("-" if where is None else f"{where['key']}  ({where['at']})"))
            return
        pi = cal.current_pi(now)
        iteration = cal.current_iteration(now)
        sync = cal.current_sync(now)
        summary = {
            "epoch": cal.epoch.isoformat(),
            "iteration_length": format_duration(cal.iteration_seconds),
            "iterations_per_pi": cal.iterations_per_pi,
            "now": now.isoformat(),
            "pi": pi.pi,
            "iteration": iteration.key,
            "art_sync": sync.key,
            "iterations": [
                {"key": p.key, "start": p.start.isoformat(), "end": p.end.isoformat()}
                for p in cal.iterations_of(pi.pi)
            ],
        }
        if as_json:
            print_json(summary)
            return
        out.print(
            f"PI {pi.pi}, iteration {iteration.key} (ART Sync {sync.key}); iterations of "
            f"{summary['iteration_length']}, {cal.iterations_per_pi} per PI, since {_short(cal.epoch)}"
        )
        table = Table(title=f"PI {pi.pi}", title_justify="left")
        for name in ("iteration", "start", "end", ""):
            table.add_column(name)
        for period in cal.iterations_of(pi.pi):
            table.add_row(
                period.key,
                period.start.isoformat(),
                period.end.isoformat(),
                "now" if period.contains(now) else "",
            )
        out.print(table)

    run(as_json, body)
