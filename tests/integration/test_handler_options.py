"""Per-handler options on real workers (``@swarm.handler(..., max_attempts=, timeout=, lease=)``),
and results on real workers: ``wait`` follows a workflow across workers, ``retry`` re-runs a failed
item. A threads-pool worker serves developer and devops; a prefork worker serves qa."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from swarm import Settings, Status, Swarm, WorkItem

from .polling import wait_until
from .workers_harness import running_worker

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
LEASE_S = 2.0  # the workers' setting; the long_lease handler asks for 20 s

HANDLERS = """
import os
import pathlib
import time

import swarm

HOME = pathlib.Path(os.environ["OPTION_TESTS_HOME"])
dev = dict(role="developer")


@swarm.handler("flaky_once", max_attempts=1, **dev)
def flaky_once(item, ctx):
    raise swarm.TransientError("flaky")


@swarm.handler("long_lease", lease=20, **dev)
def long_lease(item, ctx):
    return (ctx.item.lease_expires_at - ctx.item.claimed_at).total_seconds()


@swarm.handler("runaway", timeout=1, max_attempts=1, **dev)
def runaway(item, ctx):
    try:
        while True:
            time.sleep(0.05)  # in a pool thread, the stop lands between two of these
    finally:
        (HOME / f"{item.id}.stopped").write_text("stopped")


swarm.handler("runaway_shell", timeout=1, max_attempts=1, **dev)(
    swarm.shell(["sh", "-c", 'echo $$ > "$OPTION_TESTS_HOME/shell.pid"; exec sleep 60'])
)


@swarm.handler("until_fixed", **dev)
def until_fixed(item, ctx):
    if (HOME / "broken").exists():
        raise swarm.PermanentError("broken")
    return "fixed"


@swarm.handler("sleeper", role="qa", timeout=1, max_attempts=1)
def sleeper(item, ctx):
    time.sleep(60)  # a prefork child's main thread: the stop signal cuts the sleep short


@swarm.handler("stubborn", role="qa", timeout=1, max_attempts=1)
def stubborn(item, ctx):
    while True:
        try:
            time.sleep(0.1)
        except BaseException:
            pass
"""


@dataclass
class Fleet:
    client: Swarm
    home: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def fleet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    prefix = "t" + uuid.uuid4().hex[:12]
    home = tmp_path_factory.mktemp("options")
    (home / "option_handlers.py").write_text(HANDLERS)
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(home), os.environ.get("PYTHONPATH")])),
        "SWARM_HANDLER_MODULES": "workers.demo,option_handlers",
        "SWARM_LEASE_SECONDS": str(LEASE_S),
        "OPTION_TESTS_HOME": str(home),
    }
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    try:
        with (
            running_worker(redis_url, prefix, "developer,devops", home / "threads.log", "-c", "4", env=env),
            running_worker(redis_url, prefix, "qa", home / "prefork.log", "--pool", "prefork", env=env),
        ):
            yield Fleet(client, home, {**env, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix})
    finally:
        client.close()
        with contextlib.closing(redis.Redis.from_url(redis_url)) as raw:
            keys = list(raw.scan_iter(match="{" + prefix + "}*", count=1000))
            if keys:
                raw.delete(*keys)


def finished(fleet: Fleet, type_: str, role: str = "developer") -> WorkItem:
    item = fleet.client.submit(type_, role=role)
    return fleet.client.wait(item, timeout=DEADLINE_S)


def ran_for(item: WorkItem) -> float:
    assert item.claimed_at is not None
    assert item.completed_at is not None
    return (item.completed_at - item.claimed_at).total_seconds()


TIMED_OUT = "transient: timed out after 1s (the handler's timeout)"


def test_a_handlers_max_attempts_overrides_the_setting(fleet: Fleet) -> None:
    done = finished(fleet, "flaky_once")
    assert (done.status, done.attempts, done.max_attempts) == (Status.DEAD, 1, 1), done.error
    assert fleet.client.settings.max_attempts == 3, "the setting it overrode"


def test_a_handlers_lease_overrides_the_setting(fleet: Fleet) -> None:
    done = finished(fleet, "long_lease")
    assert done.status is Status.COMPLETED, done.error
    assert 19 < done.result <= 20.5, f"a {LEASE_S}s lease by the setting, 20 s by the handler"


def test_a_handler_past_its_timeout_in_a_pool_thread_is_stopped_and_failed_as_transient(fleet: Fleet) -> None:
    done = finished(fleet, "runaway")
    assert (done.status, done.error) == (Status.DEAD, TIMED_OUT)
    assert ran_for(done) < 10, "stopped about a second after it started"
    wait_until((fleet.home / f"{done.id}.stopped").exists, "the handler to unwind", DEADLINE_S)


def test_a_shell_handler_past_its_timeout_has_its_process_killed(fleet: Fleet) -> None:
    done = finished(fleet, "runaway_shell")
    assert (done.status, done.error) == (Status.DEAD, TIMED_OUT)
    pid = int((fleet.home / "shell.pid").read_text())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, "the command to be killed", DEADLINE_S)


def test_a_handler_past_its_timeout_in_a_prefork_child_is_stopped_in_its_blocking_call(fleet: Fleet) -> None:
    done = finished(fleet, "sleeper", role="qa")
    assert (done.status, done.error) == (Status.DEAD, TIMED_OUT)
    assert ran_for(done) < 10, "the signal cut its 60 s sleep short"


def test_a_prefork_handler_that_ignores_the_stop_ends_its_child_and_the_worker_goes_on(fleet: Fleet) -> None:
    done = finished(fleet, "stubborn", role="qa")
    assert done.status is Status.DEAD
    assert done.error == f"{TIMED_OUT}; it did not stop, so its worker process was ended"
    after = finished(fleet, "anything", role="qa")  # the demo handler, in the child Celery started
    assert after.status is Status.COMPLETED, after.error


def test_retry_reruns_a_failed_item_on_the_workers(fleet: Fleet) -> None:
    broken = fleet.home / "broken"
    broken.write_text("until fixed")
    failed = finished(fleet, "until_fixed")
    assert (failed.status, failed.error) == (Status.FAILED, "permanent: broken")
    broken.unlink()
    fleet.client.retry(failed)
    done = fleet.client.wait(failed, timeout=DEADLINE_S)
    assert (done.status, done.result) == (Status.COMPLETED, "fixed")


def test_swarm_wait_follows_a_workflow_across_workers_to_its_last_stage(fleet: Fleet) -> None:
    first = fleet.client.submit("bug", "fix it", workflow="bugfix")
    done = subprocess.run(
        [sys.executable, "-m", "swarm", "wait", first.id, "--timeout", str(DEADLINE_S), "--json"],
        env={**os.environ, **fleet.env},
        capture_output=True,
        timeout=DEADLINE_S + 60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    last = json.loads(done.stdout)
    assert (last["role"], last["status"]) == ("devops", "completed")
    stages = fleet.client.chain(first)
    assert [s.role.value for s in stages] == ["developer", "qa", "devops"]
    assert stages[-1].id == last["id"]
