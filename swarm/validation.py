"""Input checks that run before anything is written; each failure is a one-line ``BadInput``."""

from __future__ import annotations

import json
import math
import re
from enum import StrEnum
from typing import Any, TypeVar

from swarm.errors import BadInput

MAX_POINTS = 1_000_000  # a sanity bound on a single item's story points
MAX_NOTE_BYTES = 64 * 1024  # progress notes are short status lines, not documents
MAX_SECONDS = 366 * 86_400  # a sanity bound on a timeout: a year

_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_TEAM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_AGENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}")
_WORK_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_TRACE_RE = re.compile(r"[0-9a-f]{32}")

E = TypeVar("E", bound=StrEnum)


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _utf8_size(value: str, what: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise BadInput(f"{what} is not valid UTF-8 text ({exc.reason})") from None


def work_type(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput("type must not be empty")
    if not _TYPE_RE.fullmatch(value):
        raise BadInput(f"type {_show(value)} must be 1-64 letters, digits or _ . : - (starting alphanumeric)")
    return value


def description(value: object, max_bytes: int) -> str:
    if not isinstance(value, str):
        raise BadInput(f"description must be text, got {type(value).__name__}")
    size = _utf8_size(value, "description")
    if size > max_bytes:
        raise BadInput(f"description is {size} bytes; the cap is {max_bytes} (SWARM_DESCRIPTION_MAX_BYTES)")
    return value


def json_text(value: object, what: str, max_bytes: int) -> str:
    """Serialises a JSON value strictly (no NaN, no non-JSON types) under a size cap."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{what} is not JSON-serialisable: {exc}") from None
    size = _utf8_size(text, what)
    if size > max_bytes:
        raise BadInput(f"{what} is {size} bytes; the cap is {max_bytes}")
    return text


def json_object(value: object, what: str, max_bytes: int) -> str:
    if not isinstance(value, dict):
        raise BadInput(f"{what} must be a JSON object, got {type(value).__name__}")
    return json_text(value, what, max_bytes)


def parse_json(text: str, what: str) -> Any:
    """Parses CLI text as strict JSON (NaN and Infinity refused)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise BadInput(f"{what} is not valid JSON: {exc}") from None


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """Parses CLI text such as ``--payload '{"a": 1}'`` into a JSON object."""
    value = parse_json(text, what)
    if not isinstance(value, dict):
        raise BadInput(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def enum_value(enum: type[E], value: object, what: str) -> E:
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value))
    except ValueError:
        choices = "|".join(m.value for m in enum)
        raise BadInput(f"unknown {what} {_show(value)}; expected {choices}") from None


def team(value: object) -> str:
    if not isinstance(value, str) or not _TEAM_RE.fullmatch(value):
        raise BadInput(f"team {_show(value)} must be 1-64 letters, digits or _ . - (starting alphanumeric)")
    return value


def points(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"points must be a whole number, got {_show(value)}")
    if not 0 <= value <= MAX_POINTS:
        raise BadInput(f"points must be from 0 to {MAX_POINTS}, got {value}")
    return value


def positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"{what} must be a whole number of at least 1, got {_show(value)}")
    return value


def count(value: object, what: str) -> int:
    """A whole number of at least 0 (a count, a time in ms)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadInput(f"{what} must be a whole number of at least 0, got {_show(value)}")
    return value


def percent(value: object) -> int:
    """Progress is a whole number from 0 to 100; text is parsed, anything else refused."""
    parsed: object = value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            parsed = int(text)
        else:
            raise BadInput(f"progress must be a whole number from 0 to 100, got {_show(value)}")
    if isinstance(parsed, float) and math.isfinite(parsed) and parsed.is_integer():
        parsed = int(parsed)
    if isinstance(parsed, bool) or not isinstance(parsed, int):
        raise BadInput(f"progress must be a whole number from 0 to 100, got {_show(value)}")
    if not 0 <= parsed <= 100:
        raise BadInput(f"progress must be from 0 to 100, got {parsed}")
    return parsed


def note(value: object) -> str:
    if not isinstance(value, str):
        raise BadInput(f"note must be text, got {type(value).__name__}")
    size = _utf8_size(value, "note")
    if size > MAX_NOTE_BYTES:
        raise BadInput(f"note is {size} bytes; the cap is {MAX_NOTE_BYTES}")
    return value


def agent_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise BadInput("an agent id is required: pass --agent or set SWARM_AGENT_ID")
    if not _AGENT_RE.fullmatch(value):
        raise BadInput(
            f"agent id {_show(value)} must be 1-128 letters, digits or _ . : @ / - (starting alphanumeric)"
        )
    return value


def work_id(value: object) -> str:
    if not isinstance(value, str) or not _WORK_ID_RE.fullmatch(value):
        raise BadInput(f"{_show(value)} is not a work id (like work_1732390000123456789_3f9a2c1b7d0e)")
    return value


def fence(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"fence must be a positive whole number, got {_show(value)}")
    return value


def trace_id(value: object) -> str:
    if not isinstance(value, str) or not _TRACE_RE.fullmatch(value):
        raise BadInput(f"trace id {_show(value)} must be 32 lowercase hex digits")
    return value


def backoff_ms(seconds: object) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise BadInput(f"backoff must be a number of seconds, got {_show(seconds)}")
    if not math.isfinite(seconds) or not 0 <= seconds <= 86_400:
        raise BadInput(f"backoff must be from 0 to 86400 seconds, got {seconds}")
    return round(seconds * 1000)


def lease_ms(seconds: object) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise BadInput(f"lease must be a number of seconds, got {_show(seconds)}")
    if not math.isfinite(seconds) or not 0.001 <= seconds <= 86_400:
        raise BadInput(f"lease must be from 0.001 to 86400 seconds, got {seconds}")
    return max(1, round(seconds * 1000))


def seconds(value: object, what: str, *, allow_zero: bool = False) -> float:
    """A finite number of seconds (a timeout), above 0 (or from 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{what} must be a number of seconds, got {_show(value)}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not math.isfinite(value) or not low_ok or value > MAX_SECONDS:
        bound = "at least 0" if allow_zero else "above 0"
        raise BadInput(f"{what} must be {bound} and at most {MAX_SECONDS} seconds, got {value}")
    return float(value)
