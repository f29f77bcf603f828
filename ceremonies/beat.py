"""The beat-side Celery app (``celery -A ceremonies.beat beat``), built from the environment.

``swarm beat`` sets REDIS_URL (or an embedded Redis) and runs a real ``celery beat`` on this
app with ``ceremonies.scheduler.SwarmScheduler``. Beat only sends tasks by name, so this app
registers none: the workers run them. Its logging goes through swarm's formatter (``swarm.logs``)
and, with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the tasks it sends are traced.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import beat_init, setup_logging

from ceremonies.schedule import beat_schedule
from swarm import tracing
from swarm.celery_app import create_app
from swarm.embedded import LOCAL_REDIS_URL
from swarm.keys import Keys
from swarm.logs import celery_setup_logging, configure_logging
from swarm.settings import Settings, get_settings

SCHEDULER = "ceremonies.scheduler:SwarmScheduler"
SERVICE_NAME = "swarm-beat"  # OTEL_SERVICE_NAME's default


def configure_beat(app: Celery, settings: Settings, redis_url: str) -> None:
    """RedBeat in the swarm's namespace, with the swarm's schedule."""
    keys = Keys(settings.key_prefix)
    app.conf.update(
        beat_scheduler=SCHEDULER,
        result_expires=None,  # no result backend: no celery.backend_cleanup entry
        beat_schedule=beat_schedule(settings),
        beat_max_loop_interval=settings.beat_max_interval,
        redbeat_redis_url=redis_url,
        redbeat_key_prefix=keys.redbeat_prefix,
        redbeat_lock_key=keys.beat_lock,
        redbeat_lock_timeout=settings.beat_lock_timeout_seconds,
        redbeat_redis_options={
            "socket_timeout": settings.socket_timeout,
            "socket_connect_timeout": settings.socket_timeout,
            "retry_period": settings.beat_redis_retry,  # then, at start, beat gives up (exit 7)
        },
    )


configure_logging()
setup_logging.connect(celery_setup_logging, weak=False)
settings = get_settings()
broker_url = settings.redis_url or LOCAL_REDIS_URL
app: Celery = create_app(settings, broker_url)
configure_beat(app, settings, broker_url)


@beat_init.connect
def _tracing_in_beat(**_: Any) -> None:
    tracing.setup_tracing(SERVICE_NAME)
