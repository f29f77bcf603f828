"""Rich views of items, agents and events. User text is never read as markup."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.table import Table
from rich.text import Text

from swarm.models import Agent, Event, Status, WorkItem

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


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="milliseconds") if value else ""


def _preview(text: str) -> str:
    flat = text.replace("\n", " ").replace("\x00", " ")
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def item_table(item: WorkItem) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in item.model_dump(mode="json").items():
        if name == "status":
            table.add_row(name, Text(str(value), style=STATUS_STYLE[item.status]))
        else:
            table.add_row(name, Text("" if value is None else str(value)))
    return table


def items_table(items: Sequence[WorkItem]) -> Table:
    table = Table(title=f"{len(items)} work item(s)")
    for column in ("id", "type", "status", "role", "team", "priority", "progress", "agent", "description"):
        table.add_column(column, overflow="fold" if column == "id" else "ellipsis")
    for item in items:
        table.add_row(
            Text(item.id),
            Text(item.type),
            Text(item.status.value, style=STATUS_STYLE[item.status]),
            Text(item.role.value),
            Text(item.team),
            Text(item.priority.value),
            Text(f"{item.progress}%"),
            Text(item.agent_id or ""),
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
            Text(agent.id),
            Text(agent.role.value if agent.role else ""),
            Text(agent.team),
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
    return Text("  ".join(p for p in parts if p))
