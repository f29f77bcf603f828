"""The ``swarm status`` dashboard as Rich renderables.

It reads in an 80x24 terminal: the tables have no borders but under their headers, the top
three sit side by side as far as they fit (one that does not goes below), role names are never
cut, the recent events show short ids and the time of day, one line each, and ``--watch`` on a
terminal shows as many of them as fit its height.
"""

from __future__ import annotations

from datetime import datetime

from rich import box
from rich.columns import Columns
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from swarm.cli import render
from swarm.cli.runtime import out
from swarm.models import Role, Status
from swarm.short_ids import shorten
from swarm.status import StatusReport

CALENDAR_WIDTH = 22  # the iteration's table, at least: its title and caption on one line each
STATE_STYLE = {"live": "green", "stale": "yellow", "offline": "dim"}


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _table(title: str | None, *, expand: bool = False) -> Table:
    return Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
        pad_edge=False, padding=(0, 1, 0, 0), expand=expand,
    )  # fmt: skip


def _agents(report: StatusReport) -> Table:
    table = _table("Agents by role")
    table.add_column("role", no_wrap=True)
    for state in ("live", "stale", "offline"):
        table.add_column(state, justify="right", style=STATE_STYLE[state])
    for role, counts in report.agents_by_role.items():
        table.add_row(role, str(counts.live), str(counts.stale), str(counts.offline))
    return table


def _items(report: StatusReport) -> Table:
    roles = [r.value for r in Role]
    extra = sorted({r for s in report.items.values() for r in s.by_role} - set(roles))
    table = _table(None, expand=True)  # its header says what it is: its title's line goes to the events
    table.add_column("status", no_wrap=True)
    table.add_column("total", justify="right", style="bold")
    for role in [*roles, *extra]:
        table.add_column(role, justify="right", no_wrap=True, min_width=len(role))
    for status in Status:
        row = report.items[status.value]
        cells = [str(row.by_role.get(role, 0)) for role in [*roles, *extra]]
        mark = "" if row.by_role_complete else "*"
        table.add_row(status.value, f"{row.total}{mark}", *cells)
    return table


def _queues(report: StatusReport) -> Table:
    table = _table("Queue depth")
    table.add_column("role", no_wrap=True)
    table.add_column("pending", justify="right")
    for role, depth in report.queue_depths.items():
        table.add_row(role, Text(str(depth), style="bold yellow" if depth else ""))
    return table


def _calendar(report: StatusReport) -> Table:
    cal = report.calendar
    table = _table(f"Iteration {cal.key}")
    table.add_column("team", no_wrap=True)
    table.add_column("velocity", justify="right")
    for team, points in cal.velocity.items():
        table.add_row(team, str(points))
    table.add_row(Text("total", style="bold"), Text(str(cal.velocity_total), style="bold"))
    table.caption = f"ends {cal.end:%m-%d %H:%M} UTC" if cal.end else None
    table.caption_justify = "left"
    table.min_width = CALENDAR_WIDTH
    return table


def _processes(report: StatusReport) -> Table:
    """The beats (who leads, who stands by) and the children ``swarm up`` restarted."""
    table = _table("Beat and restarts")
    table.show_header = False  # its rows say what they are: two lines fewer
    table.add_column("process", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("detail")
    beat = report.beat
    table.add_row(
        "beat",
        "leading" if beat.leader else "none",
        f"{beat.leader or '-'}, last tick {_when(beat.last_tick)}",
    )
    for name in beat.standbys:
        table.add_row("beat", "standby", name)
    for row in report.restarts:
        table.add_row(
            f"{row.host}/{row.child}",
            Text(
                f"{row.restarts} restart{'' if row.restarts == 1 else 's'}",
                style="yellow" if row.restarts else "",
            ),
            f"last exit {row.last_exit} at {_when(row.at)}",
        )
    return table


def dashboard(
    report: StatusReport,
    refreshes: int | None = None,
    height: int | None = None,
    console: Console | None = None,
) -> RenderableType:
    """The whole dashboard as one Rich renderable; with ``height``, only as many of the recent
    events (the latest) as leave it within that many lines of ``console`` (the CLI's own, if
    none)."""
    header = f"swarm status at {_when(report.at)} UTC"
    if refreshes is not None:
        header += f" (refresh {refreshes})"
    # Side by side as far as they fit; a table that does not fit goes on the next row.
    top = Columns([_agents(report), _queues(report), _calendar(report)], padding=(0, 2))
    parts: list[RenderableType] = [top, _items(report), _processes(report), Rule("Recent events")]
    shown = report.events
    if height is not None:  # the dashboard with one line for the events, then as many as fit
        fixed = len((console or out()).render_lines(Panel(Group(*parts, Text("")))))
        shown = shown[-max(1, height - fixed + 1) :]
    ids = shorten([e.work_id for e in shown if e.work_id] + [e.agent_id for e in shown if e.agent_id])
    lines = [render.event_line(e, ids, time_only=True) for e in shown]
    for line in lines:
        line.no_wrap, line.overflow = True, "ellipsis"
    events = Group(*lines) if lines else Text("no events")
    return Panel(Group(*parts, events), title=header, title_align="left")
