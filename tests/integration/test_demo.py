"""``swarm demo`` (what ``make demo`` runs) works on the embedded default with no REDIS_URL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_walks_through_the_lifecycle_on_the_embedded_default() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SWARM_REDIS_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "swarm", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "(embedded " in done.stdout
    for expected in ("is held by", "progress must be", "is completed", "already completed", "completed"):
        assert expected in done.stdout
