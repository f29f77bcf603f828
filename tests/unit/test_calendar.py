"""The calendar (swarm/calendar.py): placing instants, periods, boundaries and the shared epoch
(tests/unit/test_calendar_store.py covers how its settings are agreed).

The calendar used throughout: epoch E, iterations of 100 s, 3 per PI (a PI is 300 s), and an ART
Sync every 30 s, i.e. ceil(100 / 30) = 4 slots of 25 s per iteration.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from swarm.calendar import Cadence, Calendar, Placement
from swarm.ledger import Ledger

E = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return E + timedelta(seconds=seconds)


@pytest.fixture
def cal() -> Calendar:
    return Calendar(epoch=E, iteration_seconds=100.0, iterations_per_pi=3, sync_every_seconds=30.0)


@pytest.mark.parametrize(
    ("seconds", "placement"),
    [
        (0, Placement(pi=1, iteration=1, index=0)),
        (99.999, Placement(pi=1, iteration=1, index=0)),
        (100, Placement(pi=1, iteration=2, index=1)),
        (299.999, Placement(pi=1, iteration=3, index=2)),
        (300, Placement(pi=2, iteration=1, index=3)),
        (1050, Placement(pi=4, iteration=2, index=10)),
    ],
)
def test_place_by_arithmetic(cal: Calendar, seconds: float, placement: Placement) -> None:
    assert cal.place(at(seconds)) == placement


def test_before_the_epoch_is_the_first_iteration(cal: Calendar) -> None:
    assert cal.place(at(-5000)) == Placement(pi=1, iteration=1, index=0)
    assert cal.current_pi(at(-5000)).key == "PI1"
    assert cal.previous_iteration(at(-5000)) is None
    assert cal.previous_pi(at(-5000)) is None


def test_a_naive_instant_is_read_as_utc(cal: Calendar) -> None:
    assert cal.place(datetime(2026, 1, 5, 9, 5, 0)) == cal.place(at(300))


def test_pi_and_iteration_periods(cal: Calendar) -> None:
    pi2 = cal.pi(2)
    assert (pi2.cadence, pi2.key, pi2.start, pi2.end) == (Cadence.PI, "PI2", at(300), at(600))
    it = cal.iteration(2, 3)
    assert (it.cadence, it.key, it.start, it.end) == (Cadence.ITERATION, "PI2.I3", at(500), at(600))
    assert cal.iteration_at_index(4) == cal.iteration(2, 2)
    assert [p.key for p in cal.iterations_of(2)] == ["PI2.I1", "PI2.I2", "PI2.I3"]
    spans = cal.iterations_of(2)
    assert spans[0].start == pi2.start
    assert spans[-1].end == pi2.end
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))


def test_sync_slots(cal: Calendar) -> None:
    assert cal.syncs_per_iteration == 4
    first, last = cal.sync(1, 2, 1), cal.sync(1, 2, 4)
    assert (first.key, first.start, first.end) == ("PI1.I2.S1", at(100), at(125))
    assert (last.key, last.start, last.end) == (
        "PI1.I2.S4",
        at(175),
        at(200),
    )  # the last ends with the iteration
    assert cal.current_sync(at(124.9)).key == "PI1.I2.S1"
    assert cal.current_sync(at(125)).key == "PI1.I2.S2"
    assert cal.current_sync(at(199.9)).key == "PI1.I2.S4"
    assert cal.current_sync(at(200)).key == "PI1.I3.S1"


def test_one_sync_slot_when_syncs_are_rarer_than_iterations() -> None:
    cal = Calendar(epoch=E, iteration_seconds=100.0, iterations_per_pi=3, sync_every_seconds=86_400.0)
    assert cal.syncs_per_iteration == 1
    slot = cal.current_sync(at(150))
    assert (slot.key, slot.start, slot.end) == ("PI1.I2.S1", at(100), at(200))


def test_current_and_previous_periods_at_boundaries(cal: Calendar) -> None:
    assert cal.current_iteration(at(100)).key == "PI1.I2"
    assert cal.current_iteration(at(99.999)).key == "PI1.I1"
    assert cal.previous_iteration(at(99.999)) is None
    prev = cal.previous_iteration(at(100))
    assert prev is not None
    assert prev.key == "PI1.I1"
    prev = cal.previous_iteration(at(300))
    assert prev is not None
    assert prev.key == "PI1.I3"
    assert cal.current_pi(at(299.999)).key == "PI1"
    assert cal.previous_pi(at(299.999)) is None
    prev_pi = cal.previous_pi(at(300))
    assert prev_pi is not None
    assert prev_pi.key == "PI1"


def test_period_contains_its_start_not_its_end(cal: Calendar) -> None:
    it = cal.iteration(1, 2)
    assert it.contains(at(100))
    assert it.contains(at(199.999))
    assert not it.contains(at(200))
    assert not it.contains(at(99.999))


@pytest.mark.parametrize(
    ("call", "args"), [("pi", (0,)), ("iteration", (1, 4)), ("iteration", (1, 0)), ("sync", (1, 1, 5))]
)
def test_out_of_range_periods_are_refused(cal: Calendar, call: str, args: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by period kind
        getattr(cal, call)(*args)


@pytest.mark.parametrize("key", ["PI3", "PI3.I2", "pi3.i2.s1"])
def test_parse_names_the_period_of_a_key(cal: Calendar, key: str) -> None:
    assert cal.parse(key).key == key.upper()


def test_parse_gives_the_same_period_as_building_it(cal: Calendar) -> None:
    assert cal.parse(" pi2.i3 ") == cal.iteration(2, 3)
    assert cal.parse("PI1.I2.S4") == cal.sync(1, 2, 4)


@pytest.mark.parametrize("key", ["PI0", "PI1.I4", "PI1.I1.S5"])
def test_parse_refuses_a_period_out_of_range(cal: Calendar, key: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by period kind
        cal.parse(key)


@pytest.mark.parametrize("key", ["", "P3", "PI", "I2", "PI3.S1", "PI3.I2.S1.X1", "PIx"])
def test_parse_refuses_what_is_not_a_key(cal: Calendar, key: str) -> None:
    with pytest.raises(ValueError, match="not a period"):
        cal.parse(key)


def test_load_uses_calendar_start_when_set(fake_ledger: Ledger) -> None:
    settings = fake_ledger.settings.model_copy(update={"calendar_start": at(-7)})
    assert Calendar.load(Ledger(fake_ledger.client, settings)).epoch == at(-7)
    assert Calendar.load(fake_ledger).epoch == at(-7)  # stored: a process without it agrees


def test_the_stored_epoch_is_shared(fake_ledger: Ledger) -> None:
    """The first load stores the server's clock; every later load, from any client, reads it."""
    before = fake_ledger.server_time()
    first = Calendar.load(fake_ledger)
    other = Ledger(
        fakeredis.FakeRedis(
            server=fake_ledger.client.connection_pool.connection_kwargs["server"], decode_responses=True
        ),
        fake_ledger.settings,
    )
    assert Calendar.load(other).epoch == first.epoch
    assert Calendar.load(fake_ledger).epoch == first.epoch
    assert before <= first.epoch <= fake_ledger.server_time()


