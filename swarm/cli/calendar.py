"""``swarm calendar``: the calendar every process of the swarm uses, where now (or a work item)
falls in it, where its settings came from, and ``swarm calendar set`` to change them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from swarm.cli.runtime import JSON_OPTION, ledger_session, out, print_json, run
from swarm.errors import BadInput

if TYPE_CHECKING:
    from swarm.calendar import Calendar, Placement
    from swarm.calendar_store import Agreement, StoredCalendar
    from swarm.ledger import Ledger

OPTIONS = {  # calendar setting -> its `swarm calendar set` option
    "iteration_length": "--iteration-length",
    "pi_iterations": "--pi-iterations",
    "art_sync_every": "--art-sync-every",
    "calendar_start": "--start",
}


class _ShowUnlessNamed(TyperGroup):
    """``swarm calendar [WORK_ID] [--json]`` is ``swarm calendar show [WORK_ID] [--json]``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: Typer's own click Context
        if not args or (args[0] not in self.commands and args[0] != "--help"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ShowUnlessNamed,
    help="The calendar every process uses: where now or an item falls (show), or change it (set).",
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


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


def _origin(stored: StoredCalendar, stored_now: bool) -> str:
    """Where the calendar's settings came from, in one line."""
    if stored_now:
        where = "stored in Redis just now by this command (the calendar's first user)"
    else:
        where = f"stored in Redis at {_short(stored.stored_at)} by {stored.stored_by}"
    return f"settings {where}, version {stored.version}; epoch from {stored.epoch_from}"


def _summary(cal: Calendar, now: datetime, agreement: Agreement) -> dict[str, Any]:
    stored = agreement.stored
    pi, iteration, sync = cal.current_pi(now), cal.current_iteration(now), cal.current_sync(now)
    return {
        "epoch": cal.epoch.isoformat(),
        "iteration_length": stored.shown("iteration_length"),
        "iterations_per_pi": cal.iterations_per_pi,
        "art_sync_every": stored.shown("art_sync_every"),
        "now": now.isoformat(),
        "pi": pi.pi,
        "iteration": iteration.key,
        "art_sync": sync.key,
        "iterations": [
            {"key": p.key, "start": p.start.isoformat(), "end": p.end.isoformat()}
            for p in cal.iterations_of(pi.pi)
        ],
        "source": {
            "stored_now": agreement.stored_now,
            "stored_at": stored.stored_at.isoformat(),
            "stored_by": stored.stored_by,
            "epoch_from": stored.epoch_from,
            "version": stored.version,
        },
        "differences": [d.model_dump() for d in agreement.differences],
    }


def _print_summary(cal: Calendar, now: datetime, agreement: Agreement, summary: dict[str, Any]) -> None:
    """The summary, its lines wrapped at the terminal's width (80 columns or more)."""
    from rich.table import Table

    out().print(
        f"PI {summary['pi']}, iteration {summary['iteration']} (ART Sync {summary['art_sync']}); "
        f"iterations of {summary['iteration_length']}, {cal.iterations_per_pi} per PI, "
        f"since {_short(cal.epoch)}",
        soft_wrap=False,
    )
    out().print(_origin(agreement.stored, agreement.stored_now), soft_wrap=False)
    for d in agreement.differences:
        out().print(
            f"differs: this process has {d.env}={d.local}, the stored calendar {d.stored}: the stored one "
            "is used (change it with `swarm calendar set`)",
            style="yellow",
            markup=False,
            soft_wrap=False,
        )
    table = Table(title=f"PI {summary['pi']} (UTC)", title_justify="left")
    for name in ("iteration", "start", "end", ""):
        table.add_column(name, no_wrap=True)
    for period in cal.iterations_of(summary["pi"]):
        table.add_row(
            period.key,
            _time(period.start),
            _time(period.end),
            "now" if period.contains(now) else "",
        )
    out().print(table)


def _time(at: datetime) -> str:
    """To the millisecond, in UTC: iterations of seconds (tests, demos) stay apart."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@app.command("show")
def show_calendar(
    work_id: str | None = typer.Argument(None, help="Place this work item's times instead of now."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the calendar: its settings and where they came from, the current PI and its
    iterations, or where an item's times fall (``swarm calendar [WORK_ID]`` is the same)."""

    def body() -> None:
        from swarm.calendar import Calendar
        from swarm.calendar_store import agree
        from swarm.short_ids import resolve_work_id

        with ledger_session() as ledger:
            agreement = agree(ledger)
            cal = Calendar.of(agreement.stored)
            now = ledger.server_time()
            item = ledger.get(resolve_work_id(ledger, work_id)) if work_id else None
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
                out().print(f"{name:>12}: " + ("-" if where is None else f"{where['key']}  ({where['at']})"))
            return
        summary = _summary(cal, now, agreement)
        if as_json:
            print_json(summary)
        else:
            _print_summary(cal, now, agreement, summary)

    run(as_json, body)


def _wanted(raw: dict[str, str | None]) -> dict[str, Any]:
    """The settings to change, checked by each setting's own rules; ``--start now`` stays "now"
    (the Redis server's clock, read once connected)."""
    from swarm.calendar_store import validate

    given = {name: value for name, value in raw.items() if value is not None}
    if not given:
        raise BadInput("nothing to change: give " + ", ".join(OPTIONS.values()))
    return {
        name: "now"
        if name == "calendar_start" and value.strip().lower() == "now"
        else validate(name, value, OPTIONS[name])
        for name, value in given.items()
    }


def _stored_reports(ledger: Ledger) -> dict[str, list[str]]:
    """Each ceremony's stored report periods, oldest first (the periods a change re-places)."""
    from ceremonies.registry import ceremonies  # only `set` needs the ceremonies

    names = list(ceremonies())
    pipe = ledger.client.pipeline(transaction=False)
    for name in names:
        pipe.zrange(ledger.keys.reports(name), 0, -1)
    periods: list[list[str]] = ledger.read(pipe.execute)
    return {name: keys for name, keys in zip(names, periods, strict=True) if keys}


def _refusal(reports: dict[str, list[str]], moving: dict[str, tuple[Any, Any]]) -> BadInput:
    from swarm.calendar_store import show

    count = sum(len(keys) for keys in reports.values())
    listed = ", ".join(f"{name} {len(keys)}" for name, keys in reports.items())
    example = next(iter(reports.values()))[0]
    planned = "; ".join(f"{name} {show(name, a)} -> {show(name, b)}" for name, (a, b) in moving.items())
    return BadInput(
        f"{count} ceremony report{'s are' if count > 1 else ' is'} stored ({listed}), and changing the "
        f"calendar ({planned}) re-places every period: items and events fall in the new calendar's "
        "periods, stored reports keep the periods they were written for, and a period of the new calendar "
        f"whose key already has a report (e.g. {example}) is not reported again. Run again with --yes to "
        "change it; nothing was changed."
    )


def _print_change(
    before: StoredCalendar, after: StoredCalendar, cal: Calendar, now: datetime, kept: int
) -> None:
    from swarm.calendar_store import changes, show

    out().print(f"calendar changed (version {before.version} -> {after.version}):")
    for name, (old, new) in changes(before, {n: after.value(n) for n in OPTIONS}).items():
        out().print(f"  {name}: {show(name, old)} -> {show(name, new)}")
    where = cal.current_iteration(now)
    out().print(f"now PI {where.pi}, iteration {where.key}; beat and workers follow it at their next check")
    if kept:
        one = "1 stored ceremony report keeps the period it was written for"
        out().print(
            one if kept == 1 else f"{kept} stored ceremony reports keep the periods they were written for"
        )


@app.command("set")
def set_calendar(
    iteration_length: str | None = typer.Option(
        None, "--iteration-length", metavar="DURATION", help="One iteration, e.g. 20s, 4h, 2w."
    ),
    pi_iterations: str | None = typer.Option(
        None, "--pi-iterations", metavar="N", help="Iterations per PI (1 to 100)."
    ),
    art_sync_every: str | None = typer.Option(
        None, "--art-sync-every", metavar="DURATION", help="ART Sync slots: iteration / this, rounded up."
    ),
    start: str | None = typer.Option(
        None, "--start", metavar="WHEN", help="When PI 1 began: ISO 8601 (UTC if no offset), or now."
    ),
    yes: bool = typer.Option(False, "--yes", help="Change it even though ceremony reports are stored."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Change the calendar every process uses (stored in Redis); beat and workers follow it.

    With ceremony reports stored, it asks for --yes: the new calendar re-places their periods.
    """

    def body() -> None:
        from swarm.calendar import Calendar
        from swarm.calendar_store import Agreement, agree, change, changes, show

        wanted = _wanted(
            {
                "iteration_length": iteration_length,
                "pi_iterations": pi_iterations,
                "art_sync_every": art_sync_every,
                "calendar_start": start,
            }
        )
        with ledger_session() as ledger:
            if wanted.get("calendar_start") == "now":
                wanted["calendar_start"] = ledger.server_time()
            before = agree(ledger).stored
            moving = changes(before, wanted)
            reports = _stored_reports(ledger) if moving else {}
            if reports and not yes:
                raise _refusal(reports, moving)
            after = change(ledger, before, {name: wanted[name] for name in moving}) if moving else before
            now = ledger.server_time()
        cal = Calendar.of(after)
        kept = sum(len(keys) for keys in reports.values())
        if as_json:
            print_json(
                {
                    "changed": {
                        name: {"from": show(name, a), "to": show(name, b)} for name, (a, b) in moving.items()
                    },
                    "version": after.version,
                    "reports": kept,
                    "calendar": _summary(cal, now, Agreement(after, False, ())),
                }
            )
        elif moving:
            _print_change(before, after, cal, now, kept)
        else:
            out().print(f"the calendar has these settings already (version {after.version}); nothing changed")

    run(as_json, body)
