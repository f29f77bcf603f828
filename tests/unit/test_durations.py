"""Durations as people write them (swarm/durations.py): parsing, refusal and formatting."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from swarm.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("20s", 20.0),
        ("5m", 300.0),
        ("4h", 14_400.0),
        ("2d", 172_800.0),
        ("2w", 1_209_600.0),
        ("1.5h", 5400.0),
        (" 30 ", 30.0),  # no unit: seconds; spaces around are fine
        ("10 m", 600.0),
        (7, 7.0),
        (0.25, 0.25),
    ],
)
def test_parse_accepts_a_number_with_one_unit(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["", "abc", "5x", "5 m s", "-5s", "1e3s", "0", "0s", 0, -1.0, True, None, [5]]
)
def test_parse_refuses_anything_else(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_parse_refuses_infinity() -> None:
    with pytest.raises(ValueError, match="positive"):
        parse_duration(float("inf"))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1_209_600.0, "2w"),
        (86_400.0 * 1.5, "1.5d"),
        (3600.0, "1h"),
        (90.0, "1.5m"),
        (100.0, "1.67m"),  # 1.666… minutes, rounded to two places
        (20.0, "20s"),
        (1.234, "1.23s"),
        (0.5, "500ms"),
    ],
)
def test_format_uses_the_largest_unit_that_fits(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_then_parse_round_trips_whole_units() -> None:
    for seconds in (0.5, 20.0, 300.0, 14_400.0, 172_800.0, 1_209_600.0):
        assert parse_duration(format_duration(seconds)) == seconds


class _Model(BaseModel):
    every: Duration


def test_a_duration_field_takes_text_or_seconds() -> None:
    assert _Model(every="2w").every == 1_209_600.0
    assert _Model(every=12).every == 12.0
    with pytest.raises(ValidationError):
        _Model(every="soon")
