"""One child process for one item: no shell, its own process group, bounded output.

``run`` starts ``argv`` in a new session (so the whole group can be signalled), feeds it
``stdin`` from a temporary file (a child that never reads its input cannot block us), and keeps
only the tail of its stdout and stderr. While it runs, the item's context is checked every
``POLL_INTERVAL_S``: a timeout (its own, or the handler's), a cancel or a lost lease stops the
group (SIGTERM, then SIGKILL after ``TERM_GRACE_S``) and raises ``TransientError``. When the
child exits, anything it left running in its group is killed too: nothing an item started
outlives it.

The child inherits the worker's environment without the swarm's secrets
(``workers.executors.environment``), plus what its executor adds.

A child that cannot be started at all (not found, not executable, a bad ``cwd``) raises
``PermanentError``: no retry will make it exist.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from workers.context import HandlerContext
from workers.executors.environment import child_environment
from workers.handlers import PermanentError, TransientError

POLL_INTERVAL_S = 0.2  # how often a running child's item is checked for a cancel or a lost lease
TERM_GRACE_S = 2.0  # after SIGTERM, the child's process group has this long before SIGKILL
DRAIN_TIMEOUT_S = 5.0  # after the child exits, its output pipes must close within this
READ_CHUNK_BYTES = 64 * 1024  # one read from a child's pipe
MESSAGE_TAIL_BYTES = 2000  # stderr quoted in an error message (the ledger caps errors at 64 KiB)

log = structlog.get_logger("swarm.executors")


class Tail:
    """The last ``limit`` bytes of a stream, and how many bytes it had in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._buf += chunk
        if len(self._buf) > self.limit:
            del self._buf[: len(self._buf) - self.limit]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def text(self, last_bytes: int | None = None) -> str:
        """The kept bytes (or only their last ``last_bytes``) as text, invalid UTF-8 replaced."""
        kept = self._buf if last_bytes is None else self._buf[-last_bytes:]
        return kept.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Completed:
    """A child that ran to its own exit."""

    returncode: int  # negative: killed by that signal
    stdout: Tail
    stderr: Tail
    seconds: float

    def describe_exit(self) -> str:
        if self.returncode < 0:
            return f"killed by signal {-self.returncode}"
        return f"exit code {self.returncode}"


def run(
    argv: Sequence[str],
    ctx: HandlerContext,
    *,
    what: str,
    stdin: bytes,
    timeout: float | None,
    cwd: str | Path | None,
    env: Mapping[str, str],
    stdout_limit: int,
    stderr_limit: int,
) -> Completed:
    """Runs ``argv`` to its exit; ``what`` names it in errors (e.g. ``"claude"``). The child
    inherits the worker's environment without the swarm's secrets, plus ``env``
    (``workers.executors.environment``)."""
    stopped = _stop_reason(ctx)
    if stopped:
        raise TransientError(f"{what} not started: {stopped}")
    proc = _start(argv, what, stdin, cwd, child_environment(env))
    out, err = Tail(stdout_limit), Tail(stderr_limit)
    pumps = [_pump(proc.stdout, out, "stdout"), _pump(proc.stderr, err, "stderr")]
    started = time.monotonic()
    try:
        stopped = _wait(proc, ctx, started, timeout)
    finally:
        if proc.poll() is None:  # stopped, or an exception (e.g. a worker shutting down)
            _terminate(proc)
        _signal_group(proc, signal.SIGKILL)  # whatever the child left behind in its group
        for pump in pumps:
            pump.join(DRAIN_TIMEOUT_S)
            if pump.is_alive():
                log.warning("output_not_closed", what=what, work_id=ctx.item.id, stream=pump.name)
    if stopped:
        detail = err.text(MESSAGE_TAIL_BYTES).strip()
        raise TransientError(f"{what} {stopped}" + (f"; stderr: {detail}" if detail else ""))
    return Completed(proc.returncode, out, err, round(time.monotonic() - started, 3))


def _start(
    argv: Sequence[str], what: str, stdin: bytes, cwd: str | Path | None, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    with tempfile.TemporaryFile() as feed:
        feed.write(stdin)
        feed.seek(0)
        try:
            return subprocess.Popen(  # noqa: S603 - an argv list, never a shell; see the executors
                list(argv),
                stdin=feed,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise PermanentError(f"cannot start {what} ({argv[0]!r}): {exc.strerror or exc}{where}") from None


def _pump(pipe: IO[bytes] | None, tail: Tail, name: str) -> threading.Thread:
    """Reads a pipe to its end in a daemon thread, keeping its tail."""

    def read() -> None:
        assert pipe is not None
        with pipe:
            while chunk := os.read(pipe.fileno(), READ_CHUNK_BYTES):
                tail.feed(chunk)

    thread = threading.Thread(target=read, name=name, daemon=True)
    thread.start()
    return thread


def _wait(proc: subprocess.Popen[bytes], ctx: HandlerContext, started: float, timeout: float | None) -> str:
    """Waits for the child's exit; returns why it must be stopped instead ("" once it exited)."""
    while True:
        try:
            proc.wait(timeout=POLL_INTERVAL_S)
            return ""
        except subprocess.TimeoutExpired:
            pass
        if timeout is not None and time.monotonic() - started > timeout:
            return f"timed out after {timeout:g}s"
        stopped = _stop_reason(ctx)
        if stopped:
            return f"stopped: {stopped}"


def _stop_reason(ctx: HandlerContext) -> str:
    if ctx.lease_lost:
        return "the item's lease was lost"
    if ctx.cancelled:
        return "the item was cancelled"
    if ctx.timed_out:
        return "the handler's timeout ran out"
    return ""


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's whole group, then SIGKILL if it is still there after a grace."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=TERM_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The child leads its own session, so its pid is its group's id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
