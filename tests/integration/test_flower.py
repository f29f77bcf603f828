"""``swarm flower``: Flower on the swarm's broker shows the role-named workers, their task events and
its own Prometheus metrics; with SWARM_FLOWER_BASIC_AUTH it asks for the credentials."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from swarm import Settings, Status, Swarm
from swarm.embedded import free_port

from .polling import wait_until
from .workers_harness import _running, running_worker

START_DEADLINE_S = 60.0  # Flower's first inspect broadcast waits for every worker's reply
RESUBMIT_EVERY_S = 2.0  # an item run before Flower enabled task events shows none: send another


@contextmanager
def running_flower(
    redis_url: str, prefix: str, log: Path, port: int, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``swarm flower`` process, yielded once it serves; stopped on exit."""
    argv = ["flower", "--port", str(port), *args]
    with _running(argv, redis_url, prefix, log, ready=b"Visit me at", env=env) as proc:
        yield proc


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """The status and body of a GET (an HTTP error's status too)."""
    request = urllib.request.Request(url)  # noqa: S310 - http://127.0.0.1 only
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def listed_workers(port: int, auth: tuple[str, str] | None = None) -> dict[str, object]:
    try:
        status, body = get(f"http://127.0.0.1:{port}/api/workers?refresh=1", auth)
    except OSError:
        return {}
    return dict(json.loads(body)) if status == 200 else {}


@contextmanager
def role_workers(redis_url: str, prefix: str, tmp_path: Path, roles: tuple[str, ...]) -> Iterator[None]:
    with ExitStack() as stack:
        for role in roles:
            stack.enter_context(running_worker(redis_url, prefix, role, tmp_path / f"{role}.log"))
        yield


@pytest.mark.integration
def test_flower_lists_the_role_named_workers_and_their_task_events(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    flower_log = tmp_path / "flower.log"
    client = Swarm(redis_url, agent_id="pm-1", settings=Settings(key_prefix=prefix, redis_url=None))
    with (
        role_workers(redis_url, prefix, tmp_path, ("qa", "devops")),
        running_flower(redis_url, prefix, flower_log, port),
    ):
        found: dict[str, object] = {}

        def both_listed() -> bool:
            found.update(listed_workers(port))
            return {n.split("@")[0] for n in found} >= {f"qa-{prefix}", f"devops-{prefix}"}

        wait_until(both_listed, "Flower to list the qa and devops workers", START_DEADLINE_S)
        qa_node = next(n for n in found if n.startswith(f"qa-{prefix}@"))
        assert found[qa_node]["stats"]["pool"]["max-concurrency"] == 1  # type: ignore[index]

        # Flower's own /metrics: the qa worker's task events, by node name.
        submitted: list[float] = []
        metrics = ""

        def task_event_counted() -> bool:
            nonlocal metrics
            if not submitted or time.monotonic() - submitted[-1] > RESUBMIT_EVERY_S:
                item = client.submit("task", "seen by Flower", role="qa")
                submitted.append(time.monotonic())
                assert item.status is Status.PENDING
            status, body = get(f"http://127.0.0.1:{port}/metrics")
            metrics = body.decode()
            return status == 200 and any(
                line.startswith("flower_events_total")
                and f'worker="{qa_node}"' in line
                and 'type="task-succeeded"' in line
                and 'task="swarm.execute"' in line
                for line in metrics.splitlines()
            )

        wait_until(
            task_event_counted,
            "Flower's /metrics to count the qa worker's task-succeeded event",
            START_DEADLINE_S,
            explain=lambda: metrics[-3000:],
        )
        assert f'flower_worker_online{{worker="{qa_node}"}} 1.0' in metrics
    client.close()


@pytest.mark.integration
def test_flower_with_basic_auth_refuses_requests_without_the_credentials(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {"SWARM_FLOWER_BASIC_AUTH": "user:pw,ops:s3cret"}
    with (
        role_workers(redis_url, prefix, tmp_path, ("developer",)),
        running_flower(redis_url, prefix, tmp_path / "flower.log", port, "--address", "127.0.0.1", env=env),
    ):
        wait_until(
            lambda: any(n.startswith(f"developer-{prefix}@") for n in listed_workers(port, ("user", "pw"))),
            "Flower to list the developer worker to an authenticated client",
            START_DEADLINE_S,
        )
        api = f"http://127.0.0.1:{port}/api/workers"
        assert get(api)[0] == 401
        assert get(api, ("user", "wrong"))[0] == 401
        assert get(api, ("nobody", "pw"))[0] == 401
        assert get(api, ("user", "pw"))[0] == 200
        assert get(api, ("ops", "s3cret"))[0] == 200
        assert get(f"http://127.0.0.1:{port}/", ("user", "pw"))[0] == 200
        assert get(f"http://127.0.0.1:{port}/")[0] == 401  # the dashboard too


def run_flower_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0", **env}
    return subprocess.run(
        [sys.executable, "-m", "swarm", "flower", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("--address", "0.0.0.0"),  # noqa: S104 - what is refused
        ("--", "-address=0.0.0.0"),  # Flower's parser takes one dash as well as two
        ("--", "--address=0.0.0.0"),
        ("--", "--address="),  # empty: every interface
        ("--", "--address=127.0.0.1", "-address=::"),  # the last one wins
    ],
)
def test_without_auth_flower_refuses_every_spelling_of_an_address_beyond_loopback(
    args: tuple[str, ...],
) -> None:
    done = run_flower_cli(*args, env={})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "with no auth" in done.stdout + done.stderr
    assert "Visit me" not in done.stdout + done.stderr


def test_malformed_basic_auth_is_refused_without_echoing_it() -> None:
    done = run_flower_cli(env={"SWARM_FLOWER_BASIC_AUTH": "user-without-password-SECRET"})
    assert done.returncode == 2
    assert "user:password" in done.stdout + done.stderr
    assert "SECRET" not in done.stdout + done.stderr


@pytest.mark.integration
def test_flower_bound_by_a_single_dash_address_with_auth_refuses_anonymous_task_sends(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """The spelling that once bound every interface with no auth: with credentials it is served,
    and an anonymous ``POST /api/task/async-apply`` is refused."""
    port = free_port()
    env = {"SWARM_FLOWER_BASIC_AUTH": "ops:s3cret"}
    with running_flower(
        redis_url, prefix, tmp_path / "flower.log", port, "--", "-address=127.0.0.1", env=env
    ):
        url = f"http://127.0.0.1:{port}/api/task/async-apply/swarm.execute"
        request = urllib.request.Request(url, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310
        assert refused.value.code == 401
