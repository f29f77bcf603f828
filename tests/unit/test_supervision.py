"""The supervisor's restart policy, on real (tiny) child processes: an exited child is started
again after a backoff that doubles with each quick exit, is capped, and starts afresh after a
child ran long enough; a running child is left alone."""

from __future__ import annotations

import sys

from workers.fleet import Child, Fleet
from workers.supervision import BACKOFF_FIRST_S, BACKOFF_MAX_S, STABLE_AFTER_S, Report, Supervisor, backoff_s

EXITS_3 = [sys.executable, "-c", "raise SystemExit(3)"]
SLEEPS = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_backoff_doubles_from_one_second_and_is_capped() -> None:
    assert [backoff_s(n) for n in range(8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff_s(100) == BACKOFF_MAX_S


def exited(fleet: Fleet, name: str) -> None:
    child = next(c for c in fleet.children if c.name == name)
    assert child.proc is not None
    child.proc.wait(timeout=30)


def test_an_exited_child_restarts_after_a_doubling_backoff_and_a_running_one_is_left_alone() -> None:
    fleet = Fleet({})
    fleet.children = [Child("crashy", EXITS_3, "never"), Child("steady", SLEEPS, "never")]
    reports: list[Report] = []
    supervisor = Supervisor(fleet, reports.append)
    try:
        for child in fleet.children:
            fleet.spawn(child)
        steady = fleet.children[1].proc
        expected_delays = []
        for streak in range(3):
            exited(fleet, "crashy")
            now = fleet.children[0].started_at + 0.5  # it exited quickly
            supervisor.check(now)
            expected_delays.append(BACKOFF_FIRST_S * 2**streak)
            supervisor.check(now + expected_delays[-1] - 0.01)  # not yet
            supervisor.check(now + expected_delays[-1])  # restarted
        exits = [r for r in reports if not r.restarted]
        restarts = [r for r in reports if r.restarted]
        assert [r.delay_s for r in exits] == expected_delays
        assert all(r.exit_code == 3 and r.child == "crashy" for r in exits)
        assert [r.restarts for r in restarts] == [1, 2, 3]
        assert fleet.children[1].proc is steady, "the running child was not touched"
        assert supervisor.states["steady"].restarts == 0

        # A child that ran STABLE_AFTER_S before exiting starts its backoff afresh.
        exited(fleet, "crashy")
        supervisor.check(fleet.children[0].started_at + STABLE_AFTER_S)
        assert reports[-1].delay_s == BACKOFF_FIRST_S
    finally:
        fleet.stop()
