"""Learning decisions: improved, no change, or worse (rolled back), per metric direction."""

from __future__ import annotations

import pytest

from ceremonies.improve.discovery import _busy_seconds
from ceremonies.improve.learning import TOLERANCE, Outcome, decide
from ceremonies.improve.vocabulary import Metric


@pytest.mark.parametrize(
    ("metric", "before", "after", "outcome"),
    [
        (Metric.THROUGHPUT, 1.0, 3.0, Outcome.IMPROVED),
        (Metric.THROUGHPUT, 3.0, 1.0, Outcome.WORSE),
        (Metric.THROUGHPUT, 1.0, 1.05, Outcome.NO_CHANGE),
        (Metric.OLDEST_WAIT_S, 60.0, 5.0, Outcome.IMPROVED),
        (Metric.OLDEST_WAIT_S, 5.0, 60.0, Outcome.WORSE),
        (Metric.EXPIRED_LEASES, 0.0, 0.0, Outcome.NO_CHANGE),
        (Metric.EXPIRED_LEASES, 0.0, 0.01, Outcome.WORSE),
        (Metric.SUCCESS_RATE, 0.5, 0.9, Outcome.IMPROVED),
        (Metric.THROUGHPUT, None, 1.0, Outcome.INCONCLUSIVE),
        (Metric.THROUGHPUT, 1.0, None, Outcome.INCONCLUSIVE),
    ],
)
def test_decide(metric: Metric, before: float | None, after: float | None, outcome: Outcome) -> None:
    assert decide(metric, before, after) is outcome


def test_a_change_at_the_tolerance_is_no_change_and_just_past_it_counts() -> None:
    assert decide(Metric.THROUGHPUT, 1.0, 1.0 / (1 - TOLERANCE) - 1e-9) is Outcome.NO_CHANGE
    assert decide(Metric.THROUGHPUT, 1.0, 1.0 / (1 - TOLERANCE) + 1e-6) is Outcome.IMPROVED


def test_busy_time_is_the_union_of_the_work_intervals() -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(s: float) -> datetime:
        return t0 + timedelta(seconds=s)

    # [0,2] and [1,3] overlap into [0,3]; [10,11] is separate; [10.5,10.6] is inside it.
    spans = [(at(0), at(2)), (at(1), at(3)), (at(10), at(11)), (at(10.5), at(10.6))]
    assert _busy_seconds(spans) == pytest.approx(4.0)
    assert _busy_seconds([]) == 0.0
