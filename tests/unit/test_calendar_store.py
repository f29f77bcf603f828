"""The calendar's settings agreed through Redis (swarm/calendar_store.py): the first user stores
them with the epoch, every later process uses the stored ones and says once when its own differ,
and only an explicit change moves them."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest

from swarm import calendar_store, logs
from swarm.calendar import Calendar
from swarm.calendar_store import (
    FROM_EARLIER_VERSION,
    FROM_FIRST_USE,
    FROM_SET,
    FROM_START,
    CalendarMoved,
    agree,
    change,
    changes,
    read,
    validate,
)
from swarm.errors import BadInput, SwarmError
from swarm.ledger import Ledger
from swarm.settings import Settings

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def process(ledger: Ledger, **settings: Any) -> Ledger:
    """Another process on the same Redis and namespace, with these settings of its own."""
    server = ledger.client.connection_pool.connection_kwargs["server"]
    own = Settings(key_prefix=ledger.settings.key_prefix, redis_url=None, **settings)
    return Ledger(fakeredis.FakeRedis(server=server, decode_responses=True), own)


@pytest.fixture
def first(fake_ledger: Ledger) -> Ledger:
    """The calendar's first user: iterations of 100 s, 3 per PI, an ART Sync every 30 s."""
    return process(fake_ledger, iteration_length="100s", pi_iterations=3, art_sync_every="30s")


def warnings_in(stream_lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in stream_lines if line["event"] == "calendar_settings_differ"]


def test_the_first_user_stores_its_settings_with_the_epoch(first: Ledger) -> None:
    before = first.server_time()
    agreement = agree(first)
    stored = agreement.stored
    assert agreement.stored_now
    assert (stored.iteration_length, stored.pi_iterations, stored.art_sync_every) == (100.0, 3, 30.0)
    assert before <= stored.epoch <= first.server_time()
    assert stored.epoch == stored.stored_at
    assert (stored.epoch_from, stored.version) == (FROM_FIRST_USE, 1)
    assert stored.stored_by == f"{socket.gethostname()}:{os.getpid()}"
    assert agreement.differences == ()
    assert read(first) == stored


def test_a_later_process_uses_the_stored_settings_whatever_its_own(first: Ledger) -> None:
    stored = Calendar.load(first)
    other = process(first, iteration_length="2w", pi_iterations=5, art_sync_every="1d", calendar_start=START)
    agreement = agree(other)
    assert not agreement.stored_now
    assert Calendar.load(other) == stored
    assert [(d.env, d.stored, d.local) for d in agreement.differences] == [
        ("SWARM_CALENDAR_START", stored.epoch.isoformat(), START.isoformat()),
        ("SWARM_ITERATION_LENGTH", "100s", "2w"),
        ("SWARM_PI_ITERATIONS", "3", "5"),
        ("SWARM_ART_SYNC_EVERY", "30s", "1d"),
    ]


def test_a_process_on_defaults_follows_the_stored_calendar_without_a_difference(first: Ledger) -> None:
    stored = Calendar.load(first)
    other = process(first)  # the two-week default, never set: nothing to warn about
    agreement = agree(other)
    assert Calendar.of(agreement.stored) == stored
    assert agreement.differences == ()


def test_a_difference_is_logged_once_per_process_naming_both_values(first: Ledger) -> None:
    stream = io.StringIO()
    logs.configure_logging()
    handler = logs.install_handler(logging.INFO, fmt="json", stream=lambda: stream)
    try:
        agree(first)
        other = process(first, iteration_length="20s", pi_iterations=3)
        for _ in range(3):
            agree(other)
        Calendar.load(other)
        agree(process(first, iteration_length="100s"))  # as stored: nothing to say
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (warning,) = warnings_in(lines)
    assert warning["level"] == "warning"
    assert warning["using"] == "stored"
    assert warning["stored"] == {"SWARM_ITERATION_LENGTH": "100s"}
    assert warning["local"] == {"SWARM_ITERATION_LENGTH": "20s"}
    assert warning["stored_by"] == f"{socket.gethostname()}:{os.getpid()}"


