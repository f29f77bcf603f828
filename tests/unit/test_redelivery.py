"""The worker's redelivery pass on fakeredis: it observes the role's queues (kombu's lists) and
sends what the ledger says is missing, only once a shortfall has lasted a whole in-flight window."""

from __future__ import annotations

import fakeredis

from swarm.celery_app import role_queues
from swarm.ledger import Dispatch, Ledger
from swarm.models import Role
from workers.redelivery import Redelivery


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _queue_messages(ledger: Ledger, role: Role, n: int, priority_step: int = 0) -> None:
    key = ledger.keys.broker_lists(role_queues(ledger.settings, role)[2])[priority_step // 3]
    for _ in range(n):
        ledger.client.lpush(key, "{}")


def _owed(ledger: Ledger, role: Role, n: int) -> list[str]:
    ids = []
    for i in range(n):
        item = ledger.submit("feature", f"owed {i}", role=role)
        ledger.dispatched(Dispatch.of(item))
        ids.append(item.id)
    return ids


def _pass(ledger: Ledger, clock: Clock) -> tuple[Redelivery, list[Dispatch]]:
    sent: list[Dispatch] = []
    return Redelivery(ledger, sent.append, clock=clock), sent


def test_the_pass_counts_every_kombu_list_of_a_roles_queues(fake_ledger: Ledger) -> None:
    redelivery, _ = _pass(fake_ledger, Clock())
    _queue_messages(fake_ledger, Role.QA, 2)
    _queue_messages(fake_ledger, Role.QA, 1, priority_step=9)
    _queue_messages(fake_ledger, Role.PM, 1)
    seen_ms, queued = redelivery.observe()
    assert seen_ms > 0
    assert queued == {Role.PM: 1, Role.ARCHITECT: 0, Role.DEVELOPER: 0, Role.QA: 3, Role.DEVOPS: 0}


def test_a_shortfall_is_made_good_once_it_has_lasted_an_in_flight_window(fake_ledger: Ledger) -> None:
    clock = Clock()
    redelivery, sent = _pass(fake_ledger, clock)
    ids = _owed(fake_ledger, Role.QA, 3)
    _queue_messages(fake_ledger, Role.QA, 1)  # two of the three messages were lost
    step = redelivery.window_s / 2
    assert redelivery.run_once() == 0, "a first sighting: maybe messages on their way to a claim"
    clock.now += step
    assert redelivery.run_once() == 0, "not yet a whole window"
    clock.now += step
    assert redelivery.run_once() == 2
    assert {d.work_id for d in sent} == set(ids[:2]), "messages name the most urgent owed items"
    assert {d.role for d in sent} == {Role.QA}
    _queue_messages(fake_ledger, Role.QA, 2)  # the new messages reached the queue
    fake_ledger.client.hset(fake_ledger.keys.metrics, "redeliver_hold_ms:qa", 0)
    for _ in range(4):
        clock.now += step
        assert redelivery.run_once() == 0, "nothing is missing any more"


def test_a_passing_gap_is_not_taken_for_a_loss(fake_ledger: Ledger) -> None:
    clock = Clock()
    redelivery, sent = _pass(fake_ledger, clock)
    _owed(fake_ledger, Role.DEVELOPER, 2)
    clock.now += redelivery.window_s
    for queued in (1, 2, 1, 2, 1, 2):  # a message popped and claimed between looks, each time
        key = fake_ledger.keys.broker_lists(role_queues(fake_ledger.settings, Role.DEVELOPER)[2])[0]
        fake_ledger.client.delete(key)
        _queue_messages(fake_ledger, Role.DEVELOPER, queued)
        clock.now += redelivery.window_s / 2
        redelivery.run_once()
    assert sent == []


def test_a_second_worker_does_not_make_good_the_same_loss_again(fake_ledger: Ledger) -> None:
    clock = Clock()
    first, sent_first = _pass(fake_ledger, clock)
    other = Ledger(fakeredis.FakeRedis(server=fake_ledger.client.connection_pool.connection_kwargs["server"],
                                        decode_responses=True), fake_ledger.settings)  # fmt: skip
    second, sent_second = _pass(other, clock)
    _owed(fake_ledger, Role.QA, 2)
    for _ in range(3):
        first.run_once()
        second.run_once()
        clock.now += first.window_s / 2
    assert len(sent_first) + len(sent_second) == 2, "each lost message is replaced once"


def test_at_the_default_lease_a_loss_is_made_good_at_the_pass_after_a_window(fake_ledger: Ledger) -> None:
    # Passes come one interval apart, and the window is no shorter than an interval: the pass a
    # window old must still count.
    settings = fake_ledger.settings
    assert settings.lease_seconds == 30.0
    assert settings.redeliver_interval_seconds == settings.in_flight_seconds == 5.0
    clock = Clock()
    redelivery, sent = _pass(fake_ledger, clock)
    _owed(fake_ledger, Role.QA, 1)  # its message was lost
    assert redelivery.run_once() == 0
    clock.now += settings.redeliver_interval_seconds + 0.25  # the upkeep thread's pace
    assert redelivery.run_once() == 1
    assert len(sent) == 1
