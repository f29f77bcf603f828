"""What ``swarm up`` prints: its own lines and its children's, as console lines or as JSON lines.

The children (workers, beat, Flower) always log JSON lines to ``swarm up`` (``CHILD_LOG_ENV``);
it renders them in the format of its own output, ``SWARM_LOG_FORMAT`` (``auto``: console lines
when stdout is a terminal, JSON lines otherwise):

- console: ``developer | 20:23:43.703 [info] developer@host ready. [celery.apps.worker]``, the
  child's name in its colour and its line through structlog's ``ConsoleRenderer``;
- JSON: the child's own line with ``"process": "developer"`` added, and ``swarm up``'s own
  messages as JSON lines as well (logger ``swarm.up``), so that every line parses.

A Python warning (logger ``py.warnings``) is shown once, from the first child that gives it:
every worker would repeat Celery's warning about running as root.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import structlog
from rich.console import Console
from rich.text import Text

from swarm.logs import Format, escape_controls, formatter, resolve_format

CHILD_LOG_ENV = {"SWARM_LOG_FORMAT": "json"}  # what the children log in, for swarm up to read
ROLE_COLOURS = {
    "pm": "magenta",
    "architect": "blue",
    "developer": "green",
    "qa": "yellow",
    "devops": "cyan",
    "beat": "red",
}
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class FleetOutput:
    """Prints ``swarm up``'s messages and its children's lines in one format; thread-safe (each
    child's output is pumped by a thread of its own)."""

    def __init__(self, fmt: Format, console: Console) -> None:
        self.format = fmt
        self.console = console
        self._lock = threading.Lock()
        self._warnings_shown: set[str] = set()
        self._json = formatter("json")
        self._console_renderer = structlog.dev.ConsoleRenderer(colors=console.is_terminal)

    @classmethod
    def for_console(cls, console: Console, setting: str | None = None) -> FleetOutput:
        """The format ``setting`` (default: the ``log_format`` setting) gives ``console``'s stream."""
        return cls(resolve_format(setting, console.file), console)

    def say(self, text: str, *, level: str = "info", style: str | None = None) -> None:
        """One of ``swarm up``'s own messages."""
        if self.format == "console":
            self.console.print(text, style=style, markup=False, highlight=False)
            return
        self._write(self._json_line(text, level))

    def child_line(self, name: str, line: str) -> None:
        """One line a child printed (a JSON log line, or any other text)."""
        event = _parsed(line)
        if event is not None and event.get("logger") == "py.warnings":
            with self._lock:
                if str(event.get("event")) in self._warnings_shown:
                    return
                self._warnings_shown.add(str(event.get("event")))
        if self.format == "json":
            if event is None:  # a line that is no log line (e.g. Flower's own): one of swarm up's
                event = json.loads(self._json_line(line, "info"))
            self._write(json.dumps({**event, "process": name}, default=str))
            return
        rendered = line if event is None else self._console_line(event)
        colour = ROLE_COLOURS.get(name, "white")
        for part in rendered.splitlines() or [""]:
            body = Text.from_ansi(part) if event is not None else Text(part)
            self.console.print(Text.assemble((f"{name:>9} | ", colour), body), soft_wrap=True)

    def _json_line(self, text: str, level: str) -> str:
        record = logging.LogRecord("swarm.up", LEVELS[level], __file__, 0, text, None, None)
        return self._json.format(record)

    def _console_line(self, event: dict[str, Any]) -> str:
        event = dict(escape_controls(None, "", event))  # a logged text cannot drive the terminal
        stamp = str(event.get("timestamp", ""))
        if "T" in stamp:  # the time of day is enough on a console: 20:23:43.703
            event["timestamp"] = stamp.split("T", 1)[1].rstrip("Z")[:12]
        return str(self._console_renderer(None, str(event.get("level", "info")), event))

    def _write(self, text: str) -> None:
        with self._lock:
            stream = self.console.file
            stream.write(text + "\n")
            stream.flush()


def _parsed(line: str) -> dict[str, Any] | None:
    """A child's JSON log line as a dict; None for any other text."""
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
