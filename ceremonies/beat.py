"""The beat-side Celery app (``celery -A ceremonies.beat beat``), built from the environment.

``swarm beat`` sets REDIS_URL (or an embedded Redis) and runs a real ``celery beat`` on this
app with ``ceremonies.scheduler.SwarmScheduler``. Beat only sends tasks by name, so this app
registers none: the workers run them. Its logging goes through swarm's formatter (``swarm.logs``)
and, with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the tasks it sends are traced (the scheduler
sets tracing up). ``celery -A swarm beat`` runs the same schedule on the workers' app.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging

from ceremonies.schedule import SCHEDULER, configure_beat
from swarm.celery_app import create_app
from swarm.embedded import LOCAL_REDIS_URL
from swarm.logs import celery_setup_logging, configure_logging
from swarm.settings import get_settings

__all__ = ["SCHEDULER", "app", "configure_beat"]

configure_logging()
setup_logging.connect(celery_setup_logging, weak=False)
settings = get_settings()
broker_url = settings.redis_url or LOCAL_REDIS_URL
app: Celery = create_app(settings, broker_url)
configure_beat(app, settings, broker_url)
