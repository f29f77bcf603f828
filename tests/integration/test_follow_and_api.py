"""``swarm events --follow`` streams new events live; the README's Python example works as written."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time

import pytest
import redis

from swarm import ClaimConflict, Settings, Status, Swarm
from swarm.ledger import Ledger

pytestmark = pytest.mark.integration


def _read_line(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.1):
                return proc.stdout.readline()
    raise AssertionError("no event line before the deadline")


def test_follow_prints_events_as_they_happen(redis_url: str, prefix: str, ledger: Ledger) -> None:
    item = ledger.submit("feature", "watch me")
    env = {**os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix}
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarm", "events", "--follow", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60  # a cold interpreter on a loaded 2-core machine
        # The history comes first: once it is printed, the follower is running.
        first = json.loads(_read_line(proc, deadline))
        assert (first["event"], first["work_id"]) == ("submitted", item.id)
        ledger.claim(item.id, "dev-1")
        live = json.loads(_read_line(proc, deadline))
        assert (live["event"], live["work_id"], live["agent_id"]) == ("claimed", item.id, "dev-1")
        assert live["fence"] >= 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_readme_python_example(redis_url: str, prefix: str) -> None:
    with Swarm(redis_url, agent_id="dev-1", settings=Settings(key_prefix=prefix)) as s:
        item = s.submit("feature", 'Add "SSO"', priority="high", points=5, team="web")
        item = s.claim(item.id)
        assert item.fence is not None
        item = s.progress(item, 50, "half way")
        item = s.complete(item, result={"pr": 42})
        assert item.status is Status.COMPLETED
        assert item.result == {"pr": 42}
        assert s.ledger.velocity() == {"web": 5}
        other = s.submit("feature", "held", claim=True)
        with Swarm(redis_url, agent_id="dev-2", settings=Settings(key_prefix=prefix)) as rival:
            with pytest.raises(ClaimConflict) as conflict:
                rival.claim(other.id)
            assert conflict.value.holder == "dev-1"
        for key in s.ledger.client.scan_iter(match="{" + prefix + "}*"):
            s.ledger.client.delete(key)


def test_swarm_without_a_url_holds_an_embedded_redis_until_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    s = Swarm(settings=Settings(redis_url=None))
    assert s.target.embedded
    item = s.submit("feature", "x", claim=True)
    assert s.get(item.id).status is Status.CLAIMED
    client = s.ledger.client
    s.close()
    fresh = type(client).from_url(s.target.url, socket_connect_timeout=0.5)
    with pytest.raises(redis.exceptions.ConnectionError):
        fresh.ping()
