"""Rich views of items, agents and events. User text is never read as markup, and never reaches
the terminal with its control characters (``swarm.terminal.terminal_safe`` shows each as an
escape).

Every view passes user-supplied text through ``terminal_safe`` before layout, and the CLI's
consoles apply it once more to everything they print (``EscapeControls``), for any view that did
not. Newlines (and tabs) stay: they are part of a description's text. JSON output is escaped by
JSON (``swarm/cli/runtime.py``: ``print_json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderHook, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from swarm.models import Agent, Event, Status, WorkItem
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


def items_table(items: Sequence[WorkItem]) -> Table:
    table = Table(title=f"{len(items)} work item(s)")
    for column in ("id", "type", "status", "role", "team", "priority", "progress", "agent", "description"):
        table.add_column(column, overflow="fold" if column == "id" else "ellipsis")
    for item in items:
        table.add_row(
            safe_text(item.id),
            safe_text(item.type),
            Text(item.status.value, style=STATUS_STYLE[item.status]),
            Text(item.role.value),
            safe_text(item.team),
            Text(item.priority.value),
            Text(f"{item.progress}%"),
            safe_text(item.agent_id),
            Text(_preview(item.description)),
        )
    return table


def agents_table(agents: Sequence[Agent]) -> Table:
    table = Table(title=f"{len(agents)} agent(s)")
    table.add_column("id", overflow="fold", min_width=20)
    for column in ("role", "team", "status", "cap", "done", "failed", "success", "mean s", "last seen"):
        table.add_column(column, overflow="fold")
    for agent in agents:
        rate = "" if agent.success_rate is None else f"{agent.success_rate:.0%}"
        table.add_row(
            safe_text(agent.id),
            Text(agent.role.value if agent.role else ""),
            safe_text(agent.team),
            Text(agent.status.value),
            str(agent.capacity),
            str(agent.completed),
            str(agent.failed),
            rate,
            f"{agent.mean_duration:.3f}",
            _when(agent.last_heartbeat),
        )
    return table


def event_line(event: Event) -> Text:
    parts = [_when(event.at), event.event.value, event.work_id or "", event.agent_id or ""]
    if event.fence is not None:
        parts.append(f"fence={event.fence}")
    if event.status is not None:
        parts.append(f"-> {event.status.value}")
    if event.detail:
        parts.append(_preview(event.detail))
    return Text(terminal_safe("  ".join(p for p in parts if p)))
