"""The CLI's views: tables fit an 80-column terminal (short ids, roles never cut nor confused),
and control characters never reach a terminal raw (issue 12, item 11): ``terminal_safe`` shows
each as an escape, every view of user text uses it, and the CLI's consoles apply it to whatever
they print; JSON output escapes what JSON leaves raw."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console, RenderableType
from rich.text import Text

from swarm.calendar import Calendar
from swarm.cli import render, runtime, status_view
from swarm.ledger import Ledger
from swarm.models import Agent, Event, EventKind, Priority, Role, Status, WorkItem
from swarm.status import StatusReader
from swarm.terminal import terminal_safe

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
    lines = rendered(status_view.dashboard(report, height=23, console=console))
    assert len(lines) <= 23, "\n".join(lines)
    assert max(len(line) for line in lines) <= 80
    assert "claimed" in lines[-2], "the latest event is shown"
    assert {r.value for r in Role} <= set(" ".join(lines).split()), "every role whole"
    everything = rendered(status_view.dashboard(report))
    rule = next(n for n, line in enumerate(everything) if "Recent events" in line)
    assert len(everything[rule + 1 : -1]) == 15, "without a height: every recent event"


HOSTILE = (
    "quotes \" and ' stay; a\nnewline stays; tab\tstays; é ü 中文 🎉 stay; "
    "ESC[2J\x1b[2J clear; OSC title\x1b]0;pwned\x07; BEL\x07; NUL\x00; CR\rover; BS\x08; "
    "DEL\x7f; C1 CSI\x9b31m; RLO\u202eevil; LRI\u2066x\u2069"
)
RAW = ["\x1b", "\x07", "\x00", "\r", "\x08", "\x7f", "\x9b", "\u202e", "\u2066", "\u2069"]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("say \"hi\" and 'bye'", "say \"hi\" and 'bye'"),
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),
        ("é ü 中文 🎉 👨\u200d👩\u200d👧", "é ü 中文 🎉 👨\u200d👩\u200d👧"),  # joiners are no controls
        ("\x1b[31mred\x1b[0m", "\\e[31mred\\e[0m"),
        ("\x1b]0;title\x07", "\\e]0;title\\x07"),
        ("bell\x07", "bell\\x07"),
        ("nul\x00", "nul\\x00"),
        ("over\rwrite", "over\\rwrite"),
        ("back\x08space", "back\\x08space"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
        ("bidi \u202eevil\u202c \u2066x\u2069", "bidi \\u202eevil\\u202c \\u2066x\\u2069"),
        ("already \\e escaped", "already \\e escaped"),
    ],
)
def test_terminal_safe_escapes_what_a_terminal_would_act_on_and_nothing_else(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown
    assert terminal_safe(shown) == shown  # applying it twice changes nothing


def _plain(renderable: RenderableType, width: int = 200) -> str:
    """What a view prints, without Rich's own styling (so any escape byte is the text's)."""
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    console.print(renderable)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def _assert_safe(output: str) -> None:
    for char in RAW:
        assert char not in output, f"{char!r} reached the terminal raw"


def _item(**fields: object) -> WorkItem:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    base: dict[str, object] = {"id": "work_1_a", "type": "t", "created_at": now, "updated_at": now}
    return WorkItem.model_validate(base | fields)


def test_show_keeps_the_descriptions_newlines_and_escapes_its_controls() -> None:
    item = _item(description=HOSTILE, note="note\x1b[5m", error="err\x07", payload={"k": "v\x1b"})
    output = _plain(render.item_table(item))
    _assert_safe(output)
    assert "\\e[2J" in output
    assert "\\e]0;pwned\\x07" in output
    lines = [line.strip() for line in output.splitlines()]
    assert any(line.startswith("newline stays") for line in lines), "the description's own newline is kept"
    assert "quotes \" and '" in output
    assert "中文 🎉" in output
    assert "note\\e[5m" in output
    assert "err\\x07" in output


def test_list_events_and_agents_escape_user_text() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    views: list[RenderableType] = [
        render.items_table([_item(description=HOSTILE[:80] + "\x1b[2J", team="t")]),
        render.event_line(
            Event(id="1-0", at=at, event=EventKind.FAILED, work_id="work_1_a", detail="boom\x1b[31m\x07")
        ),
        render.agents_table([Agent(id="a-1", role=Role.QA, team="core")]),
    ]
    for view in views:
        _assert_safe(_plain(view))
    assert "boom\\e[31m\\x07" in _plain(views[1])


def _cli_console(**options: object) -> Console:
    return runtime._console(file=io.StringIO(), width=200, highlight=False, **options)


def _written(console: Console) -> str:
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def test_the_cli_consoles_escape_whatever_a_view_forgot_to() -> None:
    console = _cli_console(color_system=None)
    console.print("raw str\x1b[2J\x07", markup=False)
    console.print(Text("a Text\x1b]0;x\x07"))
    output = _written(console)
    _assert_safe(output)
    assert "raw str\\e[2J" in output  # (Rich itself drops BEL, BS, VT, FF and CR from what it prints)
    assert "a Text\\e]0;x" in output


def test_the_cli_consoles_keep_their_own_colours() -> None:
    console = _cli_console(force_terminal=True, color_system="standard")
    console.print(Text("red\x1b[2J", style="red"))
    output = _written(console)
    assert "\x1b[31m" in output, "Rich's own styling still reaches the terminal"
    assert "red\\e[2J" in output
    assert "\x1b[2J" not in output


def test_errors_are_escaped_on_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from swarm.errors import BadInput

    with pytest.raises(Exception):  # noqa: B017, PT011 - typer.Exit, whatever its base
        runtime.fail(BadInput("no such type 'x\x1b[2J'"), as_json=False)
    captured = capsys.readouterr()
    _assert_safe(captured.err)
    assert "x\\e[2J" in captured.err


def test_json_output_escapes_what_json_leaves_raw_and_keeps_its_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime.print_json({"description": HOSTILE})
    runtime.print_model(_item(description=HOSTILE))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        _assert_safe(line)
    assert json.loads(lines[0]) == {"description": HOSTILE}
    assert json.loads(lines[1])["description"] == HOSTILE


def test_the_80_column_tables_escape_user_text_and_fit_what_is_shown() -> None:
    named = "agent\x1b[2J"
    items = [item(1, Role.QA, status=Status.CLAIMED, agent_id=named, team="red\x07", type="t\x1b]0;x")]
    items.append(item(2, Role.PM, team="blue"))
    lines = rendered(render.ItemsTable(items))
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    _assert_safe("\n".join(lines))
    assert "agent\\e" in "\n".join(lines), "the name escaped (then cut to fit)"
    assert "red\\x07" in lines[0], "the teams in the title, escaped"
    wide = "\n".join(rendered(render.ItemsTable(items), width=200))
    assert "agent\\e[2J" in wide
    assert "t\\e]0;x" in wide
    agents = [Agent(id=named, role=Role.QA, team="core\x1b[1m", last_heartbeat=NOW)]
    shown = "\n".join(rendered(render.AgentsTable(agents, now=NOW)))
    _assert_safe(shown)
    assert "agent\\e[2J" in shown
