"""Typed settings: ``SWARM_*`` environment variables, then the settings file ``SWARM_CONFIG`` names
(``swarm --config``), then defaults.

No settings file is read unless named: a ``swarm.toml`` that happens to sit in the working
directory (a checkout being worked on, a download) could otherwise point the swarm at another
Redis, hand Flower its credentials or choose the command the claude executor runs.
"""

from __future__ import annotations

import os
import tomllib
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from swarm.durations import Duration
from swarm.errors import BadInput
from swarm.models import Priority, Role

DEFAULT_LEASE_SECONDS = 30.0  # a holder must heartbeat within this, or its item is reaped
DEFAULT_MAX_ATTEMPTS = 3  # tries per item before it goes dead
DEFAULT_DESCRIPTION_MAX_BYTES = 1024 * 1024  # 1 MiB of UTF-8; larger is refused
DEFAULT_EVENTS_MAX_LEN = 100_000  # the event stream is trimmed to about this many entries
DEFAULT_VISIBILITY_TIMEOUT_S = 3600.0  # an unacked message is redelivered after this; > any lease
DEFAULT_SHUTDOWN_GRACE_S = 30.0  # on SIGTERM, items in hand get this long before they are released
REDELIVER_PASS_MAX_S = 5.0  # the redelivery pass runs every lease / 4, but at least this often
IN_FLIGHT_MIN_S = 2.0  # a message taken this recently is still on its way to its claim
DEFAULT_CLAUDE_TIMEOUT_S = 600.0  # one `claude -p` run
DEFAULT_CLAUDE_BUDGET_USD = 5.0  # total_cost_usd one item may spend across its attempts
DEFAULT_CLAUDE_MAX_ATTEMPTS = 3  # `claude -p` runs per item
DEFAULT_ITERATION_S = 14 * 86_400.0  # two weeks
DEFAULT_PI_ITERATIONS = 5
DEFAULT_IMPROVE_EVERY_S = 4 * 3600.0
CONFIG_ENV = "SWARM_CONFIG"  # path of the settings file (TOML); unset: none is read


