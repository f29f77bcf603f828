"""Per-handler options: their checks (``HandlerRegistry``), and the time limit that stops a handler
past its ``timeout`` (``workers.time_limit``), in a thread and in the main thread."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any

import pytest
from ledger_helpers import A, claimed

from swarm.errors import BadInput
from swarm.ledger import Ledger
from swarm.models import Role, WorkItem
from workers import time_limit
from workers.context import HandlerContext
from workers.handlers import HandlerOptions, HandlerRegistry
from workers.time_limit import HandlerTimedOut, run_limited

LIMIT_S = 0.3
SLACK_S = 3.0  # a loaded 2-core machine: the stop lands within this after the limit


def noop(item: WorkItem, ctx: HandlerContext) -> None:
    return None


# -- options -----------------------------------------------------------------------------------


def test_handler_options_are_kept_with_the_handler() -> None:
    handlers = HandlerRegistry()
    handlers.handler("build", role="qa", max_attempts=5, timeout=60, lease=120)(noop)
    found = handlers.find("build", Role.QA)
    assert found is not None
    assert found.options == HandlerOptions(max_attempts=5, timeout=60.0, lease=120.0)
    handlers.register("plain", Role.QA, noop)
    plain = handlers.find("plain", Role.QA)
    assert plain is not None
    assert plain.options == HandlerOptions()


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"max_attempts": 1001},
        {"max_attempts": 2.5},
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": float("nan")},
        {"timeout": "10"},
        {"lease": 0},
        {"lease": 86_401},
    ],
)
def test_bad_handler_options_are_refused_at_registration(options: dict[str, Any]) -> None:
    handlers = HandlerRegistry()
    with pytest.raises(BadInput):
        handlers.register("build", Role.QA, noop, **options)
    assert len(handlers) == 0


def test_the_same_handler_with_other_options_is_a_conflict() -> None:
    handlers = HandlerRegistry()
    handlers.register("build", Role.QA, noop, timeout=10)
    handlers.register("build", Role.QA, noop, timeout=10)  # an import run twice
    with pytest.raises(BadInput, match="already registered"):
        handlers.register("build", Role.QA, noop, timeout=20)


# -- the time limit ----------------------------------------------------------------------------


@pytest.fixture
def ctx(fake_ledger: Ledger) -> HandlerContext:
    return HandlerContext(fake_ledger, claimed(fake_ledger, A), A)


def in_thread(fn: Any) -> Any:
    """Runs ``fn()`` in a thread (as the threads pool does) and returns what it returned or raised."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # handed to the test
            box.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    return box[0]


def busy(item: WorkItem, ctx: HandlerContext) -> None:
    while True:
        pass


def test_a_busy_handler_in_a_thread_is_stopped_after_its_timeout(ctx: HandlerContext) -> None:
    started = time.monotonic()
    got = in_thread(lambda: run_limited(busy, ctx.item, ctx, LIMIT_S, on_stuck=print))
    assert isinstance(got, HandlerTimedOut)
    assert str(got) == "timed out after 0.3s (the handler's timeout)"
    assert LIMIT_S <= time.monotonic() - started < LIMIT_S + SLACK_S
    assert ctx.timed_out


def test_a_sleeping_handler_in_the_main_thread_is_cut_short_and_the_signal_handler_restored(
    ctx: HandlerContext,
) -> None:
    before = signal.getsignal(time_limit.STOP_SIGNAL)
    started = time.monotonic()
    with pytest.raises(HandlerTimedOut):
        run_limited(lambda item, c: time.sleep(60), ctx.item, ctx, LIMIT_S, on_stuck=print)
    assert time.monotonic() - started < LIMIT_S + SLACK_S
    assert signal.getsignal(time_limit.STOP_SIGNAL) == before


def test_a_handler_that_finishes_in_time_keeps_its_result_and_nothing_lands_later(
    ctx: HandlerContext,
) -> None:
    assert in_thread(lambda: run_limited(lambda i, c: 42, ctx.item, ctx, LIMIT_S, on_stuck=print)) == 42
    assert run_limited(lambda i, c: 43, ctx.item, ctx, LIMIT_S, on_stuck=print) == 43
    deadline = time.monotonic() + 2 * LIMIT_S
    while time.monotonic() < deadline:  # past the limit: no stop arrives in code after the handler
        time.sleep(0.01)
    assert not ctx.timed_out


def test_a_handlers_own_error_within_its_time_is_raised_as_it_was(ctx: HandlerContext) -> None:
    def broken(item: WorkItem, c: HandlerContext) -> None:
        raise ValueError("its own bug")

    got = in_thread(lambda: run_limited(broken, ctx.item, ctx, LIMIT_S, on_stuck=print))
    assert isinstance(got, ValueError)
    with pytest.raises(ValueError, match="its own bug"):
        run_limited(broken, ctx.item, ctx, LIMIT_S, on_stuck=print)


def test_a_thread_that_ignores_the_stop_is_waited_for_and_still_timed_out(
    ctx: HandlerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time_limit, "HARD_STOP_GRACE_S", 0.2)
    stuck: list[str] = []

    def stubborn(item: WorkItem, c: HandlerContext) -> str:
        until = time.monotonic() + LIMIT_S + 1.0
        while time.monotonic() < until:
            with contextlib.suppress(BaseException):  # swallows the stop
                time.sleep(0.01)
        return "late"

    got = in_thread(lambda: run_limited(stubborn, ctx.item, ctx, LIMIT_S, on_stuck=stuck.append))
    assert isinstance(got, HandlerTimedOut), "a late result does not count"
    assert stuck == [], "outside a prefork child nothing is ended: the item stays held until it returns"


def test_a_limit_shorter_than_starting_its_watchdog_still_lands_only_inside_the_run(
    ctx: HandlerContext,
) -> None:
    for _ in range(20):
        got = in_thread(lambda: run_limited(busy, ctx.item, ctx, 1e-6, on_stuck=print))
        assert isinstance(got, HandlerTimedOut)
        with pytest.raises(HandlerTimedOut):
            run_limited(lambda i, c: time.sleep(60), ctx.item, ctx, 1e-6, on_stuck=print)
