"""Prometheus metrics computed from the ledger (SPEC §10), so they are correct across hosts.

Counters and histograms are not kept in any process: the ledger's Lua scripts move them in the
hash ``Keys.metrics``, in the same atomic step as the transition they count (a claim in
``_lib.lua: do_claim``, a completion or failure in ``finish.lua``). Every host's workers write
the same hash, so a scrape of any one process sees the whole swarm, and a restart loses nothing.
The fields (``<role>``, ``<team>``, ``<outcome>`` as in the ledger; ``<le>`` a bucket's upper
bound in microseconds, or ``inf``):

=================================================  ===========================================
``claimed:<role>:<team>``                          claims (HINCRBY 1)
``completed:<role>:<team>``, ``failed:...``        completions and failures (each ``fail``)
``claim_latency_bucket:<role>:<le>``               claims whose wait (claimed_at - created_at)
                                                   fell in that bucket (not cumulative)
``claim_latency_sum_us:<role>``                    the waits' sum, microseconds
``duration_bucket:<role>:<outcome>:<le>``          finishes whose work time (finish -
                                                   claimed_at) fell in that bucket
``duration_sum_us:<role>:<outcome>``               their sum, microseconds
``last_claim_ms:<role>``                           the role's last claim (``swarm health``)
``redelivered:<role>``                             messages the broker lost, re-sent
                                                   (``redeliver.lua``)
``last_redeliver_ms:<role>``                       the role's last re-send (``swarm health``)
``dead_letters:<reason>``                          broker messages dead-lettered by a worker
                                                   (``swarm/deadletters.py``; HINCRBY 1)
=================================================  ===========================================

Each operation adds one to exactly one bucket, so the hot path stays O(1); the collector makes
the buckets cumulative. The bounds are fixed (``DURATION_BUCKETS_US``, ``LATENCY_BUCKETS_US``,
the same lists as ``_lib.lua``). A claim's latency runs from the item's creation, so a retried
item's later claims include its earlier attempts.

Gauges are read from the registries at scrape time: team velocity in the current iteration
(points of workflow ends completed in it, as the ledger counts velocity), live agents per role,
queue depth per role, items per status, expired leases and dead items.

A scrape is two pipelined round trips, plus one read of the calendar (``swarm calendar set``
may change it while a collector runs). Exposed names:

- ``swarm_items_claimed_total{role,team}``, ``swarm_items_completed_total{role,team}``,
  ``swarm_items_failed_total{role,team}``, ``swarm_messages_redelivered_total{role}``,
  ``swarm_dead_letters_total{reason}`` (counters)
- ``swarm_work_duration_seconds{role,outcome}``, ``swarm_claim_latency_seconds{role}``
  (histograms)
- ``swarm_team_velocity_points{team}``, ``swarm_iteration_info{pi,iteration}``,
  ``swarm_agents_active{role}``, ``swarm_queue_depth{role}``, ``swarm_items{status}``,
  ``swarm_expired_leases``, ``swarm_dead_items``, ``swarm_beat_last_tick_timestamp_seconds``,
  ``swarm_ledger_up`` (gauges)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from swarm.calendar import Calendar, Period
from swarm.errors import SwarmError
from swarm.ledger import Ledger
from swarm.models import AgentStatus, Role, Status

# Histogram upper bounds, microseconds; ``_lib.lua`` holds the same lists.
DURATION_BUCKETS_US: tuple[int, ...] = (
    100_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
    120_000_000, 300_000_000, 600_000_000, 1_800_000_000, 3_600_000_000,
)  # fmt: skip
LATENCY_BUCKETS_US: tuple[int, ...] = (
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000, 60_000_000, 300_000_000,
)  # fmt: skip
OUTCOMES = ("completed", "failed")
COUNTERS = ("claimed", *OUTCOMES)
VELOCITY_WINDOW_SLACK_S = 300.0  # the iteration's ids are read from this much before its start by
# the local clock, so that a host whose clock is off by less than this still reads all of them
UNKNOWN = "unknown"  # the role label of an agent registered without one


def le_label(bound_us: int) -> str:
    """A bound's ``le`` label in seconds, as Prometheus's clients write them (``0.005``, ``1.0``)."""
    return repr(bound_us / 1e6)


def _to_int(value: str) -> int:
    return int(float(value))


@dataclass
class Histogram:
    """One labelled histogram from the hash: per-bucket counts (not cumulative) and the sum."""

    bounds_us: tuple[int, ...]
    counts: dict[str, int] = field(default_factory=dict)  # "<bound_us>" or "inf" -> observations
    sum_us: int = 0

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, observations <= le)`` for every bound and ``+Inf``, as Prometheus wants them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound in self.bounds_us:
            running += self.counts.get(str(bound), 0)
            out.append((le_label(bound), float(running)))
        out.append(("+Inf", float(running + self.counts.get("inf", 0))))
        return out


@dataclass
class LedgerCounters:
    """The metrics hash, parsed."""

    counters: dict[str, dict[tuple[str, str], int]] = field(
        default_factory=lambda: {name: {} for name in COUNTERS}
    )  # "claimed" -> (role, team) -> n
    claim_latency: dict[str, Histogram] = field(default_factory=dict)  # role ->
    duration: dict[tuple[str, str], Histogram] = field(default_factory=dict)  # (role, outcome) ->
    last_claim_ms: dict[str, int] = field(default_factory=dict)  # role -> ms
    redelivered: dict[str, int] = field(default_factory=dict)  # role -> lost messages re-sent
    last_redeliver_ms: dict[str, int] = field(default_factory=dict)  # role -> ms
    dead_letters: dict[str, int] = field(default_factory=dict)  # reason -> n

    @classmethod
    def parse(cls, fields: Mapping[str, str]) -> LedgerCounters:
        parsed = cls()
        for name, value in fields.items():
            kind, _, rest = name.partition(":")
            if kind in COUNTERS:
                role, _, team = rest.partition(":")
                parsed.counters[kind][(role, team)] = _to_int(value)
            elif kind == "claim_latency_bucket":
                role, _, le = rest.rpartition(":")
                parsed._latency(role).counts[le] = _to_int(value)
            elif kind == "claim_latency_sum_us":
                parsed._latency(rest).sum_us = _to_int(value)
            elif kind == "duration_bucket":
                labels, _, le = rest.rpartition(":")
                role, _, outcome = labels.partition(":")
                parsed._duration(role, outcome).counts[le] = _to_int(value)
            elif kind == "duration_sum_us":
                role, _, outcome = rest.partition(":")
                parsed._duration(role, outcome).sum_us = _to_int(value)
            elif kind == "last_claim_ms":
                parsed.last_claim_ms[rest] = _to_int(value)
            elif kind == "redelivered":
                parsed.redelivered[rest] = _to_int(value)
            elif kind == "last_redeliver_ms":
                parsed.last_redeliver_ms[rest] = _to_int(value)
            elif kind == "dead_letters":
                parsed.dead_letters[rest] = _to_int(value)
        return parsed

    def _latency(self, role: str) -> Histogram:
        return self.claim_latency.setdefault(role, Histogram(LATENCY_BUCKETS_US))

    def _duration(self, role: str, outcome: str) -> Histogram:
        return self.duration.setdefault((role, outcome), Histogram(DURATION_BUCKETS_US))

    def total(self, counter: str, *, role: str | None = None, team: str | None = None) -> int:
        return sum(
            n
            for (r, t), n in self.counters[counter].items()
            if (role is None or r == role) and (team is None or t == team)
        )


def is_live(last_seen_ms: float, status: str | None, now_ms: float, lease_seconds: float) -> bool:
    """An agent is live when it was seen (claim, heartbeat, finish, registration) within one
    lease and is not offline: a holder must heartbeat within its lease, so one that has not is
    stale. An idle agent's record is refreshed only when it works, so it turns stale too."""
    return status != AgentStatus.OFFLINE.value and now_ms - last_seen_ms <= lease_seconds * 1000


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class LedgerSnapshot:
    """Everything a scrape reports, read in two round trips."""

    now: datetime
    counters: LedgerCounters
    queue_depths: dict[Role, int]
    status_counts: dict[Status, int]
    agents_active: dict[str, int]  # role (or UNKNOWN) -> live agents
    expired_leases: int
    iteration: Period
    velocity: dict[str, int]  # team -> points of workflow ends completed in the iteration
    teams: list[str]  # every team the counters or the ledger's velocity know
    beat_tick_ms: int | None


