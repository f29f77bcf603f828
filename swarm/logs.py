"""Logging (SPEC §10): structlog, rendered as JSON lines or as a coloured console.

Every line goes through the standard ``logging`` module and one ``structlog.stdlib.
ProcessorFormatter`` on the root logger: swarm's structlog events and the lines of Celery,
Kombu or any other library alike, so a worker's log is uniformly JSON (or console). The format
is the ``log_format`` setting (``SWARM_LOG_FORMAT``): ``json``, ``console``, or ``auto`` — JSON
unless stderr is a terminal.

Each line carries ``trace_id`` and ``span_id`` of the current OpenTelemetry span, when there is
one, and whatever is bound with ``structlog.contextvars`` (the worker binds ``work_id``,
``agent_id`` and ``role`` while it runs an item). A library's message stays whole in ``event``
(e.g. Celery's ``Task swarm.execute[...] succeeded in 0.01s: 'completed'``).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import IO, Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from swarm import tracing
from swarm.terminal import terminal_safe

Format = Literal["json", "console"]


class _Installed:
    """The root's swarm handler and what it renders, for output written outside logging
    (``swarm.celery_output``)."""

    handler: logging.Handler | None = None
    format: Format | None = None


_installed = _Installed()


def add_trace_ids(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """Adds the current span's ``trace_id`` and ``span_id`` (nothing when no span records)."""
    ids = tracing.log_ids()
    if ids is not None:
        event["trace_id"], event["span_id"] = ids
    return event


def escape_controls(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """A console line's text values with their control characters escaped (``swarm.terminal``):
    a logged description or error cannot drive the terminal. JSON lines escape them as JSON."""
    return {key: terminal_safe(value) if isinstance(value, str) else value for key, value in event.items()}


# Run on every line, structlog's own and other libraries' (``foreign_pre_chain``).
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_trace_ids,
]


def resolve_format(setting: str | None = None, stream: IO[str] | None = None) -> Format:
    """``json`` or ``console`` for ``setting`` (default: the ``log_format`` setting)."""
    if setting is None:
        from swarm.settings import get_settings  # noqa: PLC0415 - settings import logging users

        try:
            setting = get_settings().log_format
        except ValueError:  # a bad setting or settings file: the command that reads it reports it clearly
            setting = "auto"
    if setting in ("json", "console"):
        return "json" if setting == "json" else "console"
    target = stream if stream is not None else sys.stderr
    isatty = getattr(target, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def formatter(fmt: Format, *, colors: bool = False) -> structlog.stdlib.ProcessorFormatter:
    """The ``logging.Formatter`` that renders every record as a JSON line or a console line."""
    renderer: Processor
    tail: list[Processor]
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(default=str)
        tail = [structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
        tail = [structlog.processors.StackInfoRenderer(), escape_controls]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that looks its stream up on every line (``sys.stderr`` may be replaced,
    e.g. under pytest), marked as swarm's so that installing again replaces it."""

    def __init__(self, stream: Callable[[], IO[str]]) -> None:
        super().__init__()
        self._stream_of = stream

    @property
    def stream(self) -> IO[str]:
        return self._stream_of()

    @stream.setter
    def stream(self, _value: IO[str]) -> None:  # StreamHandler.__init__ assigns it
        pass


def configure_logging() -> None:
    """Routes structlog through stdlib logging (idempotent); a process that has no log handler
    yet (the CLI) gets one on stderr for warnings and worse."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    if not logging.getLogger().handlers:
        install_handler(logging.WARNING)


def install_handler(
    level: int | str,
    *,
    fmt: str | None = None,
    logfile: str | None = None,
    stream: Callable[[], IO[str]] | None = None,
) -> logging.Handler:
    """Makes the root logger's one swarm handler (replacing an earlier one) render every line.

    ``stream`` gives the stream to write to at each line (default: the current ``sys.stderr``);
    ``logfile`` writes to a file instead. Celery's loggers propagate to it, and Python's
    warnings are logged (``py.warnings``).
    """
    handler: logging.Handler
    if logfile:
        handler = logging.FileHandler(logfile, encoding="utf-8")
        chosen = resolve_format(fmt, handler.stream)
        colors = False
    else:
        stream_of = stream or (lambda: sys.stderr)
        handler = _Handler(stream_of)
        chosen = resolve_format(fmt, stream_of())
        isatty = getattr(stream_of(), "isatty", None)
        colors = chosen == "console" and isatty is not None and bool(isatty())
    handler.setFormatter(formatter(chosen, colors=colors))
    handler.set_name("swarm")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "swarm"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    _installed.handler, _installed.format = handler, chosen
    capture_warnings()
    for name in ("celery", "celery.task", "celery.redirected"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    return handler


def capture_warnings() -> None:
    """Python's warnings become log lines, one line each (``log_warning``).

    ``logging.captureWarnings`` runs first so that its later calls (Celery makes one when it
    sets up logging) find warnings captured already and leave ``log_warning`` in place.
    """
    logging.captureWarnings(True)
    warnings.showwarning = log_warning


def log_warning(  # noqa: PLR0917 - warnings.showwarning's signature
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """One warning as one log line (logger ``py.warnings``): its words on one line, and where it
    came from as fields. Celery's warning about running as root, for one, is laid out over
    several lines, which JSON would show as one string full of escaped newlines."""
    if file is not None:  # written to a file the caller chose: Python's own way
        file.write(warnings.formatwarning(message, category, filename, lineno, line))
        return
    logging.getLogger("py.warnings").warning(
        " ".join(str(message).split()),
        extra={"category": category.__name__, "source": f"{filename}:{lineno}"},
    )


def json_handler() -> logging.Handler | None:
    """The root's swarm handler when it renders JSON lines (else None)."""
    return _installed.handler if _installed.format == "json" else None


def celery_setup_logging(loglevel: Any = None, logfile: Any = None, **_: Any) -> None:
    """A receiver for Celery's ``setup_logging`` signal: Celery then leaves logging to swarm.

    It writes to the process's original stderr, which Celery's stdout redirection (print() in a
    task becomes a log line) does not replace.
    """
    level = loglevel if loglevel else logging.INFO
    install_handler(level, logfile=logfile or None, stream=lambda: sys.__stderr__ or sys.stderr)
