"""The warm-shutdown line is logged from a signal handler: its logger must already exist."""

from __future__ import annotations

import logging
import subprocess
import sys


def test_the_shutdown_logger_exists_once_the_module_is_imported() -> None:
    # In a fresh interpreter: creating a logger inside a signal handler can change logging's
    # registry while the interrupted frame iterates it (RuntimeError: dictionary changed size
    # during iteration, seen killing a worker at its warm shutdown).
    probe = (
        "import logging, workers.shutdown as s; print(s.SHUTDOWN_LOGGER in logging.Logger.manager.loggerDict)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
    assert isinstance(logging.getLogger("swarm.shutdown"), logging.Logger)
