"""The CLI's tables fit an 80-column terminal: short ids, roles never cut nor confused."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from swarm.calendar import Calendar
from swarm.cli import render, status
from swarm.ledger import Ledger
from swarm.models import Agent, Priority, Role, Status, WorkItem
from swarm.status import StatusReader

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def rendered(renderable: object, width: int = 80) -> list[str]:
    stream = io.StringIO()
    Console(file=stream, width=width, color_system=None, force_terminal=False).print(renderable)
    return stream.getvalue().splitlines()


def item(n: int, role: Role, **fields: object) -> WorkItem:
    values: dict[str, object] = {
        "id": f"work_{1796000000000000000 + n * 7919:019d}_0123456789ab",
        "type": "feature_development_of_the_platform",
        "description": "A long description of the work, in many words, that never fits a narrow table",
        "role": role,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return WorkItem.model_validate(values | fields)


def test_a_list_fits_80_columns_with_short_ids_and_whole_roles_and_statuses() -> None:
    items = [item(n, role) for n, role in enumerate(Role)]
    agent = "agent_1796000000000123456_0123456789ab"
    held = {"status": Status.IN_PROGRESS, "progress": 40, "team": "platform-web", "agent_id": agent}
    items.append(item(9, Role.DEVELOPER, priority=Priority.CRITICAL, **held))
    lines = rendered(render.ItemsTable(items))
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    rows = lines[3:]
    for row, each in zip(rows, items, strict=True):
        short, *_ = row.split()
        assert len(short) == 7, row
        assert each.id.split("_")[1].endswith(short)
        assert f" {each.role.value} " in row, f"the role whole: {row}"
        assert f" {each.status.value} " in row, row
    assert "in_progress" in rows[-1]
    assert "0123456" in rows[-1], "the agent's short id"


def test_a_wide_terminal_shows_every_column() -> None:
    items = [item(1, Role.QA, status=Status.CLAIMED, agent_id="qa-1", team="red"), item(2, Role.PM)]
    header = rendered(render.ItemsTable(items), width=160)[1].split()
    assert header == ["id", "type", "status", "role", "team", "priority", "%", "agent", "description"]


def test_the_agents_table_fits_80_columns() -> None:
    agents = [
        Agent(id=f"agent_{1796000000000000000 + n:019d}_0123456789ab", role=role, last_heartbeat=NOW)
        for n, role in enumerate(Role)
    ]
    agents.append(Agent(id="a-named-agent-with-a-long-name", role=Role.DEVOPS, team="platform-web",
                        last_heartbeat=NOW - timedelta(hours=3), completed=12, failed=3, success_rate=0.8,
                        mean_duration=12.5))  # fmt: skip
    lines = rendered(render.agents_table(agents, now=NOW))
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    roles = [line.split()[1] for line in lines[3:-1]]
    assert roles == [r.value for r in Role] + ["devops"], lines
    assert lines[-2].split()[-1] == "3h"


def test_the_status_dashboard_fits_80_by_24_with_the_latest_events(fake_ledger: Ledger) -> None:
    Calendar.load(fake_ledger)
    for n, role in enumerate([*Role, *Role, *Role, *Role]):
        item = fake_ledger.submit("chore", f"item {n}", role=role, dispatch=False)
        fake_ledger.register_agent(f"{role.value}-{n}", role=role)
    fake_ledger.claim(item.id, "devops-19")
    report = StatusReader(fake_ledger, events=15).report()
    console = Console(file=io.StringIO(), width=80, height=24, color_system=None, force_terminal=False)
    lines = rendered(status.dashboard(report, height=23, console=console))
    assert len(lines) <= 23, "\n".join(lines)
    assert max(len(line) for line in lines) <= 80
    assert "claimed" in lines[-2], "the latest event is shown"
    assert {r.value for r in Role} <= set(" ".join(lines).split()), "every role whole"
    everything = rendered(status.dashboard(report))
    rule = next(n for n, line in enumerate(everything) if "Recent events" in line)
    assert len(everything[rule + 1 : -1]) == 15, "without a height: every recent event"