class LedgerReader:
    """Reads ``LedgerSnapshot``s of one ledger, each on the calendar agreed at that moment."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def snapshot(self) -> LedgerSnapshot:
        ledger, keys, calendar = self.ledger, self.ledger.keys, Calendar.load(self.ledger)
        local_now = datetime.now(UTC)
        low = calendar.current_iteration(local_now - timedelta(seconds=VELOCITY_WINDOW_SLACK_S)).start
        pipe = ledger.client.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(keys.metrics)
        for role in Role:
            pipe.zcard(keys.ready(role))
        for status in Status:
            pipe.zcard(keys.status(status))
        pipe.zrange(keys.agents, 0, -1, withscores=True)
        pipe.zrangebyscore(keys.status(Status.COMPLETED), _ms(low), "+inf", withscores=True)
        pipe.hkeys(keys.velocity)
        pipe.hget(keys.beat_tick, "at")
        reply = iter(ledger.read(pipe.execute))
        seconds, micros = next(reply)
        now = datetime.fromtimestamp(seconds + micros / 1e6, UTC)
        now_ms = seconds * 1000 + micros // 1000
        counters = LedgerCounters.parse(next(reply))
        depths = {role: int(next(reply)) for role in Role}
        counts = {status: int(next(reply)) for status in Status}
        agents: list[tuple[str, float]] = next(reply)
        iteration = calendar.current_iteration(now)
        start_ms = _ms(iteration.start)
        done = [wid for wid, score in next(reply) if score >= start_ms]
        known_teams: list[str] = next(reply)
        tick: str | None = next(reply)

        lease_s = ledger.settings.lease_seconds
        recent = [aid for aid, seen in agents if now_ms - seen <= lease_s * 1000]
        pipe = ledger.client.pipeline(transaction=False)
        pipe.zcount(keys.leases, "-inf", now_ms)
        for aid in recent:
            pipe.hmget(keys.agent(aid), "role", "status")
        for wid in done:
            pipe.hmget(keys.item(wid), "team", "points", "next_id")
        reply = iter(ledger.read(pipe.execute))
        expired = int(next(reply))
        active: dict[str, int] = defaultdict(int)
        seen_at = dict(agents)
        for aid in recent:
            role, status = next(reply)
            if is_live(seen_at[aid], status, now_ms, lease_s):
                active[role or UNKNOWN] += 1
        velocity: dict[str, int] = defaultdict(int)
        for _ in done:
            team, points, next_id = next(reply)
            if team is not None and not next_id:
                velocity[team] += int(points or 0)
        teams = sorted(
            set(known_teams) | set(velocity) | {t for c in counters.counters.values() for _, t in c}
        )
        return LedgerSnapshot(
            now=now,
            counters=counters,
            queue_depths=depths,
            status_counts=counts,
            agents_active=dict(active),
            expired_leases=expired,
            iteration=iteration,
            velocity=dict(velocity),
            teams=teams,
            beat_tick_ms=int(tick) if tick else None,
        )


def _families(snap: LedgerSnapshot) -> Iterator[Metric]:
    helps = {
        "claimed": "Work items claimed, by the item's role and team.",
        "completed": "Work items completed (each workflow stage counts), by role and team.",
        "failed": "Failures reported by holders (retried or not), by role and team.",
    }
    for name in COUNTERS:
        family = CounterMetricFamily(f"swarm_items_{name}", helps[name], labels=["role", "team"])
        for (role, team), n in sorted(snap.counters.counters[name].items()):
            family.add_metric([role, team], n)
        yield family

    dead_letters = CounterMetricFamily(
        "swarm_dead_letters",
        "Broker messages that were no well-formed swarm task call, acked and set aside, by reason.",
        labels=["reason"],
    )
    for reason, n in sorted(snap.counters.dead_letters.items()):
        dead_letters.add_metric([reason], n)
    yield dead_letters

    redelivered = CounterMetricFamily(
        "swarm_messages_redelivered", "Queue messages the broker lost, re-sent by the ledger, by role.",
        labels=["role"],
    )  # fmt: skip
    for role in Role:
        redelivered.add_metric([role.value], snap.counters.redelivered.get(role.value, 0))
    yield redelivered

    duration = HistogramMetricFamily(
        "swarm_work_duration_seconds",
        "Time from claim to completion or failure, by role and outcome.",
        labels=["role", "outcome"],
    )
    for (role, outcome), hist in sorted(snap.counters.duration.items()):
        duration.add_metric([role, outcome], hist.cumulative(), hist.sum_us / 1e6)
    yield duration
    latency = HistogramMetricFamily(
        "swarm_claim_latency_seconds",
        "Time from an item's creation to its claim (its wait for an agent), by role.",
        labels=["role"],
    )
    for role, hist in sorted(snap.counters.claim_latency.items()):
        latency.add_metric([role], hist.cumulative(), hist.sum_us / 1e6)
    yield latency

    velocity = GaugeMetricFamily(
        "swarm_team_velocity_points",
        "Points of workflows completed in the current iteration, by team.",
        labels=["team"],
    )
    for team in snap.teams:
        velocity.add_metric([team], snap.velocity.get(team, 0))
    yield velocity
    iteration = GaugeMetricFamily(
        "swarm_iteration_info", "The current PI and iteration (value: its start, unix seconds).",
        labels=["pi", "iteration"],
    )  # fmt: skip
    iteration.add_metric(
        [str(snap.iteration.pi), str(snap.iteration.iteration)], snap.iteration.start.timestamp()
    )
    yield iteration
    agents = GaugeMetricFamily(
        "swarm_agents_active", "Live agents (seen within a lease, not offline), by role.", labels=["role"]
    )
    for role in [*(r.value for r in Role), *sorted(set(snap.agents_active) - {r.value for r in Role})]:
        agents.add_metric([role], snap.agents_active.get(role, 0))
    yield agents
    depth = GaugeMetricFamily("swarm_queue_depth", "Pending items, by role.", labels=["role"])
    for role, n in snap.queue_depths.items():
        depth.add_metric([role.value], n)
    yield depth
    items = GaugeMetricFamily("swarm_items", "Items in each status.", labels=["status"])
    for status, n in snap.status_counts.items():
        items.add_metric([status.value], n)
    yield items
    yield GaugeMetricFamily(
        "swarm_expired_leases",
        "Held items whose lease has run out (the reaper has not returned them yet).",
        value=snap.expired_leases,
    )
    yield GaugeMetricFamily("swarm_dead_items", "Items that used up their attempts.",
                            value=snap.status_counts[Status.DEAD])  # fmt: skip
    if snap.beat_tick_ms is not None:
        yield GaugeMetricFamily(
            "swarm_beat_last_tick_timestamp_seconds", "When the leading beat last ticked (unix seconds).",
            value=snap.beat_tick_ms / 1000,
        )  # fmt: skip


class LedgerCollector(Collector):
    """A prometheus-client collector that reads the ledger at every scrape."""

    def __init__(self, ledger: Ledger) -> None:
        self.reader = LedgerReader(ledger)

    def collect(self) -> Iterable[Metric]:
        try:
            snap = self.reader.snapshot()
        except SwarmError:  # Redis is unreachable: say so rather than fail the scrape
            snap = None
        up = GaugeMetricFamily("swarm_ledger_up", "1 when the ledger's Redis answered this scrape.")
        up.add_metric([], 0 if snap is None else 1)
        if snap is not None:
            yield from _families(snap)
        yield up


def registry_for(ledger: Ledger) -> CollectorRegistry:
    """A registry holding only the ledger's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(ledger))
    return registry


def exposition(ledger: Ledger) -> str:
    """The metrics in Prometheus's text format."""
    return generate_latest(registry_for(ledger)).decode("utf-8")
