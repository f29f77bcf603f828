"""What Celery prints outside logging, made to fit a JSON log.

Celery writes a few things straight to stdout: beat's banner (``celery beat v… is starting.``
and its configuration) and the worker's signal-time messages (``worker: Warm shutdown
(MainProcess)``, ``Hitting Ctrl+C again…``). In a JSON log (``SWARM_LOG_FORMAT``, ``swarm.logs``)
each would be a line that does not parse. So, when swarm's handler renders JSON:

- beat starts quiet (``LoggedBeat``, every swarm app's ``Beat``): no banner; Celery's own
  ``beat: Starting...`` line says it started;
- the worker's messages become JSON lines of logger ``celery.apps.worker`` on the log's stream
  (``route_worker_messages``). They are written with ``os.write``, as Celery writes them: they
  are said inside signal handlers, where a buffered stream may be half way through a write.

On a console nothing changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import IO, Any, cast

from celery.apps import worker as celery_worker
from celery.apps.beat import Beat
from celery.beat import Service as BeatService

from swarm import logs

# Not in celery-types' stub: looked up by name.
_celery_say = cast("Callable[[str, IO[str] | None], None]", vars(celery_worker)["safe_say"])


class LoggedBeat(Beat):
    """Celery's beat, without its banner when the log is JSON."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["quiet"] = bool(kwargs.get("quiet")) or logs.resolve_format() == "json"
        super().__init__(*args, **kwargs)

    def install_sync_handler(self, service: BeatService) -> None:
        """Loads the scheduler before SIGTERM's handler is installed, as the banner does: beat
        says it is starting before it makes its scheduler, and a SIGTERM then would make the
        handler import the scheduler's module again, half initialised (beat would exit 1)."""
        service.get_scheduler(lazy=True)
        super().install_sync_handler(service)


def _stream_fd(handler: logging.Handler) -> int | None:
    stream = getattr(handler, "stream", None)
    try:
        return int(stream.fileno()) if stream is not None else None
    except (OSError, ValueError, AttributeError):
        return None


def say(msg: str, f: IO[str] | None = sys.__stderr__) -> None:
    """``celery.apps.worker.safe_say``: a JSON line when the log is JSON, Celery's own otherwise."""
    handler = logs.json_handler()
    fd = _stream_fd(handler) if handler is not None else None
    if handler is None or fd is None:
        _celery_say(msg, f)
        return
    record = logging.LogRecord("celery.apps.worker", logging.INFO, __file__, 0, msg.strip(), None, None)
    with contextlib.suppress(OSError):  # losing the line must never stop a shutdown (as Celery's)
        os.write(fd, (handler.format(record) + "\n").encode("utf-8", "replace"))


def route_worker_messages() -> None:
    """Makes the worker's signal-time messages go through ``say`` (idempotent)."""
    vars(celery_worker)["safe_say"] = say
