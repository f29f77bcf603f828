"""Keeping a fleet's children running: what ``swarm up`` does between its start and Ctrl-C.

A child (worker, beat, Flower) that exits while the fleet runs is started again after a backoff
that doubles with each quick exit in a row (``BACKOFF_FIRST_S``, 2 s, 4 s, ... up to
``BACKOFF_MAX_S``) and starts afresh once a child ran ``STABLE_AFTER_S`` before exiting. So a
child that crash-loops at start is retried forever at most once a minute, and never takes the
other children down. Every exit and restart is reported (``Report``), which ``swarm up`` prints
and counts in Redis for ``swarm status``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from workers.fleet import Child, Fleet

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
STABLE_AFTER_S = 60.0  # a child that ran this long before exiting starts its backoff afresh
CHECK_EVERY_S = 0.5  # how often the children are checked


@dataclass
class ChildState:
    """One child's restart history in this fleet."""

    restarts: int = 0
    streak: int = 0  # quick exits in a row
    restart_at: float | None = None  # time.monotonic() of its pending restart
    last_exit: int | None = None  # its last exit code (negative: the signal that killed it)


@dataclass(frozen=True)
class Report:
    """An exit (``restarted`` False, with the delay before the restart) or a restart (True)."""

    child: str
    restarted: bool
    restarts: int
    exit_code: int
    delay_s: float


def backoff_s(streak: int) -> float:
    """The wait before a child's restart after ``streak`` quick exits in a row before this one."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0**streak)


class Supervisor:
    """Restarts a fleet's children that exit; ``check`` is one pass, ``run`` loops until interrupted."""

    def __init__(self, fleet: Fleet, report: Callable[[Report], None]) -> None:
        self.fleet = fleet
        self.report = report
        self.states: dict[str, ChildState] = {c.name: ChildState() for c in fleet.children}

    def check(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for child in self.fleet.children:
            state = self.states[child.name]
            if state.restart_at is None:
                self._notice_exit(child, state, now)
            elif now >= state.restart_at:
                state.restart_at = None
                state.restarts += 1
                self.fleet.spawn(child)
                self.report(Report(child.name, True, state.restarts, state.last_exit or 0, 0.0))

    def run(self) -> None:
        """Checks forever; only an exception (KeyboardInterrupt for Ctrl-C or SIGTERM) ends it."""
        while True:
            self.check()
            time.sleep(CHECK_EVERY_S)

    def _notice_exit(self, child: Child, state: ChildState, now: float) -> None:
        code = child.proc.poll() if child.proc is not None else 0
        if code is None:
            return
        if now - child.started_at >= STABLE_AFTER_S:
            state.streak = 0
        delay = backoff_s(state.streak)
        state.streak += 1
        state.last_exit = code
        state.restart_at = now + delay
        self.report(Report(child.name, False, state.restarts, code, delay))
