"""The beat schedule: built-in entries from the settings, then a beat file's tables on top.

The beat file is the one the ``beat_schedule_file`` setting names, else ``./config/beat.toml``
when present, else the packaged ``ceremonies/beat.toml`` (which changes nothing).

Built-in entries (each can be retimed or switched off in the file, under its name):

- ``reaper``: one lease-reaper pass every ``reaper_interval`` (default lease / 4). The leading
  beat runs it in its own process, so recovery does not wait for a free worker slot.
- ``pi-planning``, ``art-sync``, ``system-demo``, ``inspect-adapt``: every ``calendar_tick``
  the leading beat checks the calendar and sends the ceremony's task once its period is due
  and has no report yet (``ceremonies.scheduler``).
- ``improve``: one self-improvement cycle every ``improve_every`` (default 4 h).

Other tables add entries for any Celery task: ``task``, then ``every`` (a duration) or
``cron`` (five crontab fields), and optionally ``args``, ``kwargs`` and ``queue``.

``configure_beat`` puts RedBeat (in the swarm's namespace) and this schedule in an app's
configuration; ``ceremonies.scheduler.SwarmScheduler`` does it itself on an app that has not,
so that any beat on a swarm app (``celery -A swarm beat``) runs the swarm's schedule.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from swarm.celery_app import CEREMONY_TASK, IMPROVE_TASK, REAP_TASK
from swarm.config_files import PackagedFile, read_toml
from swarm.durations import Duration
from swarm.errors import BadInput
from swarm.keys import Keys
from swarm.settings import Settings

CEREMONY_NAMES = ("pi-planning", "art-sync", "system-demo", "inspect-adapt")
BEAT_FILE = PackagedFile("ceremonies", "beat.toml", "beat_schedule_file")
SCHEDULER = "ceremonies.scheduler:SwarmScheduler"


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


class BeatEntry(BaseModel):
    """One table of the beat file."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = None
    every: Duration | None = None
    cron: str | None = None
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _one_timing(self) -> BeatEntry:
        if self.every is not None and self.cron is not None:
            raise ValueError("give `every` or `cron`, not both")
        return self


def built_in(settings: Settings) -> dict[str, dict[str, Any]]:
    tick = settings.calendar_tick_seconds
    entries: dict[str, dict[str, Any]] = {
        "reaper": {"task": REAP_TASK, "schedule": settings.reaper_interval_seconds},
    }
    for name in CEREMONY_NAMES:
        entries[name] = {"task": CEREMONY_TASK, "schedule": tick, "args": [name]}
    entries["improve"] = {"task": IMPROVE_TASK, "schedule": settings.improve_every}
    return entries


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: the built-in entries with the file's changes and additions."""
    entries = built_in(settings)
    file, tables = read_toml(settings.beat_schedule_file, BEAT_FILE)
    for name, table in tables.items():
        try:
            spec = BeatEntry.model_validate(table)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "table"
            raise BadInput(f"{file}: [{name}] {where}: {first['msg']}") from None
        if not spec.enabled:
            entries.pop(name, None)
            continue
        entries[name] = _merge(file.name, name, entries.get(name), spec)
    return entries


def _merge(file: str, name: str, base: dict[str, Any] | None, spec: BeatEntry) -> dict[str, Any]:
    entry = dict(base or {})
    if spec.task is not None:
        entry["task"] = spec.task
    if "task" not in entry:
        raise BadInput(f"{file}: [{name}] needs a `task`")
    if spec.every is not None:
        entry["schedule"] = spec.every
    elif spec.cron is not None:
        entry["schedule"] = _crontab(file, name, spec.cron)
    if "schedule" not in entry:
        raise BadInput(f"{file}: [{name}] needs `every` or `cron`")
    if spec.args:
        entry["args"] = spec.args
    if spec.kwargs:
        entry["kwargs"] = spec.kwargs
    if spec.queue:
        entry["options"] = {"queue": spec.queue}
    return entry


def _crontab(file: str, name: str, text: str) -> crontab:
    fields = text.split()
    if len(fields) != 5:
        raise BadInput(f"{file}: [{name}] cron needs five fields (minute hour day month weekday): {text!r}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute, hour, day_of_week, day_of_month, month_of_year)
    except ValueError as exc:
        raise BadInput(f"{file}: [{name}] cron {text!r}: {exc}") from None
