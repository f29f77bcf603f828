"""Log rendering: JSON lines or console, with the context bound by structlog.contextvars."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator

import pytest
import structlog
from celery.exceptions import SecurityWarning
from structlog.contextvars import bound_contextvars

from swarm import celery_output, logs
from swarm.celery_app import create_app
from swarm.settings import Settings, get_settings


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


def test_a_warning_is_one_line_in_plain_words_with_its_category_and_source(captured: io.StringIO) -> None:
    message = "You're running the worker with superuser privileges: this is\nabsolutely not recommended!\n\n"
    warnings.warn_explicit(
        SecurityWarning(message + "Please use --uid.\n"), SecurityWarning, "platforms.py", 7
    )
    (line,) = (json.loads(text) for text in captured.getvalue().splitlines())
    assert line["event"] == (
        "You're running the worker with superuser privileges: this is absolutely not recommended! "
        "Please use --uid."
    )
    assert (line["logger"], line["level"]) == ("py.warnings", "warning")
    assert (line["category"], line["source"]) == ("SecurityWarning", "platforms.py:7")


def test_celerys_own_capture_of_warnings_leaves_the_one_line_form_in_place(captured: io.StringIO) -> None:
    logging.captureWarnings(True)  # what Celery calls when it sets up logging
    warnings.warn_explicit("two\nlines", UserWarning, "x.py", 1)
    assert json.loads(captured.getvalue())["event"] == "two lines"


def test_celerys_signal_time_messages_are_json_lines_in_a_json_log(captured: io.StringIO) -> None:
    read, write = os.pipe()
    stream = os.fdopen(write, "w")
    handler = logs.install_handler(logging.INFO, fmt="json", stream=lambda: stream)
    try:
        celery_output.say("worker: Warm shutdown (MainProcess)", sys.__stdout__)
    finally:
        logging.getLogger().removeHandler(handler)
        stream.close()
    with os.fdopen(read) as pipe:
        line = json.loads(pipe.read())
    assert (line["event"], line["logger"]) == ("worker: Warm shutdown (MainProcess)", "celery.apps.worker")


def test_beat_leaves_its_banner_out_of_a_json_log(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(Settings(key_prefix="tbanner", redis_url=None), "redis://127.0.0.1:1/0")
    monkeypatch.setenv("SWARM_LOG_FORMAT", "json")
    get_settings.cache_clear()
    try:
        assert app.Beat().quiet
        monkeypatch.setenv("SWARM_LOG_FORMAT", "console")
        get_settings.cache_clear()
        assert not app.Beat().quiet, "a console shows Celery's banner"
        assert app.Beat(quiet=True).quiet
    finally:
        get_settings.cache_clear()


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