def test_fractional_lengths_place_every_boundary_in_its_own_period() -> None:
    # Boundaries are epoch + k x length in whole microseconds: placing a period's first and
    # last instant gives that period, with no float drift (1.1 s used to misplace 17 of 39).
    cal = Calendar(datetime(2026, 1, 1, tzinfo=UTC), 1.1, 3, 0.4)
    for index in range(200):
        period = cal.iteration_at_index(index)
        assert cal.place(period.start).index == index
        assert cal.place(period.end - timedelta(microseconds=1)).index == index
        assert period.iteration is not None
        for slot in range(1, cal.syncs_per_iteration + 1):
            sync = cal.sync(period.pi, period.iteration, slot)
            assert cal.current_sync(sync.start).key == sync.key


def test_earlier_periods_of_the_same_cadence_stop_at_the_epoch() -> None:
    cal = Calendar(datetime(2026, 1, 1, tzinfo=UTC), 60.0, 3, 60.0)
    assert [p.key for p in cal.earlier(cal.pi(3), 5)] == ["PI1", "PI2"]
    assert [p.key for p in cal.earlier(cal.iteration(2, 1), 2)] == ["PI1.I2", "PI1.I3"]
    assert cal.earlier(cal.iteration(1, 1), 3) == []
    assert cal.earlier(cal.sync(1, 1, 1), 3) == []
