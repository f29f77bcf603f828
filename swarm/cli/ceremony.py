"""``swarm ceremony NAME``: show a ceremony's stored report, or run it now for its due period.

``--now`` goes through ``ceremonies.store.run_once``, the same path beat's task takes, so a
manual run and a scheduled one still write one report per period: if the period has a report
it is shown as stored, and if another process is writing it this command waits for it.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from swarm.cli.runtime import JSON_OPTION, err, ledger_session, out, print_model, run
from swarm.errors import BadInput, NotFound, SwarmError

if TYPE_CHECKING:
    from ceremonies.registry import Ceremony
    from ceremonies.report import CeremonyReport
    from swarm.calendar import Calendar
    from swarm.ledger import Ledger

WAIT_FOR_WRITER_S = 10.0  # how long --now waits for a report another process is writing
POLL_S = 0.1


def stored(chosen: Ceremony, ledger: Ledger, period: str | None) -> CeremonyReport:
    """The stored report of ``period``, or the latest one."""
    from ceremonies import store
    from swarm.calendar import period_key

    hint = f"run `swarm ceremony {chosen.name} --now` to write the due one"
    if period is None:
        report = store.latest(chosen, ledger)
        if report is None:
            raise NotFound(f"no {chosen.title} report is stored yet; {hint}")
        return report
    key = period_key(period)  # syntax only: reading stores no calendar epoch
    report = store.load(chosen, ledger, key)
    if report is None:
        known = ", ".join(store.periods(chosen, ledger)) or "none"
        raise NotFound(f"no {chosen.title} report for {key} (stored: {known}); {hint}")
    return report


def first_due(chosen: Ceremony, calendar: Calendar, now: datetime) -> datetime:
    """When a ceremony that is not due yet first will be: the end of this iteration or PI."""
    end_of_iteration = calendar.current_iteration(now).end
    if chosen.due(calendar, end_of_iteration) is not None:
        return end_of_iteration
    return calendar.current_pi(now).end


def run_now(chosen: Ceremony, ledger: Ledger) -> tuple[CeremonyReport, bool]:
    """The due period's report, written now unless it exists; True when this call wrote it."""
    from ceremonies import store
    from swarm.calendar import Calendar

    calendar = Calendar.load(ledger)
    now = ledger.server_time()
    period = chosen.due(calendar, now)
    if period is None:
        when = first_due(chosen, calendar, now).isoformat(timespec="seconds")
        raise BadInput(f"{chosen.title} has nothing to report yet: the first one is due at {when}")
    report, wrote = store.run_once(chosen, ledger, calendar, period, now)
    deadline = time.monotonic() + WAIT_FOR_WRITER_S
    while report is None:  # another process holds the period's lock and is writing it
        if time.monotonic() > deadline:
            raise SwarmError(
                f"the {chosen.title} report for {period.key} is still being written by another "
                f"process after {WAIT_FOR_WRITER_S:g}s; show it later with `swarm ceremony {chosen.name}`"
            )
        time.sleep(POLL_S)
        report = store.load(chosen, ledger, period.key)
    return report, wrote


def write_markdown(report: CeremonyReport, path: Path) -> None:
    from ceremonies import render

    try:
        path.write_text(render.markdown(report), encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None


def ceremony(
    name: str = typer.Argument(..., help="pi-planning | art-sync | system-demo | inspect-adapt."),
    now: bool = typer.Option(
        False, "--now", help="Run it for its due period (once per period), then show it."
    ),
    period: str | None = typer.Option(
        None, "--period", help="Show the report of this period, e.g. PI3 or PI3.I2."
    ),
    markdown_file: Path | None = typer.Option(
        None, "--markdown", help="Also write the report as Markdown to FILE."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a ceremony's stored report (the latest by default), or run it now with --now."""

    def body() -> None:
        from ceremonies import render
        from ceremonies.registry import ceremony as find_ceremony

        chosen = find_ceremony(name)
        if now and period is not None:
            raise BadInput("--now runs the due period; --period shows a stored one: use one of them")
        wrote = False
        with ledger_session() as ledger:
            if now:
                report, wrote = run_now(chosen, ledger)
            else:
                report = stored(chosen, ledger, period)
        if markdown_file is not None:
            write_markdown(report, markdown_file)
        if as_json:
            print_model(report)
        else:
            if now:
                done = "written now" if wrote else "stored already"
                out().print(f"{chosen.title} {report.period.key}: {done}", markup=False)
            out().print(render.rich(report))
        if markdown_file is not None:
            (err if as_json else out)().print(f"wrote Markdown to {markdown_file}", markup=False)

    run(as_json, body)
