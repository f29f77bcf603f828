"""The calendar's settings, agreed through Redis: one calendar for every process of a ledger.

The first process to use a ledger's calendar stores its epoch and its settings together, in one
hash (``Keys.calendar``): each field is written with HSETNX inside one MULTI, so the hash holds
exactly one writer's calendar even when two first users race (Redis 6.2 commands only). Every
later process, on any host, uses the stored calendar, whatever its own environment says:

- the epoch is ``calendar_start`` when the first user set it, else an epoch stored by an earlier
  version (``Keys.calendar_epoch``), else the Redis server's clock at first use;
- ``iteration_length``, ``pi_iterations`` and ``art_sync_every`` are the first user's settings.

A process whose own settings (set in its environment or the settings file, not defaults) differ
from the stored ones logs ``calendar_settings_differ`` once, naming both values, and follows the
stored calendar: the shared truth wins, as a Celery user expects of settings kept in the broker.
Changing the calendar is explicit: ``change`` (``swarm calendar set``), guarded by a version.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, cast

import redis
import structlog
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from redis.typing import EncodableT, FieldT

from swarm.durations import format_duration, parse_duration
from swarm.errors import BadInput, SwarmError
from swarm.ledger import Ledger
from swarm.settings import Settings

# The settings that shape the calendar, in the order they are shown.
CALENDAR_SETTINGS = ("calendar_start", "iteration_length", "pi_iterations", "art_sync_every")
DURATIONS = ("iteration_length", "art_sync_every")

# Where a stored epoch came from (``epoch_from``).
FROM_START = "calendar_start"
FROM_FIRST_USE = "first use"
FROM_EARLIER_VERSION = "an earlier version's stored epoch"
FROM_SET = "swarm calendar set"

log = structlog.get_logger("swarm.calendar")


def utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class StoredCalendar(BaseModel):
    """The calendar stored in Redis, and where it came from."""

    model_config = ConfigDict(frozen=True)

    epoch: datetime  # when PI 1 began (UTC)
    iteration_length: float  # seconds
    pi_iterations: int
    art_sync_every: float  # seconds
    epoch_from: str  # FROM_START, FROM_FIRST_USE, FROM_EARLIER_VERSION or FROM_SET
    stored_at: datetime  # the Redis server's clock when it was stored, or last changed
    stored_by: str  # host:pid of the process that stored it, or last changed it
    version: int  # 1 when first stored, one more at each change

    def value(self, setting: str) -> Any:
        """The stored value of a calendar setting (``calendar_start`` is the epoch)."""
        return self.epoch if setting == "calendar_start" else getattr(self, setting)

    def shown(self, setting: str) -> str:
        return show(setting, self.value(setting))


def show(setting: str, value: Any) -> str:
    """A calendar setting's value as people write it: ``2w``, ``5``, an ISO 8601 instant."""
    if setting in DURATIONS:
        text = format_duration(float(value))  # exactly: 100 s is 100s, not 1.67m
        return text if parse_duration(text) == float(value) else f"{float(value):g}s"
    if isinstance(value, datetime):
        return utc(value).isoformat()
    return str(value)


def env_name(setting: str) -> str:
    return f"SWARM_{setting.upper()}"


class Difference(BaseModel):
    """A calendar setting this process was given that differs from the stored one."""

    model_config = ConfigDict(frozen=True)

    setting: str  # e.g. iteration_length
    env: str  # e.g. SWARM_ITERATION_LENGTH
    stored: str  # the value in use, e.g. 2w
    local: str  # this process's, ignored, e.g. 20s


@dataclass(frozen=True)
class Agreement:
    stored: StoredCalendar
    stored_now: bool  # this call stored it (it was the calendar's first user)
    differences: tuple[Difference, ...]


def differences(settings: Settings, stored: StoredCalendar) -> tuple[Difference, ...]:
    """The calendar settings given to this process (environment or settings file, not defaults)
    whose value differs from the stored calendar's."""
    found = []
    for name in CALENDAR_SETTINGS:
        local = getattr(settings, name)
        if name not in settings.model_fields_set or local is None:
            continue
        if name == "calendar_start":
            local = utc(local)
        if local != stored.value(name):
            shown = {"stored": stored.shown(name), "local": show(name, local)}
            found.append(Difference(setting=name, env=env_name(name), **shown))
    return tuple(found)


def read(ledger: Ledger) -> StoredCalendar | None:
    """The stored calendar, or None before its first user."""
    fields: dict[str, str] = ledger.read(ledger.client.hgetall, ledger.keys.calendar)
    return _parse(ledger, fields) if fields.keys() >= set(StoredCalendar.model_fields) else None


def agree(ledger: Ledger) -> Agreement:
    """The ledger's calendar: the stored one, stored now from this process's settings if there is
    none. Differences from this process's own settings are logged once per process."""
    key = ledger.keys.calendar
    fields: dict[str, str] = ledger.read(ledger.client.hgetall, key)
    stored_now = False
    if not fields.keys() >= set(StoredCalendar.model_fields):
        fields, stored_now = _store_first(ledger)
    stored = _parse(ledger, fields)
    found = differences(ledger.settings, stored)
    if found:
        _warn_once(key, stored, found)
    return Agreement(stored, stored_now, found)


