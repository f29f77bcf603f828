"""Starts and stops real ``swarm worker`` processes for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

READY_TIMEOUT_S = 60.0  # a cold worker imports Celery and connects; slow on a busy 2-core VM


@contextmanager
def running_worker(
    redis_url: str, prefix: str, role: str, log: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``swarm worker --role ROLE`` process, yielded once it is ready; stopped on exit."""
    full_env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SWARM_KEY_PREFIX": prefix,
        "SWARM_HANDLER_MODULES": "workers.demo",
        **(env or {}),
    }
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "swarm",
                "worker",
                "--role",
                role,
                "--name",
                f"{log.stem}-{prefix}@%h",
                *args,
            ],
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)  # poll interval while the worker boots
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
