"""Rich views of items, agents and events. User text is never read as markup, and never reaches
the terminal with its control characters (``swarm.terminal.terminal_safe`` shows each as an
escape).

Every view passes user-supplied text through ``terminal_safe`` before layout, and the CLI's
consoles apply it once more to everything they print (``EscapeControls``), for any view that did
not. Newlines (and tabs) stay: they are part of a description's text. JSON output is escaped by
JSON (``swarm/cli/runtime.py``: ``print_json``).

The tables fit an 80-column terminal: ids are short (``swarm.short_ids``: the tail of the id's
timestamp, unique among the rows; ``--json`` keeps full ids), roles and statuses are never cut,
a column that says nothing for these rows (one team, no progress) is left out, and the free text
(the description) takes what width is left, cut with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from rich import box
from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderHook, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from swarm.models import Agent, Event, Status, WorkItem
from swarm.short_ids import shorten
from swarm.terminal import CONTROL_CHARACTERS, terminal_safe

STATUS_STYLE = {
    Status.PENDING: "cyan",
    Status.CLAIMED: "yellow",
    Status.IN_PROGRESS: "yellow",
    Status.COMPLETED: "green",
    Status.FAILED: "red",
    Status.CANCELLED: "dim",
    Status.DEAD: "bold red",
}
PREVIEW_CHARS = 60  # list rows show this much of a description
DEFAULT_WIDTH = 80  # columns, when the width is not known
COLUMN_GAP = 2  # spaces between two columns
TYPE_MAX = 20  # a type is cut with an ellipsis past this, in tables ...
TYPE_MIN = 10  # ... and past this when the terminal is narrow
TEAM_MAX = 12
AGENT_MIN = 8  # an agent registered by name is cut to this when the terminal is narrow
DESCRIPTION_MIN = 16  # what a description keeps before other columns are cut
ID_MAX = 20  # an agent registered by name is cut past this (a minted one shows its short id) ...
ID_MIN = 10  # ... and past this when the terminal is narrow
HELD = (Status.CLAIMED, Status.IN_PROGRESS)


def safe_text(value: object, style: str = "") -> Text:
    """User-supplied text as a Rich ``Text``: no markup, no control characters."""
    return Text(terminal_safe("" if value is None else str(value)), style=style)


class _Escaped:
    """A renderable whose rendered text has its control characters escaped (control segments,
    Rich's own cursor moves, pass as they are)."""

    def __init__(self, renderable: ConsoleRenderable) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self.renderable, options):
            if segment.control or not CONTROL_CHARACTERS.search(segment.text):
                yield segment
            else:
                yield Segment(terminal_safe(segment.text), segment.style)


class EscapeControls(RenderHook):
    """A console hook: everything printed has its control characters escaped, whatever view made
    it (the views escape user text themselves, before layout; this is the net under them)."""

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [_Escaped(r) for r in renderables]


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="milliseconds") if value else ""


def _preview(text: str) -> str:
    """One line of ``text`` (newlines as spaces), escaped, cut to ``PREVIEW_CHARS``."""
    flat = text.replace("\r\n", " ").replace("\n", " ")
    flat = flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"
    return terminal_safe(flat)


def item_table(item: WorkItem) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in item.model_dump(mode="json").items():
        if name == "status":
            table.add_row(name, safe_text(value, style=STATUS_STYLE[item.status]))
        else:
            table.add_row(name, safe_text(value))
    return table


def _compact(title: str, *, expand: bool = False) -> Table:
    """A table without rules but the header's, two spaces between columns; ``expand``: as wide as
    the terminal, its flexible column (``ratio=1``) taking what the others leave."""
    return Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
        padding=(0, 1, 0, 0), expand=expand,
    )  # fmt: skip


class ItemsTable:
    """``swarm list``'s table, laid out for the width it is printed at (``items_table``)."""

    def __init__(self, items: Sequence[WorkItem]) -> None:
        self.items = items

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield items_table(self.items, options.max_width)


def _safe_values(names: Mapping[str, str]) -> dict[str, str]:
    """``names`` with each value escaped (``terminal_safe``): an agent registered by name is user
    text, and widths are measured on what is shown."""
    return {key: terminal_safe(value) for key, value in names.items()}


def _widest(header: str, cells: Iterable[str]) -> int:
    return max([len(header), *(len(c) for c in cells)])


