"""Waiting for a result the only honest way: polling a condition against a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_INTERVAL_S = 0.02  # how often a condition is re-checked; never a wait for the result itself


def wait_until(
    condition: Callable[[], bool],
    what: str,
    deadline_s: float = 60.0,
    *,
    explain: Callable[[], str] | None = None,
) -> None:
    """Returns as soon as ``condition()`` holds; fails naming ``what`` (and ``explain()``, e.g. a
    log) after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            detail = f":\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}{detail}")
        time.sleep(POLL_INTERVAL_S)
