"""Handlers: user functions registered per work type and role.

import swarm

@swarm.handler("feature_development", role="developer")
def build(item, ctx):
    ctx.progress(50, "half way")
    ctx.artifact("branch", "swarm/" + item.id)
    return {"ok": True}
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Handler:
    type: str
    role: Role
    fn: HandlerFn


class HandlerRegistry:
    """Handlers by (work type, role); the role's catch-all ``"*"`` type is the fallback."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, Role], Handler] = {}

    def register(self, type: str, role: Role | str, fn: HandlerFn) -> Handler:
        checked_type = type if type == "*" else validation.work_type(type)
        checked_role = validation.enum_value(Role, role, "role")
        key = (checked_type, checked_role)
        existing = self._handlers.get(key)
        if existing is not None and existing.fn is not fn:
            raise BadInput(f"a handler for {type!r} on role {checked_role.value} is already registered")
        handler = Handler(checked_type, checked_role, fn)
        self._handlers[key] = handler
        return handler

    def handler(self, type: str, *, role: Role | str) -> Callable[[HandlerFn], HandlerFn]:
        """Decorator form of ``register``."""

        def decorate(fn: HandlerFn) -> HandlerFn:
            self.register(type, role, fn)
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
