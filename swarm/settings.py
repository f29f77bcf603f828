"""Typed settings: ``SWARM_*`` environment variables, then ``swarm.toml``, then defaults."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from swarm.models import Priority, Role

DEFAULT_LEASE_SECONDS = 30.0  # a holder must heartbeat within this, or its item is reaped
DEFAULT_MAX_ATTEMPTS = 3  # tries per item before it goes dead
DEFAULT_DESCRIPTION_MAX_BYTES = 1024 * 1024  # 1 MiB of UTF-8; larger is refused
DEFAULT_EVENTS_MAX_LEN = 100_000  # the event stream is trimmed to about this many entries
DEFAULT_VISIBILITY_TIMEOUT_S = 3600.0  # an unacked message is redelivered after this; > any lease
DEFAULT_SHUTDOWN_GRACE_S = 30.0  # on SIGTERM, items in hand get this long before they are released
DEFAULT_REQUEUE_AFTER_S = 60.0  # a pending item not yet sent to its queue after this is sent again
DEFAULT_CLAUDE_TIMEOUT_S = 600.0  # one `claude -p` run
DEFAULT_CLAUDE_BUDGET_USD = 5.0  # total_cost_usd one item may spend across its attempts
DEFAULT_CLAUDE_MAX_ATTEMPTS = 3  # `claude -p` runs per item
CONFIG_ENV = "SWARM_CONFIG"  # path of a swarm.toml; default ./swarm.toml when present


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
    workflows_file: str = "config/workflows.toml"  # workflow definitions (relative to the cwd)
    handler_modules: str = ""  # comma-separated modules a worker imports for their handlers
    worker_role: Role | None = None  # set by `swarm worker --role` for the worker's processes
    shutdown_grace_seconds: float = Field(default=DEFAULT_SHUTDOWN_GRACE_S, ge=0)
    requeue_after_seconds: float = Field(default=DEFAULT_REQUEUE_AFTER_S, gt=0)
    # The claude executor (Claude Code CLI).
    claude_command: str = "claude"  # the executable, found on PATH
    claude_timeout_seconds: float = Field(default=DEFAULT_CLAUDE_TIMEOUT_S, gt=0)
    claude_budget_usd: float = Field(default=DEFAULT_CLAUDE_BUDGET_USD, ge=0)  # per item, all attempts
    claude_max_attempts: int = Field(default=DEFAULT_CLAUDE_MAX_ATTEMPTS, ge=1, le=100)
    claude_worktree: bool = False  # run each item in its own git worktree (branch swarm/<work_id>)

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
        toml_path = Path(os.environ.get(CONFIG_ENV, "swarm.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
