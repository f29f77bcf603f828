"""Turns Redis replies into models and script refusals into typed errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from swarm.errors import (
    AlreadyExists,
    ClaimConflict,
    InvalidTransition,
    LeaseLost,
    Misrouted,
    NotFound,
    NotOwner,
    SwarmError,
    Unhandled,
)
from swarm.models import Agent, Event, WorkItem

_TIME_FIELDS = ("created_at", "claimed_at", "updated_at", "completed_at", "lease_expires_at")
_JSON_FIELDS = ("payload", "result", "artifacts")


def from_us(value: str | int) -> datetime:
    """Microseconds since the epoch (the Redis server clock) as an aware UTC datetime."""
    return datetime.fromtimestamp(int(value) / 1_000_000, tz=UTC)


def pairs(flat: Sequence[Any]) -> dict[str, str]:
    """``[k1, v1, k2, v2, ...]`` (a Lua HGETALL) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def item_from_hash(fields: dict[str, str]) -> WorkItem:
    data: dict[str, Any] = dict(fields)
    for name in _TIME_FIELDS:
        if name in data:
            data[name] = from_us(data[name])
    for name in _JSON_FIELDS:
        if name in data:
            data[name] = json.loads(data[name])
    if "cancel_requested" in data:
        data["cancel_requested"] = data["cancel_requested"] == "1"
    return WorkItem.model_validate(data)


def agent_from_hash(fields: dict[str, str]) -> Agent:
    data: dict[str, Any] = dict(fields)
    completed = int(data.get("completed", 0))
    failed = int(data.get("failed", 0))
    finished = completed + failed
    total_us = int(data.pop("duration_total_us", 0))
    data["mean_duration"] = total_us / finished / 1_000_000 if finished else 0.0
    data["success_rate"] = completed / finished if finished else None
    if "last_heartbeat" in data:
        data["last_heartbeat"] = from_us(data["last_heartbeat"])
    for name in ("role", "pid"):
        if data.get(name) == "":
            data.pop(name)
    if "handles" in data:
        data["handles"] = [t for t in data["handles"].split(",") if t]
    return Agent.model_validate(data)


def event_from_entry(entry_id: str, fields: dict[str, str]) -> Event:
    millis = int(entry_id.split("-", 1)[0])
    return Event.model_validate(
        {**fields, "id": entry_id, "at": datetime.fromtimestamp(millis / 1000, tz=UTC)}
    )


def refusal(reply: Sequence[Any], agent: str | None = None) -> SwarmError:
    """The typed error for a script's ``{'err', kind, work_id, ...}`` reply."""
    kind, work_id, rest = reply[1], reply[2], list(reply[3:])
    if kind == "not_found":
        return NotFound(f"no work item {work_id}")
    if kind == "conflict":
        holder, live = rest[0] or None, rest[1]
        detail = "" if live == "live" else " (its lease expired; the reaper will return it to pending)"
        return ClaimConflict(work_id, holder, detail)
    if kind == "transition":
        status, op = rest
        return InvalidTransition(f"cannot {op} {work_id}: it is already {status}", status=status)
    if kind == "lease_lost":
        return LeaseLost(f"{agent} lost the lease on {work_id}: {rest[0]}", holder=agent)
    if kind == "not_owner":
        holder, why = rest[0] or None, rest[1]
        text = f"{agent} does not hold {work_id}"
        if holder:
            text += f"; {holder} does"
        if why:
            text += f" ({why})"
        return NotOwner(text, holder=holder)
    if kind == "exists":
        return AlreadyExists(f"work item {work_id} already exists")
    if kind == "misrouted":
        role, priority, type_, message_role = rest
        return Misrouted(work_id, role, priority, type_, message_role)
    if kind == "unhandled":
        type_, role = rest
        return Unhandled(work_id, type_, role)
    return SwarmError(f"unexpected ledger reply {list(reply)!r}")
