"""Beat's scheduler brings the swarm's schedule to any app that names it, and logs only its sends."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from ceremonies.schedule import CEREMONY_NAMES
from ceremonies.scheduler import SwarmScheduler
from swarm import logs
from swarm.celery_app import create_app
from swarm.keys import Keys
from swarm.settings import get_settings

URL = "redis://127.0.0.1:1/0"  # built, never connected


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SWARM_KEY_PREFIX", "tsched")
    monkeypatch.setenv("SWARM_BEAT_MAX_INTERVAL", "2s")
    get_settings.cache_clear()
    yield "tsched"
    get_settings.cache_clear()


def test_an_app_nobody_set_up_for_beat_gets_the_swarms_redbeat_and_schedule(prefix: str) -> None:
    app = create_app(get_settings(), URL)  # as celery -A swarm beat finds it: no beat settings
    scheduler = SwarmScheduler(app, lazy=True)
    keys = Keys(prefix)
    assert app.conf.redbeat_key_prefix == keys.redbeat_prefix
    assert app.conf.redbeat_redis_url == URL
    assert scheduler.lock_key == keys.beat_lock
    assert scheduler.max_interval == 2.0
    assert {"reaper", "improve", *CEREMONY_NAMES} <= set(app.conf.beat_schedule)


def test_an_app_set_up_for_beat_keeps_its_settings(prefix: str) -> None:
    app = create_app(get_settings(), URL)
    elsewhere = {"redbeat_key_prefix": "{tsched}:elsewhere:", "redbeat_redis_url": "redis://127.0.0.1:2/0"}
    app.conf.update(elsewhere, redbeat_redis_options={})
    SwarmScheduler(app, lazy=True)
    assert (app.conf.redbeat_key_prefix, app.conf.redbeat_redis_url) == (
        "{tsched}:elsewhere:",
        "redis://127.0.0.1:2/0",
    )


class _Entry:
    def __init__(self, name: str) -> None:
        self.name, self.task = name, "swarm.ceremony"

    def is_due(self) -> tuple[bool, float]:
        return True, 5.0


class _Sent:
    id = "task-1"


class _Scheduler(SwarmScheduler):
    """What a due entry's check gives: a sent task for 'sends', nothing for the others."""

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        return _Sent() if entry.name == "sends" else None


def test_a_due_entry_is_logged_only_when_it_sent_a_task(prefix: str) -> None:
    stream = io.StringIO()
    logs.configure_logging()
    handler = logs.install_handler(logging.INFO, fmt="json", stream=lambda: stream)
    try:
        scheduler = _Scheduler(create_app(get_settings(), URL), lazy=True)
        for name in ("not-due-yet", "sends", "reaper"):
            assert scheduler.maybe_due(_Entry(name)) == 5.0
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["entry"], line["task_id"]) for line in lines] == [
        ("beat_sent", "sends", "task-1")
    ]
