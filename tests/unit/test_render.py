"""Control characters never reach a terminal raw (issue 12, item 11): ``terminal_safe`` shows each
as an escape, every view of user text uses it, and the CLI's consoles apply it to whatever they
print; JSON output escapes what JSON leaves raw."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from rich.console import Console, RenderableType
from rich.text import Text

from swarm.cli import render, runtime
from swarm.models import Agent, Event, EventKind, Role, WorkItem
from swarm.terminal import terminal_safe

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
