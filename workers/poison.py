"""Is a broker message a well-formed call of a swarm task? The rules, as one pure function.

Celery takes whatever a queue holds and trusts its shape: a body that is not ``[args, kwargs,
embed]``, a ``task`` or ``id`` header that is a list, or a garbage ``timelimit`` raise inside its
``on_task_received`` and stop the worker (the message is restored and stops the next one too).
``workers/guard.py`` asks ``inspect_message`` about every message before Celery sees it and
dead-letters the ones it refuses.

A well-formed call is a protocol-2 JSON message (``application/json``, UTF-8, a body and headers
of at most ``MAX_BODY_BYTES`` each) whose headers have the types Celery's protocol 2 gives them, whose body is
``[args, kwargs, embed]`` (a list, a dict, a dict with no callbacks, errbacks, chain or chord:
swarm links no tasks), and whose arguments are the task's own:

- ``swarm.execute``: three strings, a work id (``work_<digits>_<hex>``), a type and a role;
- ``swarm.ceremony``: a name and, optionally, a period key (strings);
- ``swarm.improve``: optionally ``dry_run`` (a bool);
- ``swarm.reap``: nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from swarm.celery_app import CEREMONY_TASK, EXECUTE_TASK, IMPROVE_TASK, REAP_TASK
from swarm.deadletters import DeadLetterReason
from swarm.models import Role

JSON = "application/json"
MAX_BODY_BYTES = 64 * 1024  # a swarm task call is a few hundred bytes
WORK_ID = re.compile(r"work_[0-9]+_[0-9a-f]+")
EMBED_KEYS = frozenset({"callbacks", "errbacks", "chain", "chord"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message is no well-formed swarm task call."""

    reason: DeadLetterReason
    detail: str


@dataclass(frozen=True, slots=True)
class Call:
    """A well-formed call: the task's name and its positional arguments."""

    task: str
    args: tuple[Any, ...]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_timestamp(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timelimit(value: object) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(v is None or (_is_number(v) and math.isfinite(v) and v >= 0) for v in value)
    )


def _is_scalar(value: object) -> bool:
    """A JSON scalar: a string, a bool, None, or a finite number."""
    return (
        value is None
        or isinstance(value, str | bool)
        or (_is_number(value) and math.isfinite(float(str(value))))
    )


# Protocol 2's headers and their types (celery/app/amqp.py: as_task_v2), and the ones kombu adds
# (``redelivered`` when the Redis transport restores a message, ``compression``). Any other header
# must be a JSON scalar (trace context: traceparent, tracestate, baggage).
HEADER_TYPES: Mapping[str, Callable[[object], bool]] = {
    "lang": _optional(_is_str),
    "task": _is_str,
    "id": lambda v: isinstance(v, str) and bool(v),
    "shadow": _optional(_is_str),
    "eta": _optional(_is_timestamp),
    "expires": _optional(_is_timestamp),
    "group": _optional(_is_str),
    "group_index": _optional(_is_int),
    "retries": _optional(lambda v: _is_int(v) and int(str(v)) >= 0),
    "timelimit": _optional(_is_timelimit),
    "root_id": _optional(_is_str),
    "parent_id": _optional(_is_str),
    "argsrepr": _optional(_is_str),
    "kwargsrepr": _optional(_is_str),
    "origin": _optional(_is_str),
    "ignore_result": _optional(lambda v: isinstance(v, bool)),
    "replaced_task_nesting": _optional(_is_int),
    "stamped_headers": _optional(lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v)),
    "stamps": _optional(lambda v: isinstance(v, dict)),
    "redelivered": _optional(lambda v: isinstance(v, bool)),
    "compression": _optional(_is_str),
}
REQUIRED_HEADERS = ("task", "id")


def _execute_args(args: list[Any], kwargs: dict[str, Any]) -> str | None:
    if kwargs or len(args) != 3 or not all(isinstance(a, str) for a in args):
        return "swarm.execute takes (work_id, type, role), three strings"
    work_id, work_type, role = args
    if not WORK_ID.fullmatch(work_id):
        return f"not a work id: {work_id[:80]!r}"
    if not work_type:
        return "an empty type"
    if role not in {r.value for r in Role}:
        return f"not a role: {role[:80]!r}"
    return None


