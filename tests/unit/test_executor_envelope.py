"""Parsing the Claude Code result envelope."""

from __future__ import annotations

import json

import pytest

from workers.executors.envelope import MalformedEnvelope, parse_envelope

OK = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "result": "done",
    "total_cost_usd": 0.0123,
    "num_turns": 3,
    "session_id": "s-1",
    "duration_ms": 4567,
    "usage": {"input_tokens": 1},
}


def test_a_success_envelope_parses_and_unknown_fields_are_ignored() -> None:
    envelope = parse_envelope(json.dumps(OK))
    assert envelope.succeeded
    assert (envelope.result, envelope.total_cost_usd, envelope.num_turns, envelope.session_id) == (
        "done",
        0.0123,
        3,
        "s-1",
    )


def test_a_warning_line_before_the_envelope_is_skipped() -> None:
    assert parse_envelope("warning: something\n" + json.dumps(OK) + "\n").result == "done"


def test_the_older_cost_usd_name_is_accepted() -> None:
    old = {k: v for k, v in OK.items() if k != "total_cost_usd"} | {"cost_usd": 0.5}
    assert parse_envelope(json.dumps(old)).total_cost_usd == 0.5


@pytest.mark.parametrize(
    ("change", "succeeded"),
    [({"is_error": True}, False), ({"subtype": "error_max_turns", "result": None}, False), ({}, True)],
)
def test_only_a_success_subtype_without_is_error_succeeded(
    change: dict[str, object], succeeded: bool
) -> None:
    body = {k: v for k, v in (OK | change).items() if v is not None}
    assert parse_envelope(json.dumps(body)).succeeded is succeeded


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty output"),
        ("not json", "Invalid JSON"),
        ("[1, 2]", "output: Input should be an object"),
        (json.dumps(OK | {"type": "assistant"}), "type"),
        (json.dumps(OK | {"total_cost_usd": -1}), "total_cost_usd"),
        (json.dumps(OK | {"num_turns": "many"}), "num_turns"),
        (json.dumps({k: v for k, v in OK.items() if k != "session_id"}), "session_id: Field required"),
        (json.dumps(OK).replace("0.0123", "NaN"), "total_cost_usd"),
    ],
)
def test_anything_else_is_malformed(text: str, message: str) -> None:
    with pytest.raises(MalformedEnvelope, match=message):
        parse_envelope(text)
