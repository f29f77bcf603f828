"""What a well-formed swarm task call is (``workers/poison.py``): every call Celery itself writes
for a swarm task passes; every shape that once stopped a worker is refused, with its reason."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kombu.utils.json import dumps

from swarm.celery_app import CEREMONY_TASK, EXECUTE_TASK, IMPROVE_TASK, REAP_TASK, create_app
from swarm.deadletters import DeadLetterReason
from swarm.settings import Settings
from workers.poison import JSON, MAX_BODY_BYTES, Call, Refusal, inspect_message

WORK_ID = "work_1796141800336926889_5186698951f5"


def _celery_message(task: str, args: list[Any], **options: Any) -> tuple[dict[str, Any], bytes]:
    """The headers and body Celery's own ``send_task`` writes (protocol 2)."""
    app = create_app(Settings(key_prefix="t"), "memory://")
    msg = app.amqp.as_task_v2(str(uuid.uuid4()), task, args=tuple(args), kwargs={}, **options)
    return msg.headers, dumps(msg.body).encode()


@pytest.mark.parametrize(
    ("task", "args", "options"),
    [
        (EXECUTE_TASK, [WORK_ID, "feature", "qa"], {}),
        (EXECUTE_TASK, [WORK_ID, "feature", "developer"], {"countdown": 5, "time_limit": 60}),
        (CEREMONY_TASK, ["pi_planning"], {}),
        (CEREMONY_TASK, ["art_sync", "PI3.I2"], {"expires": 30}),
        (IMPROVE_TASK, [], {}),
        (IMPROVE_TASK, [True], {}),
        (REAP_TASK, [], {}),
    ],
)
def test_every_call_celery_writes_for_a_swarm_task_is_well_formed(
    task: str, args: list[Any], options: dict[str, Any]
) -> None:
    headers, body = _celery_message(task, args, **options)
    assert inspect_message(JSON, "utf-8", headers, body) == Call(task, tuple(args))


def _refusal(headers: Any, body: bytes | None, content_type: str | None = JSON) -> DeadLetterReason:
    verdict = inspect_message(content_type, "utf-8", headers, body)
    assert isinstance(verdict, Refusal), verdict
    return verdict.reason


def _good() -> tuple[dict[str, Any], bytes]:
    return _celery_message(EXECUTE_TASK, [WORK_ID, "feature", "qa"])


def _body(args: Any, kwargs: Any = None, embed: Any = None) -> bytes:
    return json.dumps([args, kwargs or {}, embed or {}]).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'"hello"', DeadLetterReason.BODY),
        (b"null", DeadLetterReason.BODY),
        (b'{"args": []}', DeadLetterReason.BODY),
        (b"[1,2,3]", DeadLetterReason.BODY),
        (b"[[], {}]", DeadLetterReason.BODY),
        (b"\xff\xfe not json", DeadLetterReason.NOT_JSON),
        (_body([WORK_ID, "feature"]), DeadLetterReason.ARGS),
        (_body([WORK_ID, "feature", "qa", "x"]), DeadLetterReason.ARGS),
        (_body([1, 2, 3]), DeadLetterReason.ARGS),
        (_body(["work_x", "feature", "qa"]), DeadLetterReason.ARGS),
        (_body([WORK_ID, "", "qa"]), DeadLetterReason.ARGS),
        (_body([WORK_ID, "feature", "wizard"]), DeadLetterReason.ARGS),
        (_body([WORK_ID, "feature", "qa"], {"x": 1}), DeadLetterReason.ARGS),
        (_body([WORK_ID, "feature", "qa"], embed={"callbacks": [{"task": "x"}]}), DeadLetterReason.EMBED),
        (_body([WORK_ID, "feature", "qa"], embed={"other": 1}), DeadLetterReason.EMBED),
        (b"[" + b" " * MAX_BODY_BYTES + b"]", DeadLetterReason.TOO_LARGE),
    ],
)
def test_a_malformed_body_is_refused_with_its_reason(body: bytes, reason: DeadLetterReason) -> None:
    headers, _ = _good()
    assert _refusal(headers, body) is reason


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"task": [EXECUTE_TASK]}, DeadLetterReason.HEADERS),
        ({"id": ["a", "b"]}, DeadLetterReason.HEADERS),
        ({"id": ""}, DeadLetterReason.HEADERS),
        ({"timelimit": "garbage"}, DeadLetterReason.HEADERS),
        ({"timelimit": [1, 2, 3]}, DeadLetterReason.HEADERS),
        ({"timelimit": [-1, None]}, DeadLetterReason.HEADERS),
        ({"timelimit": [float("nan"), None]}, DeadLetterReason.HEADERS),
        ({"timelimit": [None, float("inf")]}, DeadLetterReason.HEADERS),
        ({"argsrepr": "x" * MAX_BODY_BYTES}, DeadLetterReason.TOO_LARGE),
        ({"eta": "tomorrow"}, DeadLetterReason.HEADERS),
        ({"expires": 5}, DeadLetterReason.HEADERS),
        ({"retries": "many"}, DeadLetterReason.HEADERS),
        ({"ignore_result": "yes"}, DeadLetterReason.HEADERS),
        ({"x-anything": {"nested": 1}}, DeadLetterReason.HEADERS),
        ({"x-anything": [1]}, DeadLetterReason.HEADERS),
        ({"redelivered": "yes"}, DeadLetterReason.HEADERS),
        ({"task": "os.system"}, DeadLetterReason.UNKNOWN_TASK),
    ],
)
def test_a_malformed_header_is_refused_with_its_reason(
    override: dict[str, Any], reason: DeadLetterReason
) -> None:
    headers, body = _good()
    assert _refusal({**headers, **override}, body) is reason


def test_missing_headers_a_wrong_content_type_and_no_body_are_refused() -> None:
    headers, body = _good()
    assert _refusal({}, body) is DeadLetterReason.HEADERS
    assert _refusal(None, body) is DeadLetterReason.HEADERS
    assert _refusal({k: v for k, v in headers.items() if k != "id"}, body) is DeadLetterReason.HEADERS
    assert _refusal(headers, body, "application/x-python-serialize") is DeadLetterReason.CONTENT_TYPE
    assert _refusal(headers, body, None) is DeadLetterReason.CONTENT_TYPE
    assert _refusal(headers, None) is DeadLetterReason.BODY


def test_trace_context_and_the_headers_kombu_adds_pass() -> None:
    headers, body = _good()
    traced = {**headers, "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "x-count": 3}
    assert isinstance(inspect_message(JSON, "utf-8", traced, body), Call)
    restored = {**headers, "redelivered": True}  # the Redis transport's restore_unacked adds it
    assert isinstance(inspect_message(JSON, "utf-8", restored, body), Call)
