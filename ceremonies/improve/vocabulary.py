"""The typed action vocabulary: everything a cycle may propose, and nothing else.

Proposals from the deterministic analyser and from the AI advisor are both parsed into these
models (a pydantic discriminated union on ``kind``), so an advisor answer that names an unknown
action, a wrong field or an impossible value is refused before anything looks at it. Each
action names the metric it targets and the direction that is better, so that the next cycle
can judge it without knowing who proposed it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from swarm.models import Priority, Role

MAX_SCALE_STEP = 64  # no single action moves a pool by more than this many slots
RATE_RE = re.compile(r"^\d+(\.\d+)?(/[smh])?$")  # Celery's rate strings: "10/m", "0.5/s", "100"


class Direction(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"


class Metric(StrEnum):
    """Per-role metrics a cycle measures (``discovery.RoleMetrics`` has a field of each name)."""

    QUEUE_DEPTH = "queue_depth"
    OLDEST_WAIT_S = "oldest_wait_s"
    MEAN_WAIT_S = "mean_wait_s"
    SUCCESS_RATE = "success_rate"
    MEAN_DURATION_S = "mean_duration_s"
    THROUGHPUT = "throughput"
    EXPIRED_LEASES = "expired_leases"
    DEAD_ITEMS = "dead_items"
    COST_USD = "cost_usd"

    @property
    def better(self) -> Direction:
        """The direction in which this metric is better: the only one a proposal may claim."""
        return Direction.HIGHER if self in (Metric.SUCCESS_RATE, Metric.THROUGHPUT) else Direction.LOWER

    @property
    def cumulative(self) -> bool:
        """A count over the period (not a level or a rate): compared per second of its period,
        so that a short monitoring period is not mistaken for an improvement."""
        return self in (Metric.EXPIRED_LEASES, Metric.DEAD_ITEMS, Metric.COST_USD)


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: Metric
    better: Direction
    reason: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _direction_matches_metric(self) -> _Action:
        # A proposal that thinks a longer wait is better would be judged backwards.
        if self.better is not self.metric.better:
            raise ValueError(
                f"{self.metric.value} is better {self.metric.better.value}, not {self.better.value}"
            )
        return self

    def describe(self) -> str:
        raise NotImplementedError


class ScaleRole(_Action):
    """Grow (delta > 0) or shrink a role's pool on every node that consumes its queues."""

    kind: Literal["scale_role"] = "scale_role"
    role: Role
    delta: int = Field(ge=-MAX_SCALE_STEP, le=MAX_SCALE_STEP)

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must not be 0")
        return value

    def describe(self) -> str:
        return f"scale_role {self.role.value} {self.delta:+d}"


class SetRateLimit(_Action):
    """Set (or clear, with None) the execute task's rate limit on the role's nodes."""

    kind: Literal["set_rate_limit"] = "set_rate_limit"
    role: Role
    rate: str | None

    @field_validator("rate")
    @classmethod
    def _celery_rate(cls, value: str | None) -> str | None:
        if value is not None and not RATE_RE.match(value):
            raise ValueError(f"rate must look like 10/m, 0.5/s or 100, got {value!r}")
        return value

    def describe(self) -> str:
        return f"set_rate_limit {self.role.value} {self.rate or 'none'}"


class SetLease(_Action):
    """Set the lease a role's items are claimed with (the workers read ``keys.tuning``)."""

    kind: Literal["set_lease"] = "set_lease"
    role: Role
    seconds: float = Field(gt=0, allow_inf_nan=False)

    def describe(self) -> str:
        return f"set_lease {self.role.value} {self.seconds:g}s"


class Reprioritise(_Action):
    """Change a pending item's priority."""

    kind: Literal["reprioritise"] = "reprioritise"
    work_id: str = Field(pattern=r"^work_[0-9]{19}_[0-9a-f]{12}$")
    priority: Priority

    def describe(self) -> str:
        return f"reprioritise {self.work_id} to {self.priority.value}"


class FileWorkItem(_Action):
    """File a work item (e.g. an investigation of repeated dead items) into the backlog, for
    planning: an ``improvement``, at most ``high`` and of a few points (the guardrails' bounds)."""

    kind: Literal["file_work_item"] = "file_work_item"
    type: str = Field(default="improvement", min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=64_000)
    role: Role
    team: str = Field(default="core", min_length=1, max_length=200)
    priority: Priority = Priority.HIGH
    points: int = Field(default=1, ge=0, le=1000)
    evidence: list[str] = Field(default_factory=list, max_length=1000)  # e.g. the dead items' ids

    def describe(self) -> str:
        return f"file_work_item {self.type} for {self.role.value}: {self.description[:60]}"


Action = Annotated[
    ScaleRole | SetRateLimit | SetLease | Reprioritise | FileWorkItem, Field(discriminator="kind")
]
ACTIONS: TypeAdapter[list[Action]] = TypeAdapter(list[Action])
ACTION: TypeAdapter[Action] = TypeAdapter(Action)
KINDS = ("scale_role", "set_rate_limit", "set_lease", "reprioritise", "file_work_item")


def action_role(action: Action) -> Role | None:
    """The role whose metric judges ``action`` (None for an item's reprioritisation: its role is
    read from the ledger when it is deployed)."""
    return None if isinstance(action, Reprioritise) else action.role


def action_schema() -> dict[str, object]:
    """The JSON schema of an action list, as the advisor is shown it."""
    return ACTIONS.json_schema()


class Source(StrEnum):
    ANALYSER = "analyser"
    ADVISOR = "advisor"


class Proposal(BaseModel):
    """One proposed action and who proposed it."""

    model_config = ConfigDict(frozen=True)

    action: Action
    source: Source
