"""What ``swarm up`` prints: its children's JSON lines as console lines on a terminal, as JSON
lines (with the child's name) otherwise, and a warning every child gives only once."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console

from swarm.cli.fleet_output import FleetOutput

STAMP = "2026-01-02T03:04:05.678901Z"


def _line(event: str, **more: Any) -> str:
    fields = {"event": event, "level": "info", "logger": "celery.apps.worker", "timestamp": STAMP}
    return json.dumps(fields | more)


def _output(fmt: str) -> tuple[FleetOutput, io.StringIO]:
    stream = io.StringIO()
    console = Console(file=stream, width=80, force_terminal=False, color_system=None)
    return FleetOutput.for_console(console, fmt), stream


def test_json_output_keeps_each_childs_line_and_names_the_child() -> None:
    output, stream = _output("json")
    output.say("swarm up on redis://x (REDIS_URL): starting 2 processes")
    output.child_line("qa", _line("qa@host ready.", work_id="w1"))
    output.child_line("flower", "Visit me at http://127.0.0.1:5555")  # not JSON: wrapped
    own, child, other = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (own["event"], own["logger"], own["level"]) == (
        "swarm up on redis://x (REDIS_URL): starting 2 processes",
        "swarm.up",
        "info",
    )
    assert "process" not in own
    assert (child["event"], child["process"], child["work_id"]) == ("qa@host ready.", "qa", "w1")
    assert child["timestamp"] == STAMP, "the child's own line, untouched"
    assert (other["event"], other["logger"], other["process"]) == (
        "Visit me at http://127.0.0.1:5555",
        "swarm.up",
        "flower",
    )


def test_console_output_renders_each_childs_line_after_its_name() -> None:
    output, stream = _output("console")
    output.say("swarm up: stopped")
    output.child_line("developer", _line("developer@host ready.", work_id="w1"))
    output.child_line("beat", "celery beat v5 is starting.")
    own, child, other = stream.getvalue().splitlines()
    assert own == "swarm up: stopped"
    assert child.startswith("developer | 03:04:05.678 [info")
    for part in ("developer@host ready.", "[celery.apps.worker]", "work_id=w1"):
        assert part in child
    assert other == "     beat | celery beat v5 is starting."


def test_a_warning_every_child_gives_is_shown_once() -> None:
    output, stream = _output("json")
    root = _line("You're running the worker with superuser privileges", logger="py.warnings", level="warning")
    for child in ("pm", "qa", "devops"):
        output.child_line(child, root)
        output.child_line(child, _line(f"{child}@host ready."))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["process"] for line in lines if line["logger"] == "py.warnings"] == ["pm"]
    assert len(lines) == 4
