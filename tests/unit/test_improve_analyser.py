"""The deterministic analyser: which proposals given metrics lead to, and their bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ceremonies.improve.analyser import analyse, drain_seconds
from ceremonies.improve.discovery import Discovery, PendingItem, RoleMetrics
from ceremonies.improve.pool import PoolNode
from ceremonies.improve.vocabulary import (
    FileWorkItem,
    Metric,
    Reprioritise,
    ScaleRole,
    SetLease,
    SetRateLimit,
)
from swarm.models import Priority, Role
from swarm.settings import Settings

END = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = 60.0
SETTINGS = Settings(key_prefix="t", redis_url=None, improve_max_concurrency=8)
WID = "work_0000000000000000001_abcdefabcdef"


def discovery(qa: dict[str, Any] | None = None, nodes: list[PoolNode] | None = None) -> Discovery:
    roles = {r: RoleMetrics(role=r, lease_seconds=30.0) for r in Role}
    roles[Role.QA] = RoleMetrics(role=Role.QA, lease_seconds=30.0, **(qa or {}))
    return Discovery(start=END - timedelta(seconds=WINDOW), end=END, roles=roles, nodes=nodes or [])


def qa_node(slots: int = 1, name: str = "qa@h", rate: str | None = None) -> PoolNode:
    return PoolNode(
        node=name, roles=[Role.QA], concurrency=slots, pool="workers.pool:TaskPool", rate_limit=rate
    )


def test_a_backlog_that_would_outlast_the_window_grows_the_pool_to_drain_within_it() -> None:
    # 120 pending at 1/s: 120 s to drain, twice the window, so 1 slot needs to become 2.
    found = analyse(discovery({"queue_depth": 120, "throughput": 1.0}, [qa_node(1)]), SETTINGS)
    assert len(found) == 1
    grow = found[0]
    assert isinstance(grow, ScaleRole)
    assert grow.role is Role.QA
    assert grow.delta == 1
    assert grow.metric is Metric.THROUGHPUT
    assert "120 pending" in grow.reason
    assert "120.0s to drain" in grow.reason


def test_the_growth_is_shared_by_the_roles_nodes_and_bounded_by_max_concurrency() -> None:
    nodes = [qa_node(2, "qa@a"), qa_node(2, "qa@b")]  # 4 slots; 600 s of backlog needs 40
    grow = analyse(discovery({"queue_depth": 600, "throughput": 1.0}, nodes), SETTINGS)[0]
    assert isinstance(grow, ScaleRole)
    assert grow.delta == 6, "each node may only reach improve_max_concurrency (8)"


def test_a_backlog_with_no_throughput_yet_doubles_the_pool() -> None:
    grow = analyse(discovery({"queue_depth": 5, "throughput": None}, [qa_node(3)]), SETTINGS)[0]
    assert isinstance(grow, ScaleRole)
    assert grow.delta == 3
    assert drain_seconds(RoleMetrics(role=Role.QA, queue_depth=5)) == float("inf")


def test_a_long_queue_wait_grows_the_pool_even_if_the_backlog_drains_in_time() -> None:
    found = analyse(
        discovery({"queue_depth": 2, "throughput": 1.0, "oldest_wait_s": 45.0}, [qa_node(1)]), SETTINGS
    )
    assert [type(a) for a in found] == [ScaleRole]


def test_a_backlog_that_drains_within_the_window_is_left_alone() -> None:
    assert (
        analyse(
            discovery({"queue_depth": 30, "throughput": 1.0, "oldest_wait_s": 10.0}, [qa_node(1)]), SETTINGS
        )
        == []
    )


def test_a_pool_at_its_maximum_or_without_nodes_gets_no_growth() -> None:
    busy = {"queue_depth": 600, "throughput": 1.0}
    assert analyse(discovery(busy, [qa_node(8)]), SETTINGS) == []
    assert analyse(discovery(busy, []), SETTINGS) == []


def test_a_rate_limited_role_with_a_backlog_has_its_rate_limit_cleared_instead() -> None:
    found = analyse(discovery({"queue_depth": 600, "throughput": 1.0}, [qa_node(1, rate="1/s")]), SETTINGS)
    assert len(found) == 1
    assert isinstance(found[0], SetRateLimit)
    assert found[0].rate is None


def test_many_expired_leases_double_the_lease() -> None:
    found = analyse(discovery({"expired_leases": 4, "claims": 10}), SETTINGS)
    assert len(found) == 1
    assert isinstance(found[0], SetLease)
    assert found[0].seconds == 60.0
    assert found[0].metric is Metric.EXPIRED_LEASES
    assert analyse(discovery({"expired_leases": 2, "claims": 3}), SETTINGS) == [], "two are noise"
    assert analyse(discovery({"expired_leases": 4, "claims": 100}), SETTINGS) == [], "4% is noise"


def test_an_old_overtaken_item_is_moved_up_one_priority_level() -> None:
    starved = PendingItem(work_id=WID, priority=Priority.LOW, age_s=50.0, overtaken_by=7)
    found = analyse(discovery({"starved": [starved]}), SETTINGS)
    assert len(found) == 1
    assert isinstance(found[0], Reprioritise)
    assert found[0].work_id == WID
    assert found[0].priority is Priority.MEDIUM
    young = starved.model_copy(update={"age_s": 10.0})
    assert analyse(discovery({"starved": [young]}), SETTINGS) == [], "not starved yet"


def test_repeated_dead_items_are_filed_once() -> None:
    dead = ["work_0000000000000000001_000000000001", "work_0000000000000000002_000000000002"]
    metrics = {"dead_items": 2, "dead_ids": dead, "top_errors": ["2x permanent: boom"]}
    found = analyse(discovery(metrics), SETTINGS)
    assert len(found) == 1
    assert isinstance(found[0], FileWorkItem)
    assert found[0].evidence == dead
    assert "permanent: boom" in found[0].description
    assert analyse(discovery(metrics), SETTINGS, filed=dead) == [], "already filed by an earlier cycle"
    assert analyse(discovery({**metrics, "dead_items": 1, "dead_ids": dead[:1]}), SETTINGS) == []