def _store_first(ledger: Ledger) -> tuple[dict[str, str], bool]:
    settings, keys = ledger.settings, ledger.keys
    pipe = ledger.client.pipeline(transaction=False)
    pipe.time()
    pipe.get(keys.calendar_epoch)
    (seconds, micros), earlier = ledger.read(pipe.execute)
    now = datetime.fromtimestamp(seconds + micros / 1e6, UTC)
    if settings.calendar_start is not None:
        epoch, epoch_from = utc(settings.calendar_start), FROM_START
    elif earlier:
        epoch, epoch_from = utc(datetime.fromisoformat(earlier)), FROM_EARLIER_VERSION
    else:
        epoch, epoch_from = now, FROM_FIRST_USE
    values = {
        "calendar_start": epoch,
        "iteration_length": float(settings.iteration_length),
        "pi_iterations": settings.pi_iterations,
        "art_sync_every": float(settings.art_sync_every),
    }
    record = {
        **_encode(values),
        "epoch_from": epoch_from,
        "stored_at": now.isoformat(),
        "stored_by": _me(),
        "version": "1",
    }
    # HSETNX per field in one MULTI: the transaction runs whole, so after a race of first users
    # every field is the first transaction's. (HSETNX, not a Lua script: Redis 6.2 has it.)
    pipe = ledger.client.pipeline(transaction=True)
    for field, value in record.items():
        pipe.hsetnx(keys.calendar, field, value)
    pipe.hgetall(keys.calendar)
    reply = ledger.read(pipe.execute)
    stored_now = bool(reply[0])
    if stored_now:
        log.info("calendar_stored", epoch_from=epoch_from, **{n: show(n, v) for n, v in values.items()})
    return reply[-1], stored_now


def _encode(values: Mapping[str, Any]) -> dict[str, str]:
    """Hash fields for calendar settings: the epoch in ISO 8601, numbers exactly (``repr``)."""
    return {
        "epoch" if name == "calendar_start" else name: v.isoformat() if isinstance(v, datetime) else repr(v)
        for name, v in values.items()
    }


def _parse(ledger: Ledger, fields: dict[str, str]) -> StoredCalendar:
    try:
        stored = StoredCalendar.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SwarmError(
            f"the calendar stored in Redis ({ledger.keys.calendar}) is unreadable: "
            f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        ) from None
    return stored.model_copy(update={"epoch": utc(stored.epoch), "stored_at": utc(stored.stored_at)})


_warned: set[tuple[str, tuple[Difference, ...]]] = set()


def _warn_once(key: str, stored: StoredCalendar, found: tuple[Difference, ...]) -> None:
    if (key, found) in _warned:
        return
    _warned.add((key, found))
    log.warning(
        "calendar_settings_differ",
        using="stored",
        stored={d.env: d.stored for d in found},
        local={d.env: d.local for d in found},
        stored_at=stored.stored_at.isoformat(),
        stored_by=stored.stored_by,
        hint="every process uses the calendar stored in Redis; change it with `swarm calendar set`",
    )


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- changing it --------------------------------------------------------------------------------


@cache  # built on first use: a command that never changes the calendar does not pay for it
def _adapter(setting: str) -> TypeAdapter[Any]:
    """A validator with the setting's own type and constraints (``Settings`` declares them once)."""
    field = Settings.model_fields[setting]
    return TypeAdapter(Annotated[field.annotation, field])  # type: ignore[arg-type]  # built at run time


def validate(setting: str, value: object, option: str) -> Any:
    """``value`` for a calendar setting, checked by the setting's own rules (a bad one: BadInput)."""
    try:
        checked = _adapter(setting).validate_python(value)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        if setting == "calendar_start":
            message += " (use ISO 8601, e.g. 2026-01-05T09:00:00Z)"
        raise BadInput(f"{option} {value!r}: {message}") from None
    return utc(checked) if isinstance(checked, datetime) else checked


def changes(stored: StoredCalendar, wanted: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{setting: (stored, wanted)}`` for each wanted value that differs from the stored one."""
    return {name: (stored.value(name), v) for name, v in wanted.items() if stored.value(name) != v}


class CalendarMoved(SwarmError):
    """The stored calendar changed between reading it and changing it."""


def change(ledger: Ledger, stored: StoredCalendar, wanted: Mapping[str, Any]) -> StoredCalendar:
    """Stores ``wanted`` (calendar settings -> checked values) over ``stored``, in one transaction
    that fails with ``CalendarMoved`` if anyone changed the calendar since ``stored`` was read."""
    key = ledger.keys.calendar
    record = {**_encode(wanted), "stored_by": _me()}
    if "calendar_start" in wanted:
        record["epoch_from"] = FROM_SET

    def write(pipe: redis.client.Pipeline) -> None:
        if pipe.hget(key, "version") != str(stored.version):
            raise CalendarMoved("the calendar changed while this command ran (another `swarm calendar set`)")
        seconds, micros = pipe.time()
        at = datetime.fromtimestamp(seconds + micros / 1e6, UTC).isoformat()
        pipe.multi()
        pipe.hset(key, mapping=cast("dict[FieldT, EncodableT]", {**record, "stored_at": at}))
        pipe.hincrby(key, "version", 1)

    ledger.read(ledger.client.transaction, write, key)
    after = read(ledger)
    assert after is not None
    moved = {
        name: f"{show(name, old)} -> {show(name, new)}"
        for name, (old, new) in changes(stored, wanted).items()
    }
    log.info("calendar_changed", version=after.version, stored_by=after.stored_by, **moved)
    return after
