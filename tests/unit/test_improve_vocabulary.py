"""The improvement cycle's action vocabulary, and how an advisor's answer is parsed into it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ceremonies.improve.advisor import parse_answer
from ceremonies.improve.vocabulary import (
    ACTION,
    ACTIONS,
    FileWorkItem,
    Metric,
    Reprioritise,
    ScaleRole,
    SetLease,
    SetRateLimit,
    action_role,
)
from swarm.models import Priority, Role

GROW = {"kind": "scale_role", "role": "qa", "delta": 2, "metric": "throughput", "better": "higher"}
WID = "work_0000000000000000001_abcdefabcdef"


def test_every_kind_parses_into_its_model() -> None:
    fast = {"metric": "throughput", "better": "higher"}
    actions = ACTIONS.validate_python(
        [
            GROW,
            {"kind": "set_rate_limit", "role": "qa", "rate": "10/m", **fast},
            {"kind": "set_rate_limit", "role": "qa", "rate": None, **fast},
            {"kind": "set_lease", "role": "developer", "seconds": 60, "metric": "expired_leases",
             "better": "lower"},
            {"kind": "reprioritise", "work_id": WID, "priority": "high", "metric": "oldest_wait_s",
             "better": "lower"},
            {"kind": "file_work_item", "type": "improvement", "description": "look", "role": "qa",
             "team": "core", "priority": "high", "points": 2, "metric": "dead_items", "better": "lower"},
        ]
    )  # fmt: skip
    assert [type(a) for a in actions] == [
        ScaleRole,
        SetRateLimit,
        SetRateLimit,
        SetLease,
        Reprioritise,
        FileWorkItem,
    ]
    assert isinstance(actions[0], ScaleRole)
    assert actions[0].delta == 2
    assert actions[0].role is Role.QA
    assert action_role(actions[0]) is Role.QA
    assert action_role(actions[4]) is None, "an item's role is read from the ledger when it is deployed"
    assert isinstance(actions[4], Reprioritise)
    assert actions[4].priority is Priority.HIGH


def test_a_record_round_trips_through_json() -> None:
    action = ACTION.validate_python(GROW)
    assert ACTION.validate_json(ACTION.dump_json(action)) == action


@pytest.mark.parametrize(
    "bad",
    [
        {**GROW, "kind": "delete_queue"},  # not in the vocabulary
        {**GROW, "delta": 0},  # a no-op
        {**GROW, "delta": 1000},  # past the step bound
        {**GROW, "better": "lower"},  # throughput is better higher: it would be judged backwards
        {**GROW, "role": "ceo"},
        {**GROW, "extra": 1},  # unknown fields are refused, not ignored
        {"kind": "set_rate_limit", "role": "qa", "rate": "fast", "metric": "throughput", "better": "higher"},
        {"kind": "set_lease", "role": "qa", "seconds": -1, "metric": "expired_leases", "better": "lower"},
        {"kind": "reprioritise", "work_id": "x; DROP", "priority": "high", "metric": "oldest_wait_s",
         "better": "lower"},
    ],
)  # fmt: skip
def test_out_of_vocabulary_or_impossible_actions_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ACTION.validate_python(bad)


def test_metric_directions() -> None:
    assert Metric.THROUGHPUT.better.value == "higher"
    assert Metric.SUCCESS_RATE.better.value == "higher"
    assert Metric.OLDEST_WAIT_S.better.value == "lower"
    assert Metric.EXPIRED_LEASES.cumulative
    assert not Metric.THROUGHPUT.cumulative


def test_an_advisor_answer_may_be_a_list_an_actions_object_or_one_code_fence() -> None:
    import json

    text = json.dumps([GROW])
    assert parse_answer(text) == parse_answer(json.dumps({"actions": [GROW]}))
    assert parse_answer(f"```json\n{text}\n```") == parse_answer(text)
    assert parse_answer("[]") == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Sure! Scale qa up.", "invalid JSON"),
        ('{"kind": "scale_role"}', "not a list of actions"),
        ('[{"kind": "delete_queue"}]', "out-of-vocabulary action(s): delete_queue"),
        ('["scale qa"]', "out-of-vocabulary"),
        ('[{"kind": "scale_role", "role": "qa", "delta": 0, "metric": "throughput", "better": "higher"}]',
         "invalid action(s)"),
    ],
)  # fmt: skip
def test_an_advisor_answer_outside_the_vocabulary_is_refused_with_a_reason(answer: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_answer(answer)
