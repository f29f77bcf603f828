"""The domain model (SPEC §4): work items, agents, events and their enums."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Status(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD = "dead"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def held(self) -> bool:
        """An agent holds a lease on items in this status."""
        return self in (Status.CLAIMED, Status.IN_PROGRESS)


TERMINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.DEAD})


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for the most urgent; ``claim_next`` takes the lowest rank first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}


class Role(StrEnum):
    PM = "pm"
    ARCHITECT = "architect"
    DEVELOPER = "developer"
    QA = "qa"
    DEVOPS = "devops"


class AgentStatus(StrEnum):
    ACTIVE = "active"
    IDLE = "idle"
    OFFLINE = "offline"


class EventKind(StrEnum):
    """The one vocabulary of ledger events: stream, logs, spans and metrics use these names."""

    SUBMITTED = "submitted"
    CLAIMED = "claimed"
    PROGRESSED = "progressed"
    COMPLETED = "completed"
    FAILED = "failed"
    RELEASED = "released"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    LEASE_EXPIRED = "lease_expired"
    DEAD = "dead"
    RETRIED = "retried"  # a failed or dead item sent back to pending with a new attempt budget
    REPRIORITISED = "reprioritised"
    REDELIVERED = "redelivered"  # its queue message was lost; the ledger sent another
    AGENT_REGISTERED = "agent_registered"
    DEAD_LETTERED = "dead_lettered"  # a broker message that was no task call: acked and kept aside


class WorkItem(BaseModel):
    """One unit of work and its whole state."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    description: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    role: Role = Role.DEVELOPER
    team: str = "core"
    priority: Priority = Priority.MEDIUM
    points: int = Field(default=1, ge=0)

    status: Status = Status.PENDING
    progress: int = Field(default=0, ge=0, le=100)
    note: str = ""
    agent_id: str | None = None
    fence: int | None = None
    attempts: int = 0
    max_attempts: int = 3
    cancel_requested: bool = False
    result: Any = None
    error: str | None = None

    created_at: datetime
    claimed_at: datetime | None = None
    updated_at: datetime
    completed_at: datetime | None = None
    lease_expires_at: datetime | None = None

    trace_id: str = ""
    traceparent: str | None = None  # W3C traceparent of the span that submitted the work (tracing on)
    parent_id: str | None = None
    workflow: str | None = None
    stage: str | None = None
    artifacts: dict[str, Any] = Field(default_factory=dict)
    loops: int = 0  # times the workflow sent this work back (e.g. QA to developer)
    next_id: str | None = None  # the item this one handed off to


class Agent(BaseModel):
    """A worker identity and its live metrics."""

    model_config = ConfigDict(frozen=True)

    id: str
    role: Role | None = None
    team: str = "core"
    capacity: int = Field(default=1, ge=1)
    specialization: str = ""
    host: str = ""
    pid: int | None = None
    node: str = ""  # the Celery worker node it runs in, e.g. developer@host
    handles: list[str] | None = None  # its worker's handled work types ("*": any); None: not a worker's
    status: AgentStatus = AgentStatus.IDLE
    last_heartbeat: datetime | None = None
    completed: int = 0
    failed: int = 0
    mean_duration: float = 0.0  # seconds, over completed and failed items
    success_rate: float | None = None  # None until the agent has finished something


class Event(BaseModel):
    """One entry of the ledger's event stream."""

    model_config = ConfigDict(frozen=True)

    id: str  # the stream entry id
    event: EventKind
    work_id: str | None = None
    agent_id: str | None = None
    fence: int | None = None
    trace_id: str | None = None
    status: Status | None = None
    at: datetime
    detail: str = ""
