"""The cycle's record: a pydantic model stored in Redis with every phase's evidence.

``keys.improve_cycle(id)`` holds one cycle as JSON and ``keys.improve_cycles`` indexes the ids by
their start (ms). A later cycle writes its judgement of an earlier cycle's deployments back into
that earlier record, so a past cycle reads with its outcomes.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from ceremonies.improve.advisor import AdvisorReport
from ceremonies.improve.deploy import Deployment, Judgement
from ceremonies.improve.discovery import Discovery
from ceremonies.improve.guardrails import Verdict
from ceremonies.improve.vocabulary import Proposal
from swarm.ledger import Ledger

KEEP_CYCLES = 1000  # older records are dropped when a new one is stored


class CycleStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"  # left running by a process that died; closed by a later cycle


class PhaseRecord(BaseModel):
    """When a phase ran and what it came to, in a line."""

    model_config = ConfigDict(frozen=True)

    name: str
    started_at: datetime
    seconds: float
    summary: str


class Learned(BaseModel):
    """An earlier deployment this cycle judged."""

    model_config = ConfigDict(frozen=True)

    cycle_id: str  # the cycle that deployed it
    index: int  # its place in that cycle's deployments
    action: str
    judgement: Judgement


class Cycle(BaseModel):
    """One self-improvement cycle and its evidence."""

    id: str
    started_at: datetime
    finished_at: datetime | None = None
    dry_run: bool = False
    status: CycleStatus = CycleStatus.RUNNING
    error: str = ""
    window_s: float
    phases: list[PhaseRecord] = Field(default_factory=list)
    discovery: Discovery | None = None
    learned: list[Learned] = Field(default_factory=list)
    proposals: list[Proposal] = Field(default_factory=list)
    advisor: AdvisorReport | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    deployments: list[Deployment] = Field(default_factory=list)


def new_cycle_id(at: datetime) -> str:
    """``cycle_<start ms>_<random>``: sorts by start, unique across processes."""
    return f"cycle_{int(at.timestamp() * 1000):013d}_{secrets.token_hex(3)}"


def save(ledger: Ledger, cycle: Cycle) -> None:
    keys = ledger.keys
    pipe = ledger.client.pipeline(transaction=True)
    pipe.set(keys.improve_cycle(cycle.id), cycle.model_dump_json())
    pipe.zadd(keys.improve_cycles, {cycle.id: int(cycle.started_at.timestamp() * 1000)})
    ledger.read(pipe.execute)
    _trim(ledger)


def _trim(ledger: Ledger) -> None:
    keys = ledger.keys
    old: list[str] = ledger.read(ledger.client.zrange, keys.improve_cycles, 0, -(KEEP_CYCLES + 1))
    if old:
        pipe = ledger.client.pipeline(transaction=True)
        pipe.delete(*(keys.improve_cycle(cid) for cid in old))
        pipe.zrem(keys.improve_cycles, *old)
        ledger.read(pipe.execute)


def load(ledger: Ledger, cycle_id: str) -> Cycle | None:
    raw: str | None = ledger.read(ledger.client.get, ledger.keys.improve_cycle(cycle_id))
    return None if raw is None else Cycle.model_validate_json(raw)


def past_cycles(ledger: Ledger, limit: int = 20) -> list[Cycle]:
    """The latest ``limit`` cycles, newest first."""
    ids: list[str] = ledger.read(ledger.client.zrevrange, ledger.keys.improve_cycles, 0, max(limit, 1) - 1)
    found = (load(ledger, cid) for cid in ids)
    return [c for c in found if c is not None]
