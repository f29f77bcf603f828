"""The built-in demo handler for every role (``swarm worker --handlers workers.demo``).

It shapes its work from the payload, so that demos, tests and benchmarks can ask for it:
``duration_s`` (work that long, reporting progress, stopping early on cancel) and ``fail``
(``"transient"`` or ``"permanent"``).
"""

from __future__ import annotations

import time
from typing import Any

from swarm.models import Role, WorkItem
from workers.context import HandlerContext
from workers.handlers import PermanentError, TransientError, registry

PROGRESS_STEPS = 4  # progress reports over a demo item's duration
STOP_CHECK_S = 0.05  # how soon simulated work notices a cancel or a lost lease


def _work_for(seconds: float, ctx: HandlerContext) -> bool:
    """Works ``seconds``; False as soon as a cancel or a lost lease says to stop (the lease
    keeper sets them from another thread, at most a slice later)."""
    deadline = time.monotonic() + seconds
    while not (ctx.cancelled or ctx.lease_lost):
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, STOP_CHECK_S))
    return False


def demo_work(item: WorkItem, ctx: HandlerContext) -> dict[str, Any]:
    """Simulated work for any role: waits ``duration_s``, reporting progress, then succeeds or fails."""
    duration = float(item.payload.get("duration_s", 0) or 0)
    started = time.monotonic()
    for step in range(1, PROGRESS_STEPS + 1):
        if duration <= 0 or not _work_for(duration / PROGRESS_STEPS, ctx):
            break
        ctx.progress(min(99, step * 100 // PROGRESS_STEPS), f"{item.role.value} step {step}/{PROGRESS_STEPS}")
    fail = item.payload.get("fail")
    if fail == "transient":
        raise TransientError(f"demo transient failure on {item.role.value}")
    if fail == "permanent":
        raise PermanentError(f"demo permanent failure on {item.role.value}")
    ctx.artifact(item.role.value, f"{item.role.value} output for {item.id}")
    return {"role": item.role.value, "seconds": round(time.monotonic() - started, 3)}


for _role in Role:
    registry.register("*", _role, demo_work)