def items_table(items: Sequence[WorkItem], width: int = DEFAULT_WIDTH) -> Table:
    """The items, one row each, in ``width`` columns. While the description would get fewer than
    ``DESCRIPTION_MIN`` columns, in turn: the type is cut (to ``TYPE_MIN``), the progress column
    goes, an agent registered by name is cut (to ``AGENT_MIN``), and the team column goes (the
    title names the teams). Ids, statuses, roles and priorities are never cut."""
    ids = _safe_values(shorten(item.id for item in items))
    agents = _safe_values(shorten(item.agent_id for item in items if item.agent_id))
    teams = sorted({terminal_safe(item.team) for item in items})
    show_progress = any(item.status in HELD for item in items)
    fixed = [
        _widest("id", ids.values()),
        _widest("status", (i.status.value for i in items)),
        _widest("role", (i.role.value for i in items)),
        _widest("priority", (i.priority.value for i in items)),
    ]
    type_width = min(TYPE_MAX, _widest("type", (terminal_safe(i.type) for i in items)))
    agent_width = _widest("agent", agents.values())
    team_width = min(TEAM_MAX, _widest("team", teams)) if len(teams) > 1 else 0

    def short() -> int:  # what the description lacks, after the other columns and their gaps
        shown = [w for w in (*fixed, type_width, agent_width, team_width, 3 * show_progress) if w]
        return DESCRIPTION_MIN - (width - sum(shown) - COLUMN_GAP * len(shown))

    if short() > 0:
        type_width = max(min(type_width, TYPE_MIN), type_width - short())
    if short() > 0:
        show_progress = False
    if short() > 0:
        agent_width = max(min(agent_width, AGENT_MIN), agent_width - short())
    if short() > 0:
        team_width = 0
    title = f"{len(items)} work item(s)"
    if len(teams) == 1 or not team_width:
        title += f", team{'s' if len(teams) > 1 else ''} {', '.join(teams)}" if teams else ""
    show_team = bool(team_width)
    table = _compact(title, expand=True)
    table.add_column("id", no_wrap=True)
    table.add_column("type", no_wrap=True, overflow="ellipsis", max_width=type_width)
    table.add_column("status", no_wrap=True)
    table.add_column("role", no_wrap=True)
    if show_team:
        table.add_column("team", no_wrap=True, overflow="ellipsis", max_width=team_width)
    table.add_column("priority", no_wrap=True)
    if show_progress:
        table.add_column("%", no_wrap=True, justify="right")
    table.add_column("agent", no_wrap=True, overflow="ellipsis", max_width=agent_width)
    table.add_column("description", no_wrap=True, overflow="ellipsis", ratio=1)
    for item in items:
        table.add_row(
            Text(ids[item.id]),
            safe_text(item.type),
            Text(item.status.value, style=STATUS_STYLE[item.status]),
            Text(item.role.value),
            *([safe_text(item.team)] if show_team else []),
            Text(item.priority.value),
            *([Text(f"{item.progress}" if item.status in HELD else "")] if show_progress else []),
            Text(agents[item.agent_id] if item.agent_id else ""),
            Text(_preview(item.description)),
        )
    return table


def _age(at: datetime | None, now: datetime) -> str:
    """How long ago, in its largest unit: ``4s``, ``12m``, ``3h``, ``2d``."""
    if at is None:
        return "-"
    seconds = max(0.0, (now - at).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


class AgentsTable:
    """``swarm agents``'s table, laid out for the width it is printed at (``agents_table``)."""

    def __init__(self, agents: Sequence[Agent], now: datetime | None = None) -> None:
        self.agents, self.now = agents, now

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield agents_table(self.agents, self.now, options.max_width)


def agents_table(agents: Sequence[Agent], now: datetime | None = None, width: int = DEFAULT_WIDTH) -> Table:
    """The agents, one row each, in ``width`` columns: an id registered by name, then the team,
    are cut when they would not fit; roles and the figures never are."""
    ids = _safe_values(shorten(agent.id for agent in agents))
    at = now or datetime.now(UTC)
    rows = [
        [
            ids[agent.id],
            agent.role.value if agent.role else "",
            terminal_safe(agent.team),
            agent.status.value,
            str(agent.capacity),
            str(agent.completed),
            str(agent.failed),
            "" if agent.success_rate is None else f"{agent.success_rate:.0%}",
            f"{agent.mean_duration:.2f}",
            _age(agent.last_heartbeat, at),
        ]
        for agent in agents
    ]
    headers = ["id", "role", "team", "status", "cap", "done", "failed", "ok %", "mean s", "seen"]
    widths = [_widest(h, (row[n] for row in rows)) for n, h in enumerate(headers)]
    widths[0], widths[2] = min(widths[0], ID_MAX), min(widths[2], TEAM_MAX)
    excess = sum(widths) + COLUMN_GAP * (len(widths) - 1) - width
    for index, least in ((0, ID_MIN), (2, len("team"))):  # the id first, then the team
        cut = max(0, min(excess, widths[index] - least))
        widths[index] -= cut
        excess -= cut
    table = _compact(f"{len(agents)} agent(s)")
    for n, header in enumerate(headers):
        if n in (0, 2):  # the id, the team
            table.add_column(header, no_wrap=True, overflow="ellipsis", max_width=widths[n])
        else:
            table.add_column(header, no_wrap=True, justify="right" if n > 3 else "left")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    table.caption = "seen: since the last heartbeat" if agents else None
    return table


def event_line(event: Event, ids: Mapping[str, str] | None = None, *, time_only: bool = False) -> Text:
    """One event; ``ids`` maps full ids to the short ones to show, ``time_only`` drops the date."""
    names = ids or {}
    at = event.at.strftime("%H:%M:%S.%f")[:-3] if time_only else _when(event.at)
    work, agent = event.work_id or "", event.agent_id or ""
    parts = [at, event.event.value, names.get(work, work), names.get(agent, agent)]
    if event.fence is not None:
        parts.append(f"fence={event.fence}")
    if event.status is not None:
        parts.append(f"-> {event.status.value}")
    if event.detail:
        parts.append(_preview(event.detail))
    return Text(terminal_safe("  ".join(p for p in parts if p)))