class Settings(BaseSettings):
    """Everything the swarm reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="SWARM_", extra="ignore")

    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "SWARM_REDIS_URL"))
    key_prefix: str = Field(default="swarm", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0, le=86_400)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=1000)
    description_max_bytes: int = Field(default=DEFAULT_DESCRIPTION_MAX_BYTES, ge=1)
    events_max_len: int = Field(default=DEFAULT_EVENTS_MAX_LEN, ge=100)
    agent_id: str | None = None
    default_team: str = "core"
    default_role: Role = Role.DEVELOPER
    default_priority: Priority = Priority.MEDIUM
    default_points: int = Field(default=1, ge=0)
    socket_timeout: float = Field(default=5.0, gt=0)
    visibility_timeout_seconds: float = Field(default=DEFAULT_VISIBILITY_TIMEOUT_S, gt=0)
    # Workflow definitions; unset: ./config/workflows.toml when present, else the packaged ones.
    workflows_file: str | None = None
    handler_modules: str = ""  # comma-separated modules a worker imports for their handlers
    worker_role: Role | None = None  # set by `swarm worker --role` for the worker's processes
    shutdown_grace_seconds: float = Field(default=DEFAULT_SHUTDOWN_GRACE_S, ge=0)
    # A pending item whose send its writer did not confirm within this is sent by a sweeper;
    # unset: lease / 3. Never longer than the lease.
    requeue_after_seconds: Duration | None = None
    # How often each worker looks for messages the broker lost (README, "Nothing waits on a lost
    # message"); unset: lease / 4, at most 5 s.
    redeliver_interval: Duration | None = None
    # The claude executor (Claude Code CLI).
    claude_command: str = "claude"  # the executable, found on PATH
    claude_timeout_seconds: float = Field(default=DEFAULT_CLAUDE_TIMEOUT_S, gt=0)
    claude_budget_usd: float = Field(default=DEFAULT_CLAUDE_BUDGET_USD, ge=0)  # per item, all attempts
    claude_max_attempts: int = Field(default=DEFAULT_CLAUDE_MAX_ATTEMPTS, ge=1, le=100)
    claude_worktree: bool = False  # run each item in its own git worktree (branch swarm/<work_id>)
    # The calendar (SPEC §8): a PI is `pi_iterations` iterations of `iteration_length`.
    iteration_length: Duration = DEFAULT_ITERATION_S
    pi_iterations: int = Field(default=DEFAULT_PI_ITERATIONS, ge=1, le=100)
    calendar_start: datetime | None = None  # unset: when the ledger's calendar was first used
    art_sync_every: Duration = 86_400.0  # ART Syncs per iteration: iteration_length / this, rounded up
    calendar_tick: Duration | None = None  # how often beat checks the calendar; unset: iteration / 20
    # Ceremony inputs.
    default_team_capacity: int = Field(default=10, ge=0)  # points per iteration when there is no history
    velocity_history: int = Field(default=3, ge=1, le=100)  # iterations a team's capacity averages
    blocked_after: Duration | None = None  # held without progress this long: blocked; unset: iteration / 10
    impediment_attempts: int = Field(default=2, ge=1)  # an item on its 2nd try or later is an impediment
    top_failure_causes: int = Field(default=3, ge=0, le=50)  # filed as improvement items at I&A
    # Beat.
    # Beat entries to retime, switch off or add; unset: ./config/beat.toml when present, else none.
    beat_schedule_file: str | None = None
    beat_max_interval: Duration = 5.0  # beat sleeps at most this long between ticks
    beat_lock_timeout: Duration | None = None  # the leader's lock; unset: 5 x beat_max_interval
    beat_redis_retry: Duration = 60.0  # beat's RedBeat calls retry this long through an outage
    reaper_interval: Duration | None = None  # beat reaps expired leases this often; unset: lease / 4
    # The improvement cycle (SPEC §9).
    improve_every: Duration = DEFAULT_IMPROVE_EVERY_S
    improve_window: Duration | None = None  # metrics window of a cycle; unset: improve_every
    improve_min_observation: Duration | None = None  # a change is judged after this; unset: window / 4
    improve_max_concurrency: int = Field(default=16, ge=1)  # no role's pool grows past this
    improve_min_concurrency: int = Field(default=1, ge=1)  # nor shrinks below it
    improve_max_actions: int = Field(default=3, ge=0)  # actions deployed per cycle
    improve_advisor: bool = False  # also ask the claude executor for proposals
    improve_advisor_timeout: Duration = 120.0
    improve_budget_usd: float = Field(default=1.0, ge=0)  # the advisor's spend per cycle
    # Observability (SPEC §10).
    log_format: Literal["auto", "json", "console"] = "auto"  # auto: JSON unless stderr is a TTY
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_basic_auth: str | None = None  # "user:password[,user2:password2]"; unset: loopback only
    metrics_port: int = Field(default=9808, ge=1, le=65535)  # `swarm metrics --serve`
    health_consuming_within: Duration = 60.0  # a role with work must have taken an item this recently
    health_beat_within: Duration | None = None  # beat must have ticked this recently; unset: 3 x max interval

    @model_validator(mode="after")
    def _visibility_outlasts_lease(self) -> Settings:
        # A message must not be redelivered while its item's lease may still be live.
        if self.visibility_timeout_seconds <= self.lease_seconds:
            raise ValueError(
                f"visibility_timeout_seconds ({self.visibility_timeout_seconds}) must be longer "
                f"than lease_seconds ({self.lease_seconds})"
            )
        return self

    @property
    def calendar_tick_seconds(self) -> float:
        return self.calendar_tick or min(max(self.iteration_length / 20, 1.0), 60.0)

    @property
    def blocked_after_seconds(self) -> float:
        return self.blocked_after or self.iteration_length / 10

    @property
    def dispatch_grace_seconds(self) -> float:
        """How long a writer has to confirm its send before a sweeper sends the item."""
        return min(self.requeue_after_seconds or self.lease_seconds / 3, self.lease_seconds)

    @property
    def redeliver_interval_seconds(self) -> float:
        return self.redeliver_interval or min(self.lease_seconds / 4, REDELIVER_PASS_MAX_S)

    @property
    def in_flight_seconds(self) -> float:
        """A message a consumer took less than this ago may still be on its way to its claim;
        one taken earlier whose item is still unclaimed is lost (its consumer died)."""
        return max(IN_FLIGHT_MIN_S, self.redeliver_interval_seconds)

    @property
    def reaper_interval_seconds(self) -> float:
        return self.reaper_interval or self.lease_seconds / 4

    @property
    def beat_lock_timeout_seconds(self) -> float:
        return self.beat_lock_timeout or 5 * self.beat_max_interval

    @property
    def health_beat_within_seconds(self) -> float:
        return self.health_beat_within or max(3 * self.beat_max_interval, 15.0)

    @property
    def improve_window_seconds(self) -> float:
        return self.improve_window or self.improve_every

    @property
    def improve_min_observation_seconds(self) -> float:
        return self.improve_min_observation or self.improve_window_seconds / 4

    @model_validator(mode="after")
    def _beat_lock_outlasts_a_tick(self) -> Settings:
        # RedBeat extends the lock by whole seconds each tick: shorter than a second, or than a
        # tick, and leadership would lapse between ticks.
        lock = self.beat_lock_timeout_seconds
        if lock < 1 or lock <= self.beat_max_interval:
            raise ValueError(
                f"beat_lock_timeout ({lock}s) must be at least 1 s and longer than beat_max_interval "
                f"({self.beat_max_interval}s)"
            )
        return self

    @property
    def handler_module_names(self) -> list[str]:
        return [m.strip() for m in self.handler_modules.split(",") if m.strip()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        named = os.environ.get(CONFIG_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if named:
            toml_path = Path(named).expanduser()
            if not toml_path.is_file():
                raise BadInput(f"{CONFIG_ENV} names {toml_path}, which is not a file")
            try:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
            except tomllib.TOMLDecodeError as exc:
                raise BadInput(f"{toml_path}: {exc}") from None
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
