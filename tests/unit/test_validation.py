"""Input checks (SPEC §5 "Input and errors", §13 "Bad input"): each refusal is a one-line BadInput."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from swarm import validation as v
from swarm.errors import BadInput, SwarmError
from swarm.models import Priority, Role, Status


def test_bad_input_is_a_swarm_error_and_a_value_error_with_exit_code_2() -> None:
    assert issubclass(BadInput, SwarmError)
    assert issubclass(BadInput, ValueError)
    assert BadInput.exit_code == 2


# -- type --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["build", "a", "feature.sso", "ns:task-1", "X_9", "a" * 64])
def test_work_type_accepts_short_identifiers(value: str) -> None:
    assert v.work_type(value) == value


@pytest.mark.parametrize("value", ["", "   ", "\t\n", None, 3])
def test_work_type_refuses_empty_type(value: Any) -> None:
    with pytest.raises(BadInput, match="type must not be empty"):
        v.work_type(value)


@pytest.mark.parametrize(
    "value",
    [
        "has space",
        "-leading-dash",
        "a" * 65,
        "semi;colon",
        'quote"d',
        "émoji🚀",
        pytest.param("build\n", id="trailing-newline"),
    ],
)
def test_work_type_refuses_text_outside_its_alphabet(value: str) -> None:
    with pytest.raises(BadInput, match="must be 1-64 letters"):
        v.work_type(value)


# -- description -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["", 'say "hi"', "line1\nline2\r\n", "nul\x00inside", "emoji 🚀 and é", "\\ back \\"]
)
def test_description_accepts_any_text_unchanged(value: str) -> None:
    assert v.description(value, 1024) == value


def test_description_cap_counts_utf8_bytes_not_characters() -> None:
    assert v.description("é" * 8, 16) == "é" * 8  # 16 bytes: exactly at the cap
    with pytest.raises(BadInput, match="description is 18 bytes; the cap is 16"):
        v.description("é" * 9, 16)


def test_description_over_the_cap_is_refused_naming_the_setting() -> None:
    with pytest.raises(BadInput, match="SWARM_DESCRIPTION_MAX_BYTES"):
        v.description("x" * 11, 10)


def test_description_with_a_lone_surrogate_is_refused_as_invalid_utf8() -> None:
    with pytest.raises(BadInput, match="description is not valid UTF-8"):
        v.description("bad \ud800 text", 1024)


@pytest.mark.parametrize("value", [None, b"bytes", 42])
def test_description_must_be_text(value: Any) -> None:
    with pytest.raises(BadInput, match="description must be text"):
        v.description(value, 1024)


# -- JSON payloads -----------------------------------------------------------------------------


def test_json_object_serialises_compactly_and_keeps_unicode() -> None:
    assert v.json_object({"a": [1, 2], "é": "🚀"}, "payload", 1024) == '{"a":[1,2],"é":"🚀"}'


@pytest.mark.parametrize("value", [[1, 2], "text", 3, None, (1,)])
def test_json_object_refuses_anything_but_an_object(value: Any) -> None:
    with pytest.raises(BadInput, match="payload must be a JSON object"):
        v.json_object(value, "payload", 1024)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_json_object_refuses_nan_and_infinity(number: float) -> None:
    with pytest.raises(BadInput, match="payload is not JSON-serialisable"):
        v.json_object({"x": number}, "payload", 1024)


@pytest.mark.parametrize("value", [{"s": {1, 2}}, {"b": b"raw"}, {"o": object()}])
def test_json_object_refuses_values_json_cannot_carry(value: dict[str, Any]) -> None:
    with pytest.raises(BadInput, match="payload is not JSON-serialisable"):
        v.json_object(value, "payload", 1024)


def test_json_object_over_the_cap_is_refused() -> None:
    with pytest.raises(BadInput, match="payload is 20 bytes; the cap is 10"):
        v.json_object({"k": "x" * 12}, "payload", 10)


def test_json_object_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(BadInput, match="payload is not valid UTF-8"):
        v.json_object({"k": "\udc80"}, "payload", 1024)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"x": NaN}', "{bad", ""])
def test_parse_json_refuses_non_json_text(text: str) -> None:
    with pytest.raises(BadInput, match="payload is not valid JSON"):
        v.parse_json(text, "payload")


def test_parse_json_object_accepts_an_object_and_refuses_an_array() -> None:
    assert v.parse_json_object('{"a": 1}', "payload") == {"a": 1}
    with pytest.raises(BadInput, match="payload must be a JSON object, got list"):
        v.parse_json_object("[1]", "payload")


# -- enums -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["critical", "high", "medium", "low", Priority.HIGH])
def test_priority_accepts_the_four_levels(value: Any) -> None:
    assert v.enum_value(Priority, value, "priority") == Priority(value)


@pytest.mark.parametrize("value", ["urgent", "HIGH", "", " high", None, 1])
def test_unknown_priority_is_refused_listing_the_choices(value: Any) -> None:
    with pytest.raises(BadInput, match=r"unknown priority .*; expected critical\|high\|medium\|low"):
        v.enum_value(Priority, value, "priority")


def test_unknown_role_and_status_are_refused_listing_the_choices() -> None:
    with pytest.raises(BadInput, match=r"expected pm\|architect\|developer\|qa\|devops"):
        v.enum_value(Role, "tester", "role")
    with pytest.raises(BadInput, match=r"unknown status 'done'"):
        v.enum_value(Status, "done", "status")


# -- team, points, counts ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["core", "team-a", "t.1_x"])
def test_team_accepts_short_names(value: str) -> None:
    assert v.team(value) == value


@pytest.mark.parametrize(
    "value", ["", "has space", "-x", "a" * 65, None, pytest.param("core\n", id="trailing-newline")]
)
def test_team_refuses_names_outside_its_alphabet(value: Any) -> None:
    with pytest.raises(BadInput, match=r"team .* must be 1-64 letters"):
        v.team(value)


@pytest.mark.parametrize("value", [0, 1, 13, v.MAX_POINTS])
def test_points_accepts_whole_numbers_from_zero(value: int) -> None:
    assert v.points(value) == value


@pytest.mark.parametrize("value", [True, 1.5, "3", None, 2.0])
def test_points_must_be_a_whole_number(value: Any) -> None:
    with pytest.raises(BadInput, match="points must be a whole number"):
        v.points(value)


@pytest.mark.parametrize("value", [-1, v.MAX_POINTS + 1])
def test_points_out_of_range_are_refused(value: int) -> None:
    with pytest.raises(BadInput, match="points must be from 0 to"):
        v.points(value)


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "2", None])
def test_positive_int_refuses_zero_negatives_and_non_integers(value: Any) -> None:
    with pytest.raises(BadInput, match="max_attempts must be a whole number of at least 1"):
        v.positive_int(value, "max_attempts")


def test_positive_int_accepts_one_and_more() -> None:
    assert v.positive_int(1, "x") == 1
    assert v.positive_int(10**6, "x") == 10**6


# -- progress ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (100, 100), (42, 42), ("42", 42), (" 7 ", 7), ("+5", 5), ("-0", 0), (50.0, 50), ("100", 100)],
)
def test_progress_accepts_whole_numbers_from_0_to_100(value: Any, expected: int) -> None:
    assert v.percent(value) == expected


@pytest.mark.parametrize(
    "value", ["abc", "NaN", "nan", "inf", "-inf", "50.5", "1e2", "", " ", "5%", "0x10", "1_0"]
)
def test_progress_text_that_is_not_a_whole_number_is_refused(value: str) -> None:
    with pytest.raises(BadInput, match="progress must be a whole number from 0 to 100"):
        v.percent(value)


@pytest.mark.parametrize("value", [-1, 101, "-1", "101", 1000, -100.0])
def test_progress_outside_0_to_100_is_refused(value: Any) -> None:
    with pytest.raises(BadInput, match="progress must be from 0 to 100"):
        v.percent(value)


@pytest.mark.parametrize(
    "value", [True, False, None, math.nan, math.inf, -math.inf, 50.5, Decimal(50), [50], b"50"]
)
def test_progress_refuses_booleans_nan_fractions_and_other_types(value: Any) -> None:
    with pytest.raises(BadInput, match="progress must be a whole number from 0 to 100"):
        v.percent(value)


# -- notes -------------------------------------------------------------------------------------


def test_note_accepts_text_up_to_its_cap() -> None:
    text = "n" * v.MAX_NOTE_BYTES
    assert v.note(text) == text


def test_note_over_its_cap_is_refused() -> None:
    with pytest.raises(BadInput, match=f"note is {v.MAX_NOTE_BYTES + 1} bytes"):
        v.note("n" * (v.MAX_NOTE_BYTES + 1))


def test_note_must_be_valid_text() -> None:
    with pytest.raises(BadInput, match="note must be text"):
        v.note(None)
    with pytest.raises(BadInput, match="note is not valid UTF-8"):
        v.note("\ud83d alone")


# -- ids, fences, traces, leases ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["agent_1", "dev-1@host/worker:3", "A", "a" * 128])
def test_agent_id_accepts_names_hosts_and_paths(value: str) -> None:
    assert v.agent_id(value) == value


@pytest.mark.parametrize("value", ["", None])
def test_missing_agent_id_says_how_to_give_one(value: Any) -> None:
    with pytest.raises(BadInput, match="pass --agent or set SWARM_AGENT_ID"):
        v.agent_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "has space",
        " leading",
        "new\nline",
        "tab\there",
        "-dash",
        "a" * 129,
        "quote'd",
        pytest.param("agent1\n", id="trailing-newline"),
    ],
)
def test_agent_id_with_spaces_newlines_or_odd_characters_is_refused(value: str) -> None:
    with pytest.raises(BadInput, match=r"agent id .* must be 1-128 letters"):
        v.agent_id(value)


def test_work_id_accepts_generated_ids() -> None:
    assert v.work_id("work_1732390000123456789_3f9a2c1b7d0e") == "work_1732390000123456789_3f9a2c1b7d0e"


@pytest.mark.parametrize(
    "value", ["", "work id", None, 7, "a" * 129, pytest.param("work_1\n", id="trailing-newline")]
)
def test_work_id_refuses_non_ids_with_an_example(value: Any) -> None:
    with pytest.raises(BadInput, match=r"is not a work id \(like work_"):
        v.work_id(value)


def test_fence_is_optional_and_positive() -> None:
    assert v.fence(None) is None
    assert v.fence(7) == 7


@pytest.mark.parametrize("value", [0, -3, True, "5", 1.0])
def test_fence_refuses_anything_but_a_positive_integer(value: Any) -> None:
    with pytest.raises(BadInput, match="fence must be a positive whole number"):
        v.fence(value)


def test_trace_id_is_32_lowercase_hex_digits() -> None:
    assert v.trace_id("0123456789abcdef" * 2) == "0123456789abcdef" * 2


@pytest.mark.parametrize(
    "value",
    [
        "0123456789ABCDEF" * 2,
        "0" * 31,
        "0" * 33,
        "g" * 32,
        None,
        pytest.param("0" * 32 + "\n", id="trailing-newline"),
    ],
)
def test_trace_id_refuses_other_text(value: Any) -> None:
    with pytest.raises(BadInput, match="must be 32 lowercase hex digits"):
        v.trace_id(value)


@pytest.mark.parametrize(("seconds", "ms"), [(30, 30_000), (0.001, 1), (1.5, 1500), (86_400, 86_400_000)])
def test_lease_seconds_become_milliseconds(seconds: float, ms: int) -> None:
    assert v.lease_ms(seconds) == ms


@pytest.mark.parametrize("seconds", [0, -1, 0.0001, 86_401, math.nan, math.inf])
def test_lease_out_of_range_is_refused(seconds: float) -> None:
    with pytest.raises(BadInput, match=r"lease must be from 0\.001 to 86400 seconds"):
        v.lease_ms(seconds)


@pytest.mark.parametrize("seconds", ["30", True, None])
def test_lease_must_be_a_number(seconds: Any) -> None:
    with pytest.raises(BadInput, match="lease must be a number of seconds"):
        v.lease_ms(seconds)


def test_refusal_messages_are_one_line_and_shorten_long_values() -> None:
    with pytest.raises(BadInput) as caught:
        v.agent_id("bad id " + "x" * 1000 + "\nsecond line")
    message = str(caught.value)
    assert "\n" not in message
    assert len(message) < 200
