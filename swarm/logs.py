"""Log lines from swarm's code go through the standard ``logging`` module.

So the Celery worker's ``--loglevel`` filters them and its formatter prints them, once, with
the process name; structlog only renders the event and its key=value context.
"""

from __future__ import annotations

import structlog


def configure_logging() -> None:
    """Routes structlog through stdlib logging (idempotent)."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