def test_calendar_start_is_stored_as_the_epoch(fake_ledger: Ledger) -> None:
    ledger = process(fake_ledger, calendar_start=START.replace(tzinfo=None))  # naive: read as UTC
    stored = agree(ledger).stored
    assert (stored.epoch, stored.epoch_from) == (START, FROM_START)
    assert Calendar.load(process(fake_ledger)).epoch == START


def test_an_epoch_an_earlier_version_stored_is_kept(fake_ledger: Ledger) -> None:
    """Upgrading keeps the periods in place: the epoch the calendar used to store alone is adopted."""
    fake_ledger.client.set(fake_ledger.keys.calendar_epoch, START.isoformat())
    stored = agree(fake_ledger).stored
    assert (stored.epoch, stored.epoch_from) == (START, FROM_EARLIER_VERSION)


def test_racing_first_users_both_get_the_first_transactions_calendar(first: Ledger) -> None:
    """Two first users that both found no calendar: the second's HSETNXs write nothing."""
    won = agree(first).stored
    late = process(first, iteration_length="1h", pi_iterations=7)
    fields, stored_now = calendar_store._store_first(late)
    assert not stored_now
    assert read(late) == won
    assert fields == first.client.hgetall(first.keys.calendar)


def test_change_stores_new_settings_for_every_process_and_counts_versions(first: Ledger) -> None:
    before = agree(first).stored
    wanted = {"iteration_length": 3600.0, "calendar_start": START}
    after = change(first, before, wanted)
    assert (after.iteration_length, after.epoch, after.pi_iterations) == (3600.0, START, 3)
    assert (after.version, after.epoch_from) == (2, FROM_SET)
    assert after.stored_at >= before.stored_at
    assert Calendar.load(process(first)) == Calendar(START, 3600.0, 3, 30.0)
    assert changes(after, wanted) == {}


def test_change_refuses_when_the_calendar_moved_meanwhile(first: Ledger) -> None:
    seen = agree(first).stored
    change(first, seen, {"pi_iterations": 4})
    with pytest.raises(CalendarMoved, match="changed while this command ran"):
        change(first, seen, {"pi_iterations": 9})  # based on version 1: refused
    current = read(first)
    assert current is not None
    assert (current.pi_iterations, current.version) == (4, 2)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("iteration_length", "soon", "not a duration"),
        ("iteration_length", "0s", "must be positive"),
        ("art_sync_every", "-1s", "not a duration"),
        ("pi_iterations", "0", "greater than or equal to 1"),
        ("pi_iterations", "101", "less than or equal to 100"),
        ("pi_iterations", "three", "valid integer"),
        ("calendar_start", "yesterday", "ISO 8601"),
    ],
)
def test_bad_values_are_refused_by_the_settings_own_rules(setting: str, value: str, message: str) -> None:
    with pytest.raises(BadInput, match=message) as refused:
        validate(setting, value, "--option")
    assert str(refused.value).startswith(f"--option {value!r}: ")


def test_values_are_read_as_the_settings_read_them() -> None:
    assert validate("iteration_length", "3d", "--iteration-length") == 3 * 86_400.0
    assert validate("pi_iterations", "4", "--pi-iterations") == 4
    assert validate("calendar_start", "2026-01-05T10:00:00+01:00", "--start") == START


def test_an_unreadable_stored_calendar_is_a_clear_error(first: Ledger) -> None:
    agree(first)
    first.client.hset(first.keys.calendar, "pi_iterations", "many")
    with pytest.raises(SwarmError, match=r"calendar stored in Redis \(\{.*\}:calendar\) is unreadable"):
        Calendar.load(first)


def test_what_derives_from_the_calendar_follows_the_agreed_one(first: Ledger) -> None:
    """Beat's check interval and ART Sync's blocked-after default to iteration / 20 and / 10."""
    cal = Calendar.load(first)
    local = process(first).settings  # two-week iterations by default
    agreed = cal.applied_to(local)
    assert (agreed.calendar_tick_seconds, agreed.blocked_after_seconds) == (5.0, 10.0)
    assert local.calendar_tick_seconds == 60.0
    assert agreed.calendar_start == cal.epoch
