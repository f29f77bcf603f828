"""The ledger against a model of its state machine (SPEC §4 statuses, §5 contract), on a real Redis.

Hypothesis drives several agents over a handful of items with every operation, valid or not,
and checks each outcome (the result, or the exact error type) against a small in-memory model;
after every step the items, the registries, velocity and the event stream must agree with it.
A lease running out is simulated exactly as Redis does it: the claim key disappears (and its
lease registry score, the expiry time, is then in the past).

Delivery is modelled too: an item that goes through the queues is owed a message from the step
that makes it pending until a claim: in the outbox until a send is confirmed, and in its role's
sent set once a send is decided (by its writer at once, or by a sweeper); an item filed for
manual claims never is; a queue message claims its role's most urgent, longest-owed sent item.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import redis
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from swarm.deliveries import SENT_RANK_SPAN_MS
from swarm.errors import BadInput, ClaimConflict, InvalidTransition, LeaseLost, NotFound, NotOwner, SwarmError
from swarm.ledger import Dispatch, Ledger
from swarm.models import EventKind, Priority, Role, Status, WorkItem
from swarm.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.redis_compat]  # also run on Redis 6.2

T = TypeVar("T")
AGENTS = ("agent-a", "agent-b", "agent-c")
ROLES = (Role.DEVELOPER, Role.QA)
MAX_ITEMS = 6
UNKNOWN_ID = "work_0000000000000000001_000000000000"
HELD = (Status.CLAIMED, Status.IN_PROGRESS)

# (value given, the percent it means or None when it must be refused as bad input)
ODD_PERCENTS: list[tuple[object, int | None]] = [
    ("42", 42), (" 7 ", 7), (12.0, 12), (-1, None), (101, None), ("abc", None), ("", None),
    (float("nan"), None), (12.5, None), (True, None), ("1e2", None), (None, None),
]  # fmt: skip
percents = st.one_of(
    st.integers(-2, 102).map(lambda n: (n, n if 0 <= n <= 100 else None)), st.sampled_from(ODD_PERCENTS)
)
actors = st.sampled_from(("holder", *AGENTS))  # "holder": whoever holds the item, if anyone
fences = st.sampled_from(("none", "current", "stale", "ahead"))
submissions = st.fixed_dictionaries(
    {
        "role": st.sampled_from(ROLES),
        "team": st.sampled_from(("alpha", "beta")),
        "priority": st.sampled_from(list(Priority)),
        "points": st.integers(0, 5),
        "max_attempts": st.integers(1, 3),
        "dispatch": st.booleans(),
    }
)


@dataclass
class Model:
    role: Role
    team: str
    priority: Priority
    points: int
    max_attempts: int
    seq: int  # submission order: "oldest first" among equal priorities
    status: Status = Status.PENDING
    holder: str | None = None
    last_holder: str | None = None  # who held it before it went back to pending
    fence: int | None = None
    attempts: int = 0
    progress: int = 0
    cancel_requested: bool = False
    live: bool = False  # the claim key exists (the lease has not run out)
    manual: bool = False  # filed for manual claims: never owed a queue message
    outbox: bool = False  # pending and owed a send not yet confirmed
    sent: bool = False  # pending and owed, with a send decided (in its role's sent set)
    due_now: bool = False  # in the outbox and due for a sweeper now (back in pending)


def _attempt(call: Callable[[], T]) -> tuple[T | None, SwarmError | None]:
    try:
        return call(), None
    except SwarmError as exc:
        return None, exc


def _expect(expected: type[SwarmError] | None, got: object, error: SwarmError | None) -> None:
    if expected is None:
        assert error is None, f"expected success, got {type(error).__name__}: {error}"
    else:
        assert type(error) is expected, f"expected {expected.__name__}, got {error!r} / {got!r}"


class LedgerMachine(RuleBasedStateMachine):
    client: redis.Redis  # bound by the test

    items_ = Bundle("items")

    def __init__(self) -> None:
        super().__init__()
        self.prefix = "h" + uuid.uuid4().hex[:12]
        self.ledger = Ledger(self.client, Settings(key_prefix=self.prefix, redis_url=None))
        self.items: dict[str, Model] = {}
        self.velocity: Counter[str] = Counter()
        self.issued: list[int] = []

    def teardown(self) -> None:
        doomed = list(self.client.scan_iter(match="{" + self.prefix + "}*", count=1000))
        if doomed:
            self.client.delete(*doomed)

    # -- the model's rules ------------------------------------------------------------------

    def _who(self, m: Model, actor: str) -> str:
        return (m.holder or AGENTS[0]) if actor == "holder" else actor

    @staticmethod
    def _fence(m: Model, choice: str) -> int | None:
        cur = m.fence or 0
        return {"none": None, "current": m.fence, "stale": max(cur - 1, 1), "ahead": cur + 1}[choice]

    @staticmethod
    def _refusal(m: Model, agent: str, fence: int | None) -> type[SwarmError] | None:
        """Who may write (lua/_lib.lua check_holder): the live holder, with its current token.

        The claimer whose lease ran out, or who shows another token, has lost its lease; so has a
        caller showing an older token, and the last holder of an item back in pending.
        """
        if m.status.terminal:
            return InvalidTransition
        cur = m.fence or 0
        if m.status is Status.PENDING:
            lost = fence is not None and fence <= cur and agent == m.last_holder
            return LeaseLost if lost else NotOwner
        if agent == m.holder:
            return None if fence in (None, cur) and m.live else LeaseLost
        return LeaseLost if fence is not None and fence < cur else NotOwner

    def _claimed(self, m: Model, agent: str, item: WorkItem) -> None:
        assert item.fence is not None
        assert all(item.fence > f for f in self.issued), "fencing tokens must strictly increase"
        self.issued.append(item.fence)
        m.status, m.holder, m.fence, m.live = Status.CLAIMED, agent, item.fence, True
        m.outbox = m.sent = m.due_now = False

    @staticmethod
    def _end_tenure(m: Model, to: Status) -> None:
        m.status, m.live = to, False
        if to is Status.PENDING:  # a fresh start for the next claimer, owed a new send
            m.last_holder, m.holder, m.progress = m.holder, None, 0
            m.outbox, m.sent, m.due_now = not m.manual, False, not m.manual

    def _retry_target(self, m: Model) -> Status:
        """Where a lost lease or a retried failure leads: attempts + 1 first."""
        m.attempts += 1
        if m.cancel_requested:
            return Status.CANCELLED
        return Status.DEAD if m.attempts >= m.max_attempts else Status.PENDING

    def _holder_write(
        self, op: str, wid: str, actor: str, choice: str, call: Callable[[str, int | None], T]
    ) -> T | None:
        """Runs a holder's write as ``actor`` with the ``choice`` of token; checks the outcome."""
        m = self.items[wid]
        agent, fence = self._who(m, actor), self._fence(m, choice)
        expected = self._refusal(m, agent, fence)
        got, error = _attempt(lambda: call(agent, fence))
        event(f"{op}: {type(error).__name__ if error else 'ok'}")
        _expect(expected, got, error)
        return got

    # -- rules ------------------------------------------------------------------------------

    @precondition(lambda self: len(self.items) < MAX_ITEMS)
    @rule(
        target=items_,
        fields=submissions,
        claim_for=st.none() | st.sampled_from(AGENTS),
        confirm=st.booleans(),
    )
    def submit(self, fields: dict[str, Any], claim_for: str | None, confirm: bool) -> str:
        item = self.ledger.submit("task", "x", claim_for=claim_for, **fields)
        assert all(item.id > older for older in self.items), "ids must sort by creation time"
        dispatch = fields.pop("dispatch")
        m = Model(**fields, seq=len(self.items), manual=not dispatch)
        self.items[item.id] = m
        if claim_for is not None:
            self._claimed(m, claim_for, item)
        else:  # its writer sends it at once: decided now, confirmed later
            m.outbox = m.sent = dispatch
        if (
            claim_for is None and confirm
        ):  # its submitter sent the message and confirmed it, as the facade does
            self.confirm_send(item.id)
        return item.id

    @rule(wid=items_, agent=st.sampled_from(AGENTS))
    def claim(self, wid: str, agent: str) -> None:
        m = self.items[wid]
        expected = ClaimConflict if m.status in HELD else InvalidTransition if m.status.terminal else None
        got, error = _attempt(lambda: self.ledger.claim(wid, agent))
        _expect(expected, got, error)
        if isinstance(error, ClaimConflict):
            assert (error.holder, error.work_id) == (m.holder, wid)
        if got is not None:
            self._claimed(m, agent, got)
        event(f"claim: {type(error).__name__ if error else 'ok'}")

    @rule(role=st.sampled_from(ROLES), agent=st.sampled_from(AGENTS))
    def claim_next(self, role: Role, agent: str) -> None:
        ready = sorted(
            (m.priority.rank, m.seq, wid)
            for wid, m in self.items.items()
            if m.status is Status.PENDING and m.role is role
        )
        got = self.ledger.claim_next(role, agent)
        if not ready:
            assert got is None
            return
        assert got is not None, f"{ready} were ready"
        assert got.id == ready[0][2], "claim_next takes the highest priority, then the oldest"
        self._claimed(self.items[got.id], agent, got)

    @rule(wid=items_, actor=actors, choice=fences, percent=percents)
    def progress(self, wid: str, actor: str, choice: str, percent: tuple[Any, int | None]) -> None:
        m = self.items[wid]
        value, meant = percent
        if meant is None:  # refused before anything is looked up or written
            got, error = _attempt(lambda: self.ledger.progress(wid, self._who(m, actor), value))
            _expect(BadInput, got, error)
            return
        before = self.ledger.get(wid).lease_expires_at
        got = self._holder_write(
            "progress", wid, actor, choice, lambda a, f: self.ledger.progress(wid, a, value, "note", fence=f)
        )
        if got is not None:
            m.status, m.progress = Status.IN_PROGRESS, meant
            assert before is not None
            assert got.lease_expires_at is not None
            assert got.lease_expires_at >= before, "progress renews the lease"

    @rule(wid=items_, actor=actors, choice=fences)
    def heartbeat(self, wid: str, actor: str, choice: str) -> None:
        before = self.ledger.get(wid).lease_expires_at
        got = self._holder_write(
            "heartbeat", wid, actor, choice, lambda a, f: self.ledger.heartbeat(wid, a, fence=f)
        )
        if got is not None:
            assert before is not None
            assert got.lease_expires_at is not None
            assert got.lease_expires_at >= before
            assert got.cancel_requested is self.items[wid].cancel_requested

    @rule(wid=items_, actor=actors, choice=fences, points=st.none() | st.integers(0, 5))
    def complete(self, wid: str, actor: str, choice: str, points: int | None) -> None:
        done = self._holder_write(
            "complete", wid, actor, choice, lambda a, f: self.ledger.complete(wid, a, fence=f, points=points)
        )
        if done is not None:
            m = self.items[wid]
            self._end_tenure(m, Status.COMPLETED)
            m.progress, m.points = 100, m.points if points is None else points
            self.velocity[m.team] += m.points

    @rule(wid=items_, actor=actors, choice=fences, retry=st.booleans())
    def fail(self, wid: str, actor: str, choice: str, retry: bool) -> None:
        done = self._holder_write(
            "fail", wid, actor, choice, lambda a, f: self.ledger.fail(wid, a, "boom", fence=f, retry=retry)
        )
        if done is not None:
            m = self.items[wid]
            self._end_tenure(m, self._retry_target(m) if retry else Status.FAILED)

    @rule(wid=items_, actor=actors, choice=fences)
    def release(self, wid: str, actor: str, choice: str) -> None:
        done = self._holder_write(
            "release", wid, actor, choice, lambda a, f: self.ledger.release(wid, a, fence=f)
        )
        if done is not None:
            m = self.items[wid]
            self._end_tenure(m, Status.CANCELLED if m.cancel_requested else Status.PENDING)

    @rule(wid=items_, actor=st.none() | st.sampled_from(AGENTS))
    def cancel(self, wid: str, actor: str | None) -> None:
        m = self.items[wid]
        got, error = _attempt(lambda: self.ledger.cancel(wid, actor))
        _expect(InvalidTransition if m.status.terminal else None, got, error)
        if got is not None:
            m.cancel_requested = True
            if m.status is Status.PENDING:
                m.status = Status.CANCELLED

    @rule(wid=items_)
    def confirm_send(self, wid: str) -> None:
        m = self.items[wid]
        owed = m.status is Status.PENDING and not m.manual
        confirmed = self.ledger.dispatched(Dispatch.of(self.ledger.get(wid)))
        assert confirmed is (owed and m.outbox), "a confirmation takes the item out of the outbox once"
        if owed:
            m.outbox, m.sent, m.due_now = False, True, False

    @rule()
    def sweep(self) -> None:
        """A sweeper takes the outbox entries that are due (items back in pending)."""
        taken = {d.work_id for d in self.ledger.due_dispatches()}
        assert taken == {w for w, m in self.items.items() if m.status is Status.PENDING and m.due_now}
        for wid in taken:
            m = self.items[wid]
            m.sent, m.due_now = True, False

    @rule(wid=items_, agent=st.sampled_from(AGENTS))
    def deliver(self, wid: str, agent: str) -> None:
        """A queue message for ``wid`` reaches a worker of its role."""
        m = self.items[wid]
        head = self.client.zrange(self.ledger.keys.sent(m.role), 0, 0)
        named_ok = m.status is Status.PENDING and not m.manual
        if named_ok and not m.sent and (not head or m.priority.rank < self.items[head[0]].priority.rank):
            expected_id: str | None = wid  # its send is not confirmed yet, and it is more urgent
        elif head:
            expected_id = head[0]
        else:
            expected_id = wid if named_ok else None
        got, error = _attempt(lambda: self.ledger.claim_delivery(wid, agent, m.role))
        event(f"deliver: {'own' if expected_id == wid else 'other' if expected_id else type(error).__name__}")
        if expected_id is None:
            refusal = ClaimConflict if m.status in HELD else InvalidTransition
            _expect(refusal, got, error)
            return
        _expect(None, got, error)
        assert got is not None
        assert got.id == expected_id, "the role's most urgent, longest-owed item"
        claimed = self.items[got.id]
        assert claimed.status is Status.PENDING
        assert not claimed.manual
        assert claimed.role is m.role
        self._claimed(claimed, agent, got)

    @precondition(lambda self: any(m.live for m in self.items.values()))
    @rule(data=st.data())
    def expire_lease(self, data: st.DataObject) -> None:
        wid = data.draw(st.sampled_from(sorted(w for w, m in self.items.items() if m.live)))
        self.client.delete(self.ledger.keys.claim(wid))  # what PX running out does
        self.client.zadd(self.ledger.keys.leases, {wid: 0}, xx=True)  # the expiry time is now past
        self.items[wid].live = False

    @rule()
    def reap(self) -> None:
        expected: dict[str, Status] = {}
        for wid, m in self.items.items():
            if m.status in HELD and not m.live:
                self._end_tenure(m, self._retry_target(m))
                expected[wid] = m.status
                event(f"reap: {m.status}")
        assert dict(self.ledger.reap()) == expected

    @rule(agent=st.sampled_from(AGENTS))
    def unknown_items_are_not_found(self, agent: str) -> None:
        for call in (
            lambda: self.ledger.claim(UNKNOWN_ID, agent),
            lambda: self.ledger.progress(UNKNOWN_ID, agent, 5),
            lambda: self.ledger.complete(UNKNOWN_ID, agent, fence=1),
            lambda: self.ledger.release(UNKNOWN_ID, agent),
            lambda: self.ledger.cancel(UNKNOWN_ID, agent),
            lambda: self.ledger.get(UNKNOWN_ID),
        ):
            got, error = _attempt(call)
            _expect(NotFound, got, error)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def items_match_the_model(self) -> None:
        listed = {item.id: item for item in self.ledger.list(limit=100)}  # read from the registries
        assert set(listed) == set(self.items)
        for wid, m in self.items.items():
            item = listed[wid]
            seen = (item.status, item.agent_id, item.fence, item.attempts, item.progress)
            model = (m.status, m.holder, m.fence, m.attempts, m.progress)
            assert seen == model, f"{wid}: ledger {seen} != model {model}"
            assert item.cancel_requested is m.cancel_requested
            assert item.points == m.points
            assert (item.lease_expires_at is not None) is (m.status in HELD)
            if m.live:  # the lease registry's score is the claim key's expiry
                score = self.client.zscore(self.ledger.keys.leases, wid)
                assert score is not None
                assert item.lease_expires_at is not None
                assert abs(score - item.lease_expires_at.timestamp() * 1000) <= 1

    @invariant()
    def registries_match_the_items(self) -> None:
        keys, ids = self.ledger.keys, list(self.items)
        pipe = self.client.pipeline(transaction=False)
        for status in Status:
            pipe.zrange(keys.status(status), 0, -1)
        for role in Role:
            pipe.zrange(keys.ready(role), 0, -1)
        pipe.zrange(keys.leases, 0, -1)
        pipe.mget([keys.claim(wid) for wid in ids] or ["{" + self.prefix + "}:none"])
        *registries, leases, holders = pipe.execute()
        for status, members in zip(Status, registries[: len(Status)], strict=True):
            assert set(members) == {w for w, m in self.items.items() if m.status is status}, status
        for role, members in zip(Role, registries[len(Status) :], strict=True):
            pending = {w for w, m in self.items.items() if m.status is Status.PENDING and m.role is role}
            assert set(members) == pending, role
        assert set(leases) == {w for w, m in self.items.items() if m.status in HELD}
        live = {w: m.holder for w, m in self.items.items() if m.live}
        assert {w: h for w, h in zip(ids, holders, strict=False) if h} == live
        assert self.ledger.counts() == {s: sum(m.status is s for m in self.items.values()) for s in Status}
        velocity = {team: points for team, points in self.ledger.velocity().items() if points}
        assert velocity == {team: points for team, points in self.velocity.items() if points}

    @invariant()
    def every_queued_pending_item_is_owed_once(self) -> None:
        keys = self.ledger.keys
        outbox = set(self.client.zrange(keys.outbox, 0, -1))
        owed = {w for w, m in self.items.items() if m.status is Status.PENDING and not m.manual}
        assert outbox == {w for w in owed if self.items[w].outbox}, "owed a send not yet confirmed"
        assert all(self.items[w].outbox or self.items[w].sent for w in owed), "every owed item is somewhere"
        for role in Role:
            sent = dict(self.client.zrange(keys.sent(role), 0, -1, withscores=True))
            assert set(sent) == {w for w in owed if self.items[w].sent and self.items[w].role is role}, role
            for wid, score in sent.items():
                assert int(score) // SENT_RANK_SPAN_MS == self.items[wid].priority.rank, "by priority first"

    @invariant()
    def each_completed_item_has_one_completed_event(self) -> None:
        completed = Counter(e.work_id for e in self.ledger.events(10_000) if e.event is EventKind.COMPLETED)
        assert dict(completed) == {wid: 1 for wid, m in self.items.items() if m.status is Status.COMPLETED}


def test_the_ledger_behaves_like_its_model(real_redis: redis.Redis) -> None:
    machine: type[LedgerMachine] = type("LedgerOnRedis", (LedgerMachine,), {"client": real_redis})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
