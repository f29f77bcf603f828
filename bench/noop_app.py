"""The baseline for ``bench_workers.py``: a plain Celery app with one no-op task.

Run as ``celery -A bench.noop_app worker -P threads -c 4 -Q QUEUE`` from the project root, with
``BENCH_NOOP_BROKER``, ``BENCH_NOOP_QUEUE`` and ``BENCH_NOOP_TRANSPORT`` (the swarm's broker
transport options as JSON, from ``transport_options_json``) in the environment. It has the
swarm's delivery settings where they touch the hot path (JSON, ``acks_late``, prefetch 1, the
same broker transport options), and nothing else: no events, no result backend. The task's only
work is one ``INCR`` on the counter key it is given, which is how the bench sees that it ran.

The worker never imports ``swarm`` (pydantic and the rest would inflate the memory baseline).
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

import redis
from celery import Celery

NOOP_TASK = "bench.noop"
BROKER_ENV = "BENCH_NOOP_BROKER"
QUEUE_ENV = "BENCH_NOOP_QUEUE"
TRANSPORT_ENV = "BENCH_NOOP_TRANSPORT"


def transport_options_json() -> str:
    """The swarm's broker transport options (default settings), for ``BENCH_NOOP_TRANSPORT``."""
    from swarm.celery_app import broker_transport_options
    from swarm.settings import Settings

    return json.dumps(broker_transport_options(Settings(redis_url=None)))


def create_noop_app(broker_url: str, queue: str, transport_options: dict[str, Any] | None = None) -> Celery:
    """A plain Celery app on ``broker_url`` whose default queue is ``queue``."""
    if transport_options is None:
        transport_options = json.loads(transport_options_json())
    app = Celery("bench_noop", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_default_queue=queue,
        worker_hijack_root_logger=False,
    )
    return app


_broker = os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0")
_transport = os.environ.get(TRANSPORT_ENV)
app = create_noop_app(
    _broker, os.environ.get(QUEUE_ENV, "bench.noop"), json.loads(_transport) if _transport else None
)


@cache
def _client() -> redis.Redis:
    """One client (one connection pool, shared by the pool's threads) per worker process."""
    return redis.Redis.from_url(_broker)


@app.task(name=NOOP_TASK, ignore_result=True)
def noop(counter_key: str) -> None:
    """Does nothing but count itself."""
    _client().incr(counter_key)
