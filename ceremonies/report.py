"""What every ceremony report shares, and the work items a ceremony files."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from swarm.calendar import Period
from swarm.models import Priority, Role


class Filing(BaseModel):
    """A work item a ceremony files; its id is chosen up front, so a retried run files it once."""

    model_config = ConfigDict(frozen=True)

    work_id: str
    type: str
    description: str
    role: Role
    team: str
    priority: Priority = Priority.HIGH
    points: int = Field(default=1, ge=0)
    payload: dict[str, Any] = Field(default_factory=dict)


class CeremonyReport(BaseModel):
    """A ceremony's stored report for one period; each ceremony's model adds its figures."""

    model_config = ConfigDict(frozen=True)

    ceremony: str
    period: Period
    generated_at: datetime
    filed: list[Filing] = Field(default_factory=list)
