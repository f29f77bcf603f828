"""The ``shell`` executor: a command run as an argv list, with the item as JSON on its stdin.

    swarm.handler("build", role="developer")(shell(["make", "build"]))

No shell is involved and no work text is ever put into the argv: the command reads the whole
item (``item.model_dump_json()``) from stdin. It runs in its own process group, which is killed
on a timeout, a cancel or a lost lease, and when the command exits (nothing it started outlives
the item).

Success (exit 0): stdout, when it is one JSON value, is the item's result; otherwise the result
is ``{"stdout": text}``. Stdout over 512 KiB is kept as its last 512 KiB and never parsed.
The ``shell`` artifact records ``argv``, ``exit_code``, ``seconds`` and the last 16 KiB of
``stdout`` and ``stderr`` (artifacts travel with the item to later workflow stages, so they stay
small).

Failures follow the handler contract (a transient one is retried with backoff and the item goes
``dead`` after ``max_attempts``; a permanent one fails it at once):

- exit 75 (``EX_TEMPFAIL``), 1 or any other non-zero code, or killed by a signal: transient.
  A generic failure is what an unexpected exception is to a Python handler: worth a retry.
- exit 2 (usage), 64-78 except 75 (the ``sysexits.h`` codes: bad usage, bad data, missing input,
  config error...), 126 (not executable) and 127 (not found): permanent. A command says "no
  retry will fix this" by exiting with one of them.
- a timeout, a cancel or a lost lease: the process group is killed; transient (a cancelled
  item is then released as cancelled, and a lost lease's outcome is not written at all).
- the command cannot be started (not found, not executable, a missing ``cwd``): permanent.

The error message carries the exit code and the last 2000 bytes of stderr.

The command inherits the worker's environment without the ledger's credentials (``REDIS_URL``
and the other secrets of ``workers.executors.environment``); ``env={...}`` adds variables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from swarm.models import WorkItem
from workers.context import HandlerContext
from workers.executors import process
from workers.executors.checks import check_argv, check_artifact, check_env, check_timeout
from workers.handlers import HandlerFn, PermanentError, TransientError

EX_TEMPFAIL = 75  # sysexits.h: "temporary failure, try again later"
SYSEXITS = range(64, 79)  # sysexits.h: EX_USAGE (64) ... EX_CONFIG (78)
PERMANENT_EXIT_CODES = frozenset({2, 126, 127, *SYSEXITS} - {EX_TEMPFAIL})  # not worth a retry
STDOUT_LIMIT_BYTES = 512 * 1024  # stdout kept (and parsed as the result) per run
OUTPUT_TAIL_BYTES = 16 * 1024  # stdout and stderr kept in the item's artifact


def shell(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    artifact: str = "shell",
) -> HandlerFn:
    """A handler that runs ``argv`` (a list, never a string) with the item as JSON on stdin.

    ``timeout`` is in seconds (None: no limit; a cancel still stops it). ``env`` is added to the
    worker's environment, which the command inherits without the ledger's credentials
    (``workers.executors.environment``). ``artifact`` names the artifact the run is recorded under.
    """
    command = check_argv(argv)
    limit = check_timeout(timeout)
    extra_env = check_env(env)
    name = check_artifact(artifact)

    def run_shell(item: WorkItem, ctx: HandlerContext) -> Any:
        done = process.run(
            command,
            ctx,
            what=command[0],
            stdin=item.model_dump_json().encode("utf-8"),
            timeout=limit,
            cwd=cwd,
            env=extra_env,
            stdout_limit=STDOUT_LIMIT_BYTES,
            stderr_limit=OUTPUT_TAIL_BYTES,
        )
        ctx.artifact(
            name,
            {
                "argv": command,
                "exit_code": done.returncode,
                "seconds": done.seconds,
                "stdout": done.stdout.text(OUTPUT_TAIL_BYTES),
                "stderr": done.stderr.text(),
            },
        )
        if done.returncode != 0:
            error = PermanentError if done.returncode in PERMANENT_EXIT_CODES else TransientError
            stderr = done.stderr.text(process.MESSAGE_TAIL_BYTES).strip()
            raise error(
                f"{command[0]} failed: {done.describe_exit()}" + (f"; stderr: {stderr}" if stderr else "")
            )
        return stdout_result(done.stdout)

    run_shell.__qualname__ = run_shell.__name__ = f"shell[{command[0]}]"
    return run_shell


def stdout_result(stdout: process.Tail) -> Any:
    """The whole stdout as a JSON value when it is one, else ``{"stdout": text}``."""
    text = stdout.text()
    if not stdout.truncated:
        try:
            return json.loads(text, parse_constant=_not_json)
        except ValueError:
            pass
    return {"stdout": text}


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # NaN and Infinity: the ledger refuses them
