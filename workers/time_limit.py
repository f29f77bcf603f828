"""Per-handler time limits (``@swarm.handler(..., timeout=S)``): a handler that runs past its
timeout is stopped, and its item is failed as transient (retried with backoff, dead once its
attempts are spent).

Nothing stops a thread from outside, so stopping uses what each pool allows, all at once:

- ``ctx.timed_out`` is set: the executors stop their child's process group (SIGTERM, then
  SIGKILL) within 0.2 s, and a handler that checks its context stops on its own;
- a handler in its process's main thread (a prefork child, the solo pool) gets SIGUSR1, the
  signal Celery's soft time limit uses, and the handler installed for the run raises
  ``TimeLimitExceeded`` in it: a signal also cuts a blocking call (a ``sleep``, a socket read)
  short;
- a handler in another thread (the threads pool) gets ``TimeLimitExceeded`` raised
  asynchronously (``PyThreadState_SetAsyncExc``); it lands at its next Python instruction, so a
  call blocked in C (a ``sleep``) returns first.

``TimeLimitExceeded`` is a ``BaseException``, as ``KeyboardInterrupt`` is, so that a handler's
``except Exception`` does not swallow it. A handler still running ``HARD_STOP_GRACE_S`` later
(it swallowed the stop, or is stuck in C) is beyond reach in a thread: the worker says so, and
the item stays held until the handler returns, so that no retry runs beside it. In a prefork
child the worker records the failure and ends the child, as Celery's hard time limit does;
Celery starts another.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog
from celery.signals import worker_process_init

from swarm.models import WorkItem
from workers.context import HandlerContext
from workers.handlers import HandlerFn, TransientError

HARD_STOP_GRACE_S = 5.0  # a stopped handler's time to unwind (an executor's group kill takes 2 s)
LANDING_WAIT_S = 1.0  # a signal sent to this very thread is handled within this, or never
SIGNAL_AGAIN_S = 0.1  # the stop signal is sent again this often until it has landed
STOP_SIGNAL = signal.SIGUSR1  # Celery's soft-time-limit signal (billiard's pool children)
POOL_CHILD_EXIT_CODE = 70  # a prefork child that ended itself for a handler past its time limit

log = structlog.get_logger("swarm.time_limit")

_in_pool_child = False  # set in a prefork child: there a stuck handler ends the process


@worker_process_init.connect(weak=False)
def _mark_pool_child(**_: Any) -> None:
    global _in_pool_child  # noqa: PLW0603 - one flag per process, set once after the fork
    _in_pool_child = True


class TimeLimitExceeded(BaseException):
    """Raised inside a handler whose time is up (not an ``Exception``: it must not be swallowed)."""


class HandlerTimedOut(TransientError):
    """The handler ran past its ``timeout``: its item fails as transient."""


def run_limited(
    fn: HandlerFn,
    item: WorkItem,
    ctx: HandlerContext,
    timeout: float | None,
    *,
    on_stuck: Callable[[str], object],
) -> Any:
    """``fn(item, ctx)``, stopped after ``timeout`` seconds (None: no limit) with
    ``HandlerTimedOut``, whatever it returned or raised meanwhile.

    ``on_stuck(reason)`` records the failure of a handler that is still running
    ``HARD_STOP_GRACE_S`` after the stop, in a prefork child that then ends itself.
    """
    if timeout is None:
        return fn(item, ctx)
    limit = _Limit(ctx, timeout, on_stuck)
    value: Any = None
    error: BaseException | None = None
    try:
        limit.start()  # a very short limit may fire before it returns: the stop lands in here
        value = fn(item, ctx)
    except TimeLimitExceeded:
        pass
    except BaseException as exc:  # raised again below, once the stop is settled
        error = exc
    while True:  # a stop fired meanwhile may land anywhere until leave() returns: settle it here
        try:
            limit.leave()
            break
        except TimeLimitExceeded:
            pass
    if limit.fired:
        raise HandlerTimedOut(limit.reason)
    if error is not None:
        raise error
    return value


class _Limit:
    """One run's watchdog: a thread that waits out the timeout, then stops the handler once."""

    def __init__(self, ctx: HandlerContext, timeout: float, on_stuck: Callable[[str], object]) -> None:
        self.ctx = ctx
        self.timeout = timeout
        self.on_stuck = on_stuck
        self.reason = f"timed out after {timeout:g}s (the handler's timeout)"
        self.fired = False
        self._landed = False
        self._running = True
        self._lock = threading.Lock()  # firing and leaving exclude each other
        self._left = threading.Event()
        self._thread_id = threading.get_ident()
        self._by_signal = threading.current_thread() is threading.main_thread()
        self._previous: Any = None
        self._restored = False
        self._watchdog = threading.Thread(target=self._watch, name=f"time-limit-{ctx.item.id}", daemon=True)

    def start(self) -> None:
        if self._by_signal:
            self._previous = signal.signal(STOP_SIGNAL, self._on_signal)
        self._watchdog.start()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.fired:  # not ours (e.g. Celery's own soft time limit): as before
            if callable(self._previous):
                self._previous(signum, frame)
            return
        if self._landed:
            return  # a repeat (below) that crossed the first one: one stop is enough
        self._landed = True
        raise TimeLimitExceeded(self.reason)

    def _watch(self) -> None:
        if self._left.wait(self.timeout):
            return
        with self._lock:
            if not self._running:
                return
            self.fired = True
            self.ctx.mark_timed_out()
            self._stop()
        self.ctx.log.warning("handler_timed_out", timeout=self.timeout)
        grace_ends = time.monotonic() + HARD_STOP_GRACE_S
        while not self._left.wait(SIGNAL_AGAIN_S):
            if time.monotonic() >= grace_ends:
                self._stuck()
                return
            with self._lock:
                # A signal caught just before a blocking call started (between the interpreter's
                # last check and the system call) does not cut that call short: send it again.
                if self._by_signal and self._running and not self._landed:
                    self._stop()

    def _stop(self) -> None:
        if self._by_signal:
            signal.pthread_kill(self._thread_id, STOP_SIGNAL)
        else:
            _raise_in(self._thread_id, TimeLimitExceeded)

    def _stuck(self) -> None:
        if not _in_pool_child:
            self.ctx.log.error(
                "handler_not_stopped",
                detail=f"still running {HARD_STOP_GRACE_S:g}s after its timeout; its item stays held "
                "until it returns (a prefork worker ends it)",
            )
            return
        self.ctx.log.error("handler_not_stopped", detail="ending this pool child, as a hard time limit does")
        try:
            self.on_stuck(f"{self.reason}; it did not stop, so its worker process was ended")
        finally:
            os._exit(POOL_CHILD_EXIT_CODE)

    def leave(self) -> None:
        """Called by the handler's thread once ``fn`` is done, until it returns (a stop may land
        in it, and then it is called again): after it, no stop is fired, and one that was fired
        has landed or is withdrawn."""
        with self._lock:
            self._running = False
        self._left.set()
        if self.fired and not self._by_signal:
            _raise_in(self._thread_id, None)  # withdraws a stop that has not landed
        if self.fired and self._by_signal and not self._landed:
            # The signal was sent before the lock was released, so it is on this thread by now;
            # its Python handler runs at the next instruction that checks (this sleep).
            deadline = time.monotonic() + LANDING_WAIT_S
            while not self._landed and time.monotonic() < deadline:
                time.sleep(0.01)
        if self._by_signal and not self._restored:
            signal.signal(STOP_SIGNAL, signal.SIG_DFL if self._previous is None else self._previous)
            self._restored = True


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raises ``exc`` in another thread at its next Python instruction (None withdraws it)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), None if exc is None else ctypes.py_object(exc)
    )
