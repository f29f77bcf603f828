"""``swarm status``: its JSON against a seeded ledger, and ``--watch`` refreshing (SPEC §10)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from swarm.calendar import Calendar
from swarm.ledger import Ledger
from swarm.models import AgentStatus, Role, Status
from swarm.settings import Settings
from swarm.status import StatusReport

from .polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2

# Short enough that an agent goes stale within the test, long enough that the agents seeded just
# before `swarm status` runs are still live when a cold interpreter on a loaded machine gets there.
LEASE_S = 10.0


def _env(redis_url: str, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "SWARM_KEY_PREFIX": prefix,
        "SWARM_LEASE_SECONDS": str(LEASE_S),
        "COLUMNS": "160",
    }


def _seed(ledger: Ledger) -> None:
    """Items in every kind of state, in two teams, done within the calendar's first iteration."""
    Calendar.load(ledger)
    for n in range(3):
        ledger.submit("chore", f"pending {n}", role="developer", dispatch=False)
    ledger.submit("chore", "pending qa", role="qa", team="blue", dispatch=False)
    for n, (role, team, points) in enumerate([("pm", "red", 3), ("architect", "red", 5), ("qa", "blue", 2)]):
        item = ledger.submit("chore", f"done {n}", role=role, team=team, points=points, dispatch=False)
        ledger.claim(item.id, f"{role}-1")
        ledger.complete(item.id, f"{role}-1")
    dead = ledger.submit("chore", "dies", role="devops", max_attempts=1, dispatch=False)
    ledger.claim(dead.id, "devops-1")
    ledger.fail(dead.id, "devops-1", "boom", retry=True)
    ledger.mark_agent("devops-1", AgentStatus.OFFLINE)
    held = ledger.submit("chore", "held", role="developer", dispatch=False)
    ledger.claim(held.id, "developer-1")
    ledger.progress(held.id, "developer-1", 40)


def test_status_json_reports_the_seeded_ledger(redis_url: str, prefix: str, ledger: Ledger) -> None:
    ledger = Ledger(ledger.client, Settings(key_prefix=prefix, redis_url=None, lease_seconds=LEASE_S))
    ledger.register_agent("stale-1", role="qa")
    # stale-1 was seen once; the rest of the seed happens after its lease has run out.
    seen = ledger.agent("stale-1").last_heartbeat
    assert seen is not None
    wait_until(lambda: (ledger.server_time() - seen).total_seconds() > LEASE_S, "stale-1's lease to pass")
    _seed(ledger)

    done = subprocess.run(
        [sys.executable, "-m", "swarm", "status", "--json", "--events", "5"],
        env=_env(redis_url, prefix),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = StatusReport.model_validate_json(done.stdout)

    counts = ledger.counts()
    every = ledger.list(limit=1000)
    for status in Status:
        row = report.items[status.value]
        assert row.total == counts[status], status
        assert row.by_role == dict(Counter(i.role.value for i in every if i.status is status)), status
        assert row.by_role_complete
    assert report.items["pending"].by_role == {"developer": 3, "qa": 1}
    assert report.items["dead"].by_role == {"devops": 1}
    assert report.items["in_progress"].by_role == {"developer": 1}
    assert report.queue_depths == {"pm": 0, "architect": 0, "developer": 3, "qa": 1, "devops": 0}

    assert report.calendar.key == "PI1.I1"
    assert (report.calendar.pi, report.calendar.iteration) == (1, 1)
    assert report.calendar.velocity == {"blue": 2, "core": 0, "red": 8}
    assert report.calendar.velocity_total == 10

    by_role = {role: counts.model_dump() for role, counts in report.agents_by_role.items()}
    assert by_role["qa"] == {"live": 1, "stale": 1, "offline": 0}  # qa-1 just now, stale-1 long ago
    assert by_role["devops"] == {"live": 0, "stale": 0, "offline": 1}
    assert by_role["developer"] == {"live": 1, "stale": 0, "offline": 0}
    assert {a.id: a.state for a in report.agents}["stale-1"] == "stale"

    assert [e.id for e in report.events] == [e.id for e in ledger.events(5)]
    assert report.events[-1].event.value == "progressed"


def _read_until(fd: int, proc: subprocess.Popen[bytes], wanted: bytes, deadline_s: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + deadline_s
    while wanted not in seen:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(
                f"no {wanted!r} within {deadline_s}s; output:\n{seen.decode(errors='replace')}"
            )
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the pty closed: the process exited
                continue
    return seen


def _drain_until_exit(fd: int, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
    """Reads (and drops) what the process writes to the pty until it exits, or fails."""
    deadline = time.monotonic() + deadline_s
    while proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"the process did not exit within {deadline_s}s of Ctrl-C")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                os.read(fd, 65536)
            except OSError:  # the pty closed: the process is exiting
                continue


def test_watch_refreshes_live_on_a_terminal_until_interrupted(
    redis_url: str, prefix: str, ledger: Ledger
) -> None:
    ledger.submit("chore", "something to show", role="pm", dispatch=False)
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm", "status", "--watch", "--interval", "0.2"],
        env=_env(redis_url, prefix),
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    try:
        seen = _read_until(main, proc, b"(refresh 3)", 60.0)
        assert b"(refresh 1)" in seen
        assert b"(refresh 2)" in seen
        assert b"Queue depth" in seen
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        # Keep reading the terminal meanwhile, as a terminal does: a full pty buffer would block
        # the dashboard's last frame (and so its exit) on a write that no one reads.
        _drain_until_exit(main, proc, 30.0)
        assert proc.wait(timeout=1) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)


def test_watch_prints_one_frame_per_refresh_into_a_pipe(redis_url: str, prefix: str, tmp_path: Path) -> None:
    log = tmp_path / "watch.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "swarm", "status", "--watch", "--interval", "0.2"],
            env=_env(redis_url, prefix),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: b"(refresh 2)" in log.read_bytes(), "a second frame", explain=log.read_text)
        assert log.read_bytes().count(b"swarm status at") >= 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert Role.PM.value in log.read_text()
