"""What ``swarm demo`` shows: a live board of items moving through the roles, and a final report.

Everything is read from the ledger, so the board and the report show what really happened.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text

from swarm.ledger import Ledger
from swarm.models import Role, Status, WorkItem

GLYPH = {
    Status.PENDING: ("·", "dim"),
    Status.CLAIMED: ("▶", "yellow"),
    Status.IN_PROGRESS: ("▶", "yellow"),
    Status.COMPLETED: ("✓", "green"),
    Status.FAILED: ("✗", "red"),
    Status.DEAD: ("☠", "red"),
    Status.CANCELLED: ("⊘", "magenta"),
}
MAX_CHAIN = 50  # stages followed per item (send-backs add stages; max_loops bounds them)


def chain(ledger: Ledger, root_id: str) -> list[WorkItem]:
    """An item and the stages it was handed on to, in order."""
    items = [ledger.get(root_id)]
    while items[-1].next_id is not None and len(items) < MAX_CHAIN:
        items.append(ledger.get(items[-1].next_id))
    return items


def finished(items: Sequence[WorkItem]) -> bool:
    """A chain is done when its last stage ended and handed nothing on."""
    last = items[-1]
    return last.status.terminal and last.next_id is None


def _cell(item: WorkItem | None) -> Text:
    if item is None:
        return Text("")
    glyph, style = GLYPH[item.status]
    label = f"{glyph} {item.progress}%" if item.status is Status.IN_PROGRESS else glyph
    if item.attempts and item.status.terminal:
        label += f" ({item.attempts} tries)"
    elif item.attempts:
        label += f" (try {item.attempts + 1})"
    return Text(label, style=style)


def board(chains: Sequence[Sequence[WorkItem]], elapsed: float) -> Table:
    """One row per submitted item, one column per role: where each item is right now."""
    table = Table(title=f"swarm demo: {elapsed:5.1f}s", title_justify="left", expand=False)
    table.add_column("item")
    table.add_column("priority")
    for role in Role:
        table.add_column(role.value, justify="center")
    for items in chains:
        latest: dict[Role, WorkItem] = {}
        for item in items:
            latest[item.role] = item
        root = items[0]
        title = root.description if len(root.description) <= 40 else root.description[:39] + "…"
        table.add_row(title, root.priority.value, *(_cell(latest.get(role)) for role in Role))
    return table


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class RoleFigures:
    role: Role
    completed: int
    p50_s: float | None
    p90_s: float | None


def role_figures(items: Sequence[WorkItem]) -> list[RoleFigures]:
    """Per role: stages completed and the claim-to-completion time percentiles."""
    figures = []
    for role in Role:
        durations = [
            (i.completed_at - i.claimed_at).total_seconds()
            for i in items
            if i.role is role and i.status is Status.COMPLETED and i.completed_at and i.claimed_at
        ]
        p50 = percentile(durations, 0.5) if durations else None
        p90 = percentile(durations, 0.9) if durations else None
        figures.append(RoleFigures(role, len(durations), p50, p90))
    return figures


def report(ledger: Ledger, chains: Sequence[Sequence[WorkItem]], elapsed: float) -> Group:
    """The final summary: items per role, velocity, duration percentiles, and every failure."""
    items = [item for c in chains for item in c]
    per_role = Table(title="Stages completed per role", title_justify="left")
    for name in ("role", "completed", "p50", "p90"):
        per_role.add_column(name, justify="left" if name == "role" else "right")
    for fig in role_figures(items):
        per_role.add_row(
            fig.role.value,
            str(fig.completed),
            "-" if fig.p50_s is None else f"{fig.p50_s:.2f}s",
            "-" if fig.p90_s is None else f"{fig.p90_s:.2f}s",
        )
    velocity = ledger.velocity()
    done = sum(1 for c in chains if c[-1].status is Status.COMPLETED and c[-1].next_id is None)
    lines = [
        Text(f"{done} of {len(chains)} items done end to end in {elapsed:.1f}s", style="bold"),
        Text("velocity (points): " + (", ".join(f"{t} {p}" for t, p in sorted(velocity.items())) or "none")),
    ]
    failures = Table(title="Failures", title_justify="left")
    for name in ("item", "role", "status", "attempts", "error"):
        failures.add_column(name)
    for item in items:
        if item.status in (Status.FAILED, Status.DEAD, Status.CANCELLED):
            row = (item.id, item.role.value, item.status.value, str(item.attempts), item.error or "")
            failures.add_row(*row)
    parts: list[Table | Text] = [per_role, *lines]
    parts.append(failures if failures.row_count else Text("no failures"))
    return Group(*parts)
