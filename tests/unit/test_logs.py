"""Log rendering: JSON lines or console, with the context bound by structlog.contextvars."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.contextvars import bound_contextvars

from swarm import logs


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_json_off_a_terminal_and_console_on_one() -> None:
    assert logs.resolve_format("auto", io.StringIO()) == "json"
    assert logs.resolve_format("auto", _Tty()) == "console"
    assert logs.resolve_format("json", _Tty()) == "json"
    assert logs.resolve_format("console", io.StringIO()) == "console"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.configure_logging()
    handler = logs.install_handler(logging.INFO, fmt="json", stream=lambda: stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_structlog_and_stdlib_lines_are_json_with_the_bound_context(captured: io.StringIO) -> None:
    with bound_contextvars(work_id="work_1", agent_id="agent_1", role="qa"):
        structlog.get_logger("swarm.test").info("finished", outcome="completed")
        logging.getLogger("celery.app.trace").info(
            "Task swarm.execute[%s] succeeded in %ss: %r", "x", 0.1, "done"
        )
    logging.getLogger("celery").info("outside")
    first, second, third = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["event"] == "finished"
    assert (first["work_id"], first["agent_id"], first["role"], first["outcome"]) == (
        "work_1",
        "agent_1",
        "qa",
        "completed",
    )
    assert second["event"] == "Task swarm.execute[x] succeeded in 0.1s: 'done'"
    assert second["work_id"] == "work_1"
    assert second["logger"] == "celery.app.trace"
    assert "work_id" not in third, "the context was unbound"
    assert "trace_id" not in third, "no span: no trace ids"


def test_console_format_renders_the_event_and_context() -> None:
    stream = io.StringIO()
    logs.configure_logging()
    handler = logs.install_handler(logging.INFO, fmt="console", stream=lambda: stream)
    try:
        with bound_contextvars(work_id="work_9"):
            structlog.get_logger("swarm.test").warning("lease_expired")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "lease_expired" in text
    assert "work_9" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_console_lines_never_carry_a_logged_texts_control_characters() -> None:
    stream = _Tty()  # a terminal: coloured console lines
    logs.configure_logging()
    handler = logs.install_handler(logging.INFO, fmt="console", stream=lambda: stream)
    try:
        structlog.get_logger("swarm.test").warning("failed \x1b[5m", error="stderr:\x1b[2J\x1b]0;pwned\x07")
        logging.getLogger("celery").warning("raw \x1b]8;;http://evil\x1b\\link %s", "\x9b2J")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "failed \\e[5m" in text
    assert "stderr:\\e[2J\\e]0;pwned\\x07" in text
    assert "raw \\e]8;;http://evil\\e\\link \\x9b2J" in text
    for raw in ("\x1b[5m", "\x1b[2J", "\x1b]", "\x07", "\x9b"):
        assert raw not in text
    assert "\x1b[" in text, "the console's own colours stay"


def test_json_lines_keep_the_exact_text_escaped_as_json(captured: io.StringIO) -> None:
    structlog.get_logger("swarm.test").warning("failed \x1b[5m", error="stderr:\x1b[2J\x07")
    line = captured.getvalue().splitlines()[0]
    assert "\x1b" not in line
    assert "\x07" not in line
    assert json.loads(line)["error"] == "stderr:\x1b[2J\x07"