def _ceremony_args(args: list[Any], kwargs: dict[str, Any]) -> str | None:
    if set(kwargs) - {"period"} or not 1 <= len(args) + len(kwargs) <= 2:
        return "swarm.ceremony takes (name, period=None)"
    if not isinstance(args[0] if args else None, str) or not all(
        v is None or isinstance(v, str) for v in [*args[1:], *kwargs.values()]
    ):
        return "swarm.ceremony takes a name and a period key, strings"
    return None


def _improve_args(args: list[Any], kwargs: dict[str, Any]) -> str | None:
    values = [*args, *kwargs.values()]
    if set(kwargs) - {"dry_run"} or len(values) > 1 or not all(isinstance(v, bool) for v in values):
        return "swarm.improve takes (dry_run=False), a bool"
    return None


def _reap_args(args: list[Any], kwargs: dict[str, Any]) -> str | None:
    return "swarm.reap takes no arguments" if args or kwargs else None


TASK_ARGS: Mapping[str, Callable[[list[Any], dict[str, Any]], str | None]] = {
    EXECUTE_TASK: _execute_args,
    CEREMONY_TASK: _ceremony_args,
    IMPROVE_TASK: _improve_args,
    REAP_TASK: _reap_args,
}


def _check_headers(headers: object) -> Refusal | str:
    """The task name, or why the headers are wrong."""
    if not isinstance(headers, dict):
        return Refusal(DeadLetterReason.HEADERS, f"headers are a {type(headers).__name__}, not a dict")
    for name in REQUIRED_HEADERS:
        if name not in headers:
            return Refusal(DeadLetterReason.HEADERS, f"no {name!r} header (protocol 2)")
    for name, value in headers.items():
        check = HEADER_TYPES.get(name, _is_scalar)
        if not isinstance(name, str) or not check(value):
            return Refusal(DeadLetterReason.HEADERS, f"header {name!r} is {_short(value)}")
    task = headers["task"]
    if task not in TASK_ARGS:
        return Refusal(DeadLetterReason.UNKNOWN_TASK, f"no swarm task is named {task[:80]!r}")
    return str(task)


def _check_body(task: str, body: bytes | str) -> Refusal | Call:
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return Refusal(DeadLetterReason.NOT_JSON, f"the body does not parse as JSON: {exc}")
    if not (isinstance(decoded, list) and len(decoded) == 3):
        return Refusal(DeadLetterReason.BODY, f"the body is {_short(decoded)}, not [args, kwargs, embed]")
    args, kwargs, embed = decoded
    if not (isinstance(args, list) and isinstance(kwargs, dict) and isinstance(embed, dict | None)):
        return Refusal(DeadLetterReason.BODY, "the body is not [list, dict, dict]")
    linked = {k: v for k, v in (embed or {}).items() if k not in EMBED_KEYS or v is not None}
    if linked:
        return Refusal(DeadLetterReason.EMBED, f"the call links other work: {sorted(linked)}")
    wrong = TASK_ARGS[task](args, kwargs)
    if wrong is not None:
        return Refusal(DeadLetterReason.ARGS, wrong)
    return Call(task, tuple(args))


def inspect_message(
    content_type: str | None, content_encoding: str | None, headers: object, body: bytes | str | None
) -> Refusal | Call:
    """The call a message makes, or why it is no well-formed swarm task call."""
    if content_type != JSON or (content_encoding or "utf-8").lower() not in ("utf-8", "utf8"):
        return Refusal(DeadLetterReason.CONTENT_TYPE, f"content {content_type!r} in {content_encoding!r}")
    if body is None:
        return Refusal(DeadLetterReason.BODY, "no body")
    size = len(body.encode() if isinstance(body, str) else body)
    if size > MAX_BODY_BYTES:
        return Refusal(DeadLetterReason.TOO_LARGE, f"a {size}-byte body (at most {MAX_BODY_BYTES})")
    header_size = len(json.dumps(headers, default=repr))
    if header_size > MAX_BODY_BYTES:
        return Refusal(
            DeadLetterReason.TOO_LARGE, f"{header_size} bytes of headers (at most {MAX_BODY_BYTES})"
        )
    task = _check_headers(headers)
    if isinstance(task, Refusal):
        return task
    return _check_body(task, body)


def _short(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
