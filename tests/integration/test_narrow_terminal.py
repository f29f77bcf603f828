"""``swarm list``, ``status``, ``calendar`` and ``agents`` in an 80-column terminal: every line
fits, ids are short, each role shows whole (developer and devops apart), and a short id works
as input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from swarm.calendar import Calendar
from swarm.ledger import Ledger
from swarm.models import Role

pytestmark = pytest.mark.integration

WIDTH = 80


def swarm(redis_url: str, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env |= {"REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, "COLUMNS": str(WIDTH), "LINES": "24"}
    return subprocess.run(
        [sys.executable, "-m", "swarm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def seed(ledger: Ledger) -> list[str]:
    """Items of every role (one held, one dead, in two teams) and a live agent of every role."""
    Calendar.load(ledger)
    ids = []
    for role in Role:
        item = ledger.submit("feature_development", "a long description " * 8, role=role, dispatch=False)
        ids.append(item.id)
        ledger.register_agent(f"agent_{1796000000000000000 + len(ids):019d}_0123456789ab", role=role)
    held = ledger.submit("deploy_to_production", "held", role="devops", team="platform-web", dispatch=False)
    ledger.claim(held.id, "hand-with-a-long-name")
    ledger.progress(held.id, "hand-with-a-long-name", 40)
    dead = ledger.submit("chore", "dies", role="developer", max_attempts=1, dispatch=False)
    ledger.claim(dead.id, "hand-2")
    ledger.fail(dead.id, "hand-2", "boom", retry=True)
    return [*ids, held.id, dead.id]


def test_list_status_calendar_and_agents_fit_80_columns_with_every_role_whole(
    redis_url: str, prefix: str, ledger: Ledger
) -> None:
    ids = seed(ledger)
    shown = {}
    for command in (["list"], ["status"], ["calendar"], ["agents"]):
        done = swarm(redis_url, prefix, *command)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        too_wide = [line for line in lines if len(line) > WIDTH]
        assert not too_wide, f"swarm {command[0]}: lines over {WIDTH} columns:\n" + "\n".join(too_wide)
        cut = set(re.findall(r"(?<!\w)([a-z]+)…", done.stdout))  # no description or agent names a role here
        assert not {w for w in cut for r in Role if r.value.startswith(w)}, f"swarm {command[0]}: a role cut"
        shown[command[0]] = done.stdout
    for name in ("list", "status", "agents"):
        words = set(re.findall(r"[a-z]+", shown[name]))
        assert {r.value for r in Role} <= words, f"swarm {name}: every role whole"
    listed = shown["list"]
    assert not any(full in listed for full in ids), "no full id in the table"
    tails = [full.split("_")[1][-7:] for full in ids]
    assert all(tail in listed for tail in tails), listed
    assert "PI1.I1" in shown["calendar"]


def test_a_short_id_from_a_table_works_as_input_and_an_ambiguous_one_is_refused(
    redis_url: str, prefix: str, ledger: Ledger
) -> None:
    item = ledger.submit("chore", "one", dispatch=False, work_id="work_1796000000001234567_0123456789ab")
    ledger.submit("chore", "two", dispatch=False, work_id="work_1796000000091234567_0123456789ab")
    shown = swarm(redis_url, prefix, "show", "01234567", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == item.id
    claimed = swarm(redis_url, prefix, "claim", "01234567", "--agent", "dev-1", "--json")
    assert json.loads(claimed.stdout)["status"] == "claimed"
    ambiguous = swarm(redis_url, prefix, "cancel", "1234567")
    assert ambiguous.returncode == 2, ambiguous.stderr
    assert "ambiguous" in ambiguous.stderr
    assert ledger.get(item.id).status.value == "claimed", "nothing was written"
    missing = swarm(redis_url, prefix, "show", "7654321")
    assert missing.returncode == 4, missing.stderr
    placed = swarm(redis_url, prefix, "calendar", "01234567", "--json")
    assert json.loads(placed.stdout)["work_id"] == item.id
