"""``swarm worker``, ``beat`` and ``flower`` exit non-zero when their process dies of an error (so a
supervisor's ``Restart=on-failure`` restarts them), 2 for options Celery refuses or a settings file
that does not exist, and 0 after a warm shutdown (SIGTERM, Ctrl-C)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.embedded import free_port
from swarm.ledger import Ledger

from .polling import wait_until

pytestmark = pytest.mark.integration

BEAT_GIVES_UP_S = 3.0  # SWARM_BEAT_REDIS_RETRY for the test: beat retries its Redis this long at start
EXIT_DEADLINE_S = 90.0  # a cold interpreter importing Celery on a busy 2-core machine, then exiting


def swarm(argv: list[str], redis_url: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SWARM_KEY_PREFIX": prefix,
        "SWARM_HANDLER_MODULES": "workers.demo",
        "SWARM_BEAT_REDIS_RETRY": str(BEAT_GIVES_UP_S),
    }
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "swarm", *argv], env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def exit_code(argv: list[str], redis_url: str, prefix: str, log: Path) -> int:
    proc = swarm(argv, redis_url, prefix, log)
    try:
        return proc.wait(timeout=EXIT_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_worker_that_dies_of_an_unrecoverable_error_exits_1(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    # Celery's own "Unrecoverable error" path: its pidfile cannot be written.
    log = tmp_path / "worker.log"
    argv = ["worker", "--role", "pm", "--", "--pidfile", str(tmp_path / "missing-dir" / "w.pid")]
    assert exit_code(argv, redis_url, prefix, log) == 1, log.read_text(errors="replace")
    assert "Unrecoverable error" in log.read_text(errors="replace")


def test_a_worker_given_an_option_celery_refuses_exits_2(redis_url: str, prefix: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    assert exit_code(["worker", "--role", "pm", "--", "--no-such-option"], redis_url, prefix, log) == 2
    assert "No such option" in log.read_text(errors="replace")


def test_a_beat_that_dies_of_an_error_exits_1(redis_url: str, prefix: str, tmp_path: Path) -> None:
    log = tmp_path / "beat.log"
    argv = ["beat", "--", "--pidfile", str(tmp_path / "missing-dir" / "b.pid")]
    assert exit_code(argv, redis_url, prefix, log) == 1, log.read_text(errors="replace")


def test_a_beat_that_gives_up_on_an_unreachable_redis_exits_7(prefix: str, tmp_path: Path) -> None:
    # Beat retries its Redis for SWARM_BEAT_REDIS_RETRY (a minute by default), then gives up.
    log = tmp_path / "beat.log"
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    proc = swarm(["beat"], unreachable, prefix, log)
    try:
        code = proc.wait(timeout=BEAT_GIVES_UP_S + EXIT_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 7, log.read_text(errors="replace")
    assert "Redis is unreachable at" in log.read_text(errors="replace")


@pytest.mark.parametrize(
    ("argv", "env_var"),
    [
        (["submit", "feature", "Add SSO", "--workflow", "feature"], "SWARM_WORKFLOWS_FILE"),
        (["up"], "SWARM_BEAT_SCHEDULE_FILE"),
        (["beat"], "SWARM_BEAT_SCHEDULE_FILE"),
    ],
)
def test_a_file_named_in_a_setting_that_does_not_exist_exits_2_before_anything_starts(
    argv: list[str], env_var: str, ledger: Ledger, redis_url: str, tmp_path: Path
) -> None:
    prefix = ledger.settings.key_prefix
    env = {**os.environ, "REDIS_URL": redis_url, "SWARM_KEY_PREFIX": prefix, env_var: "gone.toml"}
    done = subprocess.run(
        [sys.executable, "-m", "swarm", *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=EXIT_DEADLINE_S,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"({env_var}) names gone.toml, which is not a file" in done.stderr
    assert "Traceback" not in done.stderr
    assert "swarm up on" not in done.stdout, "no process was started"
    assert sum(ledger.counts().values()) == 0, "nothing was written"


def test_a_flower_that_cannot_serve_exits_1(redis_url: str, prefix: str, tmp_path: Path) -> None:
    log = tmp_path / "flower.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert exit_code(["flower", f"--port={port}"], redis_url, prefix, log) == 1, log.read_text(
            errors="replace"
        )


@pytest.mark.parametrize(
    ("argv", "ready"), [(["worker", "--role", "pm"], b" ready."), (["beat"], b"beat: Starting...")]
)
def test_a_warm_shutdown_exits_0(
    argv: list[str], ready: bytes, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "proc.log"
    proc = swarm(argv, redis_url, prefix, log)
    try:
        wait_until(
            lambda: ready in log.read_bytes() or proc.poll() is not None, f"swarm {argv[0]} to start", 90
        )
        assert proc.poll() is None, log.read_text(errors="replace")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
