"""The ``swarm status`` dashboard as Rich renderables."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from swarm.cli import render
from swarm.models import Role, Status
from swarm.status import StatusReport

STATE_STYLE = {"live": "green", "stale": "yellow", "offline": "dim"}


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _agents(report: StatusReport) -> Table:
    table = Table(title="Agents by role", expand=True)
    table.add_column("role")
    for state in ("live", "stale", "offline"):
        table.add_column(state, justify="right", style=STATE_STYLE[state])
    for role, counts in report.agents_by_role.items():
        table.add_row(role, str(counts.live), str(counts.stale), str(counts.offline))
    return table


def _items(report: StatusReport) -> Table:
    roles = [r.value for r in Role]
    extra = sorted({r for s in report.items.values() for r in s.by_role} - set(roles))
    table = Table(title="Items by status and role", expand=True)
    table.add_column("status")
    table.add_column("total", justify="right", style="bold")
    for role in [*roles, *extra]:
        table.add_column(role, justify="right")
    for status in Status:
        row = report.items[status.value]
        cells = [str(row.by_role.get(role, 0)) for role in [*roles, *extra]]
        mark = "" if row.by_role_complete else "*"
        table.add_row(status.value, f"{row.total}{mark}", *cells)
    return table


def _queues(report: StatusReport) -> Table:
    table = Table(title="Queue depth", expand=True)
    table.add_column("role")
    table.add_column("pending", justify="right")
    for role, depth in report.queue_depths.items():
        table.add_row(role, Text(str(depth), style="bold yellow" if depth else ""))
    return table


def _calendar(report: StatusReport) -> Table:
    cal = report.calendar
    table = Table(title=f"{cal.key}: PI {cal.pi}, iteration {cal.iteration}", expand=True)
    table.add_column("team")
    table.add_column("velocity so far", justify="right")
    for team, points in cal.velocity.items():
        table.add_row(team, str(points))
    table.caption = f"{_when(cal.start)} to {_when(cal.end)} UTC; total {cal.velocity_total} points"
    return table


def _processes(report: StatusReport) -> Table:
    """The beats (who leads, who stands by) and the children ``swarm up`` restarted."""
    table = Table(title="Beat and restarts", expand=True)
    table.add_column("process")
    table.add_column("state")
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


def dashboard(report: StatusReport, refreshes: int | None = None) -> RenderableType:
    """The whole dashboard as one Rich renderable."""
    header = f"swarm status at {_when(report.at)} UTC"
    if refreshes is not None:
        header += f" (refresh {refreshes})"
    top = Table.grid(expand=True, padding=(0, 1))
    for _ in range(3):
        top.add_column(ratio=1)
    top.add_row(_agents(report), _queues(report), _calendar(report))
    events = Group(*(render.event_line(e) for e in report.events)) if report.events else Text("no events")
    return Panel(
        Group(top, _items(report), _processes(report), Rule("Recent events"), events),
        title=header,
        title_align="left",
    )
