"""Whole-ledger invariants (SPEC §4-§5): refusals change nothing, unknown ids are not found,
registries agree with the items."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ledger_helpers import (
    A,
    B,
    assert_consistent,
    claimed,
    expire_lease,
    snapshot,
)

from swarm.errors import BadInput, ClaimConflict, InvalidTransition, LeaseLost, NotFound, NotOwner
from swarm.ledger import Ledger
from swarm.models import Status

# -- refusals change nothing -------------------------------------------------------------------


def _held(ledger: Ledger) -> str:
    return claimed(ledger, A).id


def _completed(ledger: Ledger) -> str:
    wid = claimed(ledger, A).id
    ledger.complete(wid, A)
    return wid


def _reclaimed(ledger: Ledger) -> str:
    wid = claimed(ledger, A).id  # fence 1
    ledger.release(wid, A)
    ledger.claim(wid, A)  # fence 2
    return wid


def _lapsed(ledger: Ledger) -> str:
    wid = claimed(ledger, A).id
    expire_lease(ledger, wid)
    return wid


def _pending(ledger: Ledger) -> str:
    return ledger.submit("build").id


Refusal = tuple[Callable[[Ledger], str], Callable[[Ledger, str], object], type[Exception]]
REFUSALS: dict[str, Refusal] = {
    "claim held by another": (_held, lambda lg, w: lg.claim(w, B), ClaimConflict),
    "claim completed": (_completed, lambda lg, w: lg.claim(w, B), InvalidTransition),
    "claim lapsed, unreaped": (_lapsed, lambda lg, w: lg.claim(w, B), ClaimConflict),
    "heartbeat by non-holder": (_held, lambda lg, w: lg.heartbeat(w, B), NotOwner),
    "heartbeat with stale fence": (_reclaimed, lambda lg, w: lg.heartbeat(w, A, fence=1), LeaseLost),
    "heartbeat of pending": (_pending, lambda lg, w: lg.heartbeat(w, A), NotOwner),
    "progress by non-holder": (_held, lambda lg, w: lg.progress(w, B, 5), NotOwner),
    "progress with stale fence": (_reclaimed, lambda lg, w: lg.progress(w, A, 5, fence=1), LeaseLost),
    "progress after lapse": (_lapsed, lambda lg, w: lg.progress(w, A, 5), LeaseLost),
    "progress 'abc'": (_held, lambda lg, w: lg.progress(w, A, "abc"), BadInput),
    "progress of completed": (_completed, lambda lg, w: lg.progress(w, A, 5), InvalidTransition),
    "complete twice": (_completed, lambda lg, w: lg.complete(w, A), InvalidTransition),
    "complete by non-holder": (_held, lambda lg, w: lg.complete(w, B), NotOwner),
    "complete with stale fence": (_reclaimed, lambda lg, w: lg.complete(w, A, fence=1), LeaseLost),
    "complete with bad points": (_held, lambda lg, w: lg.complete(w, A, points=-1), BadInput),
    "fail by non-holder": (_held, lambda lg, w: lg.fail(w, B, "x", retry=True), NotOwner),
    "fail of completed": (_completed, lambda lg, w: lg.fail(w, A, "x"), InvalidTransition),
    "release by non-holder": (_held, lambda lg, w: lg.release(w, B), NotOwner),
    "release with stale fence": (_reclaimed, lambda lg, w: lg.release(w, A, fence=1), LeaseLost),
    "release of pending": (_pending, lambda lg, w: lg.release(w, A), NotOwner),
    "cancel of completed": (_completed, lambda lg, w: lg.cancel(w), InvalidTransition),
    "zero fence": (_held, lambda lg, w: lg.complete(w, A, fence=0), BadInput),
    "unknown id": (_held, lambda lg, w: lg.claim(w + "0", A), NotFound),
}


@pytest.mark.parametrize(("setup", "attempt", "error"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refused_operation_leaves_items_registries_and_stream_unchanged(
    fake_ledger: Ledger,
    setup: Callable[[Ledger], str],
    attempt: Callable[[Ledger, str], object],
    error: type[Exception],
) -> None:
    wid = setup(fake_ledger)
    before = snapshot(fake_ledger)
    with pytest.raises(error):
        attempt(fake_ledger, wid)
    assert snapshot(fake_ledger) == before


# -- not found ---------------------------------------------------------------------------------

UNKNOWN = "work_0000000000000000001_000000000000"
ON_UNKNOWN: dict[str, Callable[[Ledger], object]] = {
    "get": lambda lg: lg.get(UNKNOWN),
    "claim": lambda lg: lg.claim(UNKNOWN, A),
    "heartbeat": lambda lg: lg.heartbeat(UNKNOWN, A),
    "progress": lambda lg: lg.progress(UNKNOWN, A, 5),
    "complete": lambda lg: lg.complete(UNKNOWN, A),
    "fail": lambda lg: lg.fail(UNKNOWN, A, "x"),
    "release": lambda lg: lg.release(UNKNOWN, A),
    "cancel": lambda lg: lg.cancel(UNKNOWN),
}


@pytest.mark.parametrize("operation", ON_UNKNOWN.values(), ids=ON_UNKNOWN.keys())
def test_unknown_work_id_is_not_found_and_writes_nothing(
    fake_ledger: Ledger, operation: Callable[[Ledger], object]
) -> None:
    fake_ledger.submit("build")
    before = snapshot(fake_ledger)
    with pytest.raises(NotFound, match=f"no work item {UNKNOWN}") as caught:
        operation(fake_ledger)
    assert caught.value.exit_code == 4
    assert snapshot(fake_ledger) == before


def test_unknown_agent_is_not_found(fake_ledger: Ledger) -> None:
    with pytest.raises(NotFound, match="no agent nobody"):
        fake_ledger.agent("nobody")


def test_malformed_work_id_is_bad_input_not_not_found(fake_ledger: Ledger) -> None:
    with pytest.raises(BadInput, match="is not a work id"):
        fake_ledger.get("no such id")


# -- registries --------------------------------------------------------------------------------


def test_registries_agree_with_items_after_every_operation(fake_ledger: Ledger) -> None:
    lg = fake_ledger
    steps: list[Callable[[], object]] = []
    a = lg.submit("build", priority="high")
    b = lg.submit("test", role="qa", team="blue")
    c = lg.submit("plan", role="pm", priority="critical", max_attempts=1)
    d = lg.submit("ship", role="devops", claim_for=B)
    assert_consistent(lg)
    steps = [
        lambda: lg.claim(a.id, A),
        lambda: lg.progress(a.id, A, 30),
        lambda: lg.heartbeat(a.id, A),
        lambda: lg.claim_next("qa", B),
        lambda: lg.fail(b.id, B, "flaky", retry=True),
        lambda: lg.claim(c.id, A),
        lambda: expire_lease(lg, c.id),
        lg.reap,  # c goes dead (max_attempts 1)
        lambda: lg.cancel(d.id),
        lambda: lg.release(d.id, B),  # d cancelled
        lambda: lg.complete(a.id, A, points=3),
        lambda: lg.claim(b.id, A),
        lambda: lg.release(b.id, A),
        lambda: lg.cancel(b.id),
        lambda: lg.submit("again", claim_for=A),
    ]
    for n, step in enumerate(steps):
        step()
        if n != 6:  # between a simulated expiry and the reap, the lease registry is due, not wrong
            assert_consistent(lg)
    counts = lg.counts()
    assert counts[Status.COMPLETED] == 1
    assert counts[Status.DEAD] == 1
    assert counts[Status.CANCELLED] == 2
    assert counts[Status.CLAIMED] == 1
