"""Handlers: user functions registered per work type and role.

import swarm

@swarm.handler("feature_development", role="developer")
def build(item, ctx):
    ctx.progress(50, "half way")
    ctx.artifact("branch", "swarm/" + item.id)
    return {"ok": True}

Options override the swarm's settings for that type and role:
``@swarm.handler("migrate", role="devops", max_attempts=5, timeout=600, lease=120)``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from swarm import validation
from swarm.errors import BadInput
from swarm.models import Role, WorkItem

if TYPE_CHECKING:
    from workers.context import HandlerContext

HandlerFn = Callable[[WorkItem, "HandlerContext"], Any]


class TransientError(Exception):
    """Raised by a handler for a failure worth retrying (with backoff), e.g. a timeout."""


class PermanentError(Exception):
    """Raised by a handler for a failure that no retry will fix; the item fails at once."""


MAX_ATTEMPTS_LIMIT = 1000  # as SWARM_MAX_ATTEMPTS


@dataclass(frozen=True)
class HandlerOptions:
    """A handler's own settings for its type and role; None keeps the swarm's.

    ``max_attempts``: tries before the item goes dead (``SWARM_MAX_ATTEMPTS``, or the item's own).
    ``timeout``: seconds the handler may run before it is stopped and its item failed as
    transient (``workers.time_limit``); no limit by default.
    ``lease``: the claim's lease in seconds (``SWARM_LEASE_SECONDS``, or the role's tuned lease).
    """

    max_attempts: int | None = None
    timeout: float | None = None
    lease: float | None = None

    @classmethod
    def checked(
        cls, *, max_attempts: int | None = None, timeout: float | None = None, lease: float | None = None
    ) -> HandlerOptions:
        if max_attempts is not None:
            validation.positive_int(max_attempts, "max_attempts")
            if max_attempts > MAX_ATTEMPTS_LIMIT:
                raise BadInput(f"max_attempts must be at most {MAX_ATTEMPTS_LIMIT}, got {max_attempts}")
        if timeout is not None:
            timeout = validation.seconds(timeout, "timeout")
        if lease is not None:
            lease = validation.lease_ms(lease) / 1000
        return cls(max_attempts, timeout, lease)


@dataclass(frozen=True)
class Handler:
    type: str
    role: Role
    fn: HandlerFn
    options: HandlerOptions = field(default_factory=HandlerOptions)


class HandlerRegistry:
    """Handlers by (work type, role); the role's catch-all ``"*"`` type is the fallback."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, Role], Handler] = {}

    def register(
        self,
        type: str,
        role: Role | str,
        fn: HandlerFn,
        *,
        max_attempts: int | None = None,
        timeout: float | None = None,
        lease: float | None = None,
    ) -> Handler:
        """Registers ``fn`` for ``type`` on ``role``, with its own options (``HandlerOptions``)."""
        checked_type = type if type == "*" else validation.work_type(type)
        checked_role = validation.enum_value(Role, role, "role")
        options = HandlerOptions.checked(max_attempts=max_attempts, timeout=timeout, lease=lease)
        key = (checked_type, checked_role)
        handler = Handler(checked_type, checked_role, fn, options)
        existing = self._handlers.get(key)
        if existing is not None and existing != handler:
            raise BadInput(f"a handler for {type!r} on role {checked_role.value} is already registered")
        self._handlers[key] = handler
        return handler

    def handler(
        self,
        type: str,
        *,
        role: Role | str,
        max_attempts: int | None = None,
        timeout: float | None = None,
        lease: float | None = None,
    ) -> Callable[[HandlerFn], HandlerFn]:
        """Decorator form of ``register``."""

        def decorate(fn: HandlerFn) -> HandlerFn:
            self.register(type, role, fn, max_attempts=max_attempts, timeout=timeout, lease=lease)
            return fn

        return decorate

    def find(self, type: str, role: Role) -> Handler | None:
        return self._handlers.get((type, role)) or self._handlers.get(("*", role))

    def roles(self) -> set[Role]:
        return {role for _, role in self._handlers}

    def types(self, role: Role) -> frozenset[str]:
        """The work types with a handler on ``role``; ``{"*"}`` when a catch-all handles any."""
        types = frozenset(type for type, r in self._handlers if r is role)
        return frozenset({"*"}) if "*" in types else types

    def __len__(self) -> int:
        return len(self._handlers)


registry = HandlerRegistry()  # the process-wide registry that @swarm.handler fills
handler = registry.handler


def import_handler_modules(modules: Iterable[str]) -> None:
    """Imports the modules that register handlers (``--handlers`` / ``SWARM_HANDLER_MODULES``).

    Like ``celery -A``, it looks in the current directory too.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in filter(None, (m.strip() for m in modules)):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise BadInput(f"cannot import handler module {name!r}: {exc}") from None
