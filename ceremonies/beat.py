"""The beat-side Celery app (``celery -A ceremonies.beat beat``), built from the environment.

``swarm beat`` sets REDIS_URL (or an embedded Redis) and runs a real ``celery beat`` on this
app with ``ceremonies.scheduler.SwarmScheduler``. Beat only sends tasks by name, so this app
registers none: the workers run them.
"""

from __future__ import annotations

from celery import Celery

from ceremonies.schedule import beat_schedule
from swarm.celery_app import create_app
from swarm.embedded import LOCAL_REDIS_URL
from swarm.keys import Keys
from swarm.logs import configure_logging
from swarm.settings import Settings, get_settings

SCHEDULER = "ceremonies.scheduler:SwarmScheduler"
REDIS_RETRY_PERIOD_S = 60  # beat's own Redis calls retry this long through a restart


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
            "retry_period": REDIS_RETRY_PERIOD_S,
        },
    )


configure_logging()
settings = get_settings()
broker_url = settings.redis_url or LOCAL_REDIS_URL
app: Celery = create_app(settings, broker_url)
configure_beat(app, settings, broker_url)
