"""The metrics the ledger's Lua keeps (SPEC §10): each operation moves its counters by exactly one
and its histograms by one observation in the right bucket; refusals move nothing (fakeredis)."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from ledger_helpers import A, B, stored_field
from prometheus_client.parser import text_string_to_metric_families

from swarm.calendar import Calendar
from swarm.deadletters import DeadLetterReason
from swarm.errors import ClaimConflict, NotOwner
from swarm.ledger import Handoff, Ledger
from swarm.metrics import (
    DURATION_BUCKETS_US,
    LATENCY_BUCKETS_US,
    Histogram,
    LedgerCounters,
    exposition,
    le_label,
)
from swarm.models import Role


def _metrics(ledger: Ledger) -> dict[str, int]:
    raw: dict[str, str] = ledger.client.hgetall(ledger.keys.metrics)
    return {k: int(v) for k, v in raw.items()}


def _moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        k: after.get(k, 0) - before.get(k, 0)
        for k in set(before) | set(after)
        if after.get(k) != before.get(k)
    }


def _lua_list(name: str) -> tuple[int, ...]:
    source = (resources.files("swarm") / "lua" / "_lib.lua").read_text(encoding="utf-8")
    match = re.search(rf"local {name} = \{{(.*?)\}}", source, re.DOTALL)
    assert match, name
    return tuple(int(n) for n in re.findall(r"\d+", match.group(1)))


def _us(ledger: Ledger, work_id: str, name: str) -> int:
    return int(stored_field(ledger, work_id, name) or 0)


def test_the_lua_bucket_bounds_are_the_collectors() -> None:
    assert _lua_list("DURATION_BUCKETS_US") == DURATION_BUCKETS_US
    assert _lua_list("LATENCY_BUCKETS_US") == LATENCY_BUCKETS_US
    for bounds in (DURATION_BUCKETS_US, LATENCY_BUCKETS_US):
        assert list(bounds) == sorted(set(bounds))


def test_a_claim_moves_its_counter_one_latency_bucket_and_the_sum_by_exactly_its_wait(
    fake_ledger: Ledger,
) -> None:
    item = fake_ledger.submit("build", role="qa", team="blue")
    before = _metrics(fake_ledger)
    fake_ledger.claim(item.id, A)
    moved = _moved(before, _metrics(fake_ledger))
    wait = _us(fake_ledger, item.id, "claimed_at") - _us(fake_ledger, item.id, "created_at")
    last_claim = moved.pop("last_claim_ms:qa")
    assert last_claim == _us(fake_ledger, item.id, "claimed_at") // 1000
    bucket = next(k for k in moved if k.startswith("claim_latency_bucket:"))
    assert moved == {"claimed:qa:blue": 1, bucket: 1, "claim_latency_sum_us:qa": wait}
    bound = bucket.rsplit(":", 1)[1]
    assert bound == "inf" or wait <= int(bound)


def test_claim_next_counts_like_claim_and_an_empty_queue_counts_nothing(fake_ledger: Ledger) -> None:
    fake_ledger.submit("build", role="developer")
    before = _metrics(fake_ledger)
    assert fake_ledger.claim_next("developer", A) is not None
    assert _moved(before, _metrics(fake_ledger))["claimed:developer:core"] == 1
    before = _metrics(fake_ledger)
    assert fake_ledger.claim_next("developer", B) is None
    assert _moved(before, _metrics(fake_ledger)) == {}


def test_a_completion_moves_its_counter_and_one_duration_bucket_by_one(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build", role="architect", team="red")
    fake_ledger.claim(item.id, A)
    before = _metrics(fake_ledger)
    done = fake_ledger.complete(item.id, A)
    moved = _moved(before, _metrics(fake_ledger))
    took = _us(fake_ledger, item.id, "completed_at") - _us(fake_ledger, item.id, "claimed_at")
    assert done.completed_at is not None
    bucket = next(k for k in moved if k.startswith("duration_bucket:"))
    assert bucket.startswith("duration_bucket:architect:completed:")
    assert moved == {"completed:architect:red": 1, bucket: 1, "duration_sum_us:architect:completed": took}


@pytest.mark.parametrize("retry", [False, True])
def test_a_failure_moves_the_failed_counter_by_one_whether_or_not_it_is_retried(
    fake_ledger: Ledger, retry: bool
) -> None:
    item = fake_ledger.submit("build", role="devops")
    fake_ledger.claim(item.id, A)
    before = _metrics(fake_ledger)
    fake_ledger.fail(item.id, A, "boom", retry=retry)
    moved = _moved(before, _metrics(fake_ledger))
    assert moved["failed:devops:core"] == 1
    assert sum(v for k, v in moved.items() if k.startswith("duration_bucket:devops:failed:")) == 1
    assert not any(k.startswith(("completed:", "claimed:")) for k in moved)


def test_a_handoff_counts_one_completion_of_the_stage_and_a_claim_of_the_next(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("feature", role="pm")
    fake_ledger.claim(item.id, A)
    fake_ledger.complete(item.id, A, handoff=Handoff(role="architect", stage="design"))
    nxt = fake_ledger.get(item.id).next_id
    assert nxt is not None
    fake_ledger.claim(nxt, B)
    counts = LedgerCounters.parse(fake_ledger.client.hgetall(fake_ledger.keys.metrics))
    assert counts.counters["completed"] == {("pm", "core"): 1}
    assert counts.counters["claimed"] == {("pm", "core"): 1, ("architect", "core"): 1}


def test_refused_operations_move_no_metric(fake_ledger: Ledger) -> None:
    item = fake_ledger.submit("build")
    fake_ledger.claim(item.id, A)
    before = _metrics(fake_ledger)
    with pytest.raises(ClaimConflict):
        fake_ledger.claim(item.id, B)
    with pytest.raises(NotOwner):
        fake_ledger.complete(item.id, B)
    with pytest.raises(NotOwner):
        fake_ledger.fail(item.id, B, "not mine")
    fake_ledger.heartbeat(item.id, A)
    fake_ledger.progress(item.id, A, 50)
    fake_ledger.release(item.id, A)
    assert _moved(before, _metrics(fake_ledger)) == {}


LATENCY_CASES = {  # a wait (us) -> the bucket it must land in
    "0": (0, "5000"),
    "3ms": (3_000, "5000"),
    "70ms": (70_000, "100000"),
    "7s": (7_000_000, "10000000"),
    "45s": (45_000_000, "60000000"),
    "10min": (600_000_000, "inf"),
}


@pytest.mark.parametrize(("wait_us", "bucket"), LATENCY_CASES.values(), ids=LATENCY_CASES.keys())
def test_a_claims_wait_lands_in_the_bucket_whose_bound_is_the_first_at_or_above_it(
    fake_ledger: Ledger, wait_us: int, bucket: str
) -> None:
    item = fake_ledger.submit("build", role="pm")
    # The item was created `wait_us` before now (its claim follows within a millisecond or so);
    # the cases sit well inside their buckets. A wait of 0 is a creation time in the future.
    seconds, micros = fake_ledger.client.time()
    created = seconds * 1_000_000 + micros - wait_us + (0 if wait_us else 60_000_000)
    fake_ledger.client.hset(fake_ledger.keys.item(item.id), "created_at", str(created))
    fake_ledger.claim(item.id, A)
    fields = _metrics(fake_ledger)
    observed = _us(fake_ledger, item.id, "claimed_at") - created
    # The claim came a little after `created + wait_us`: on a loaded machine a few ms later. The
    # bucket is the one for the wait the ledger observed; the cases are chosen to land in `bucket`.
    first_bound = next((b for b in LATENCY_BUCKETS_US if max(0, observed) <= b), None)
    observed_bucket = "inf" if first_bound is None else str(first_bound)
    assert {k: v for k, v in fields.items() if k.startswith("claim_latency_bucket:")} == {
        f"claim_latency_bucket:pm:{observed_bucket}": 1
    }
    if observed - max(0, wait_us) < 1_000:  # claimed within a millisecond: the intended bucket
        assert observed_bucket == bucket
    assert fields["claim_latency_sum_us:pm"] == max(0, observed)


DURATION_CASES = {
    "50ms": (50_000, "100000"),
    "3s": (3_000_000, "5000000"),
    "90s": (90_000_000, "120000000"),
    "2h": (7_200_000_000, "inf"),
}


@pytest.mark.parametrize(("took_us", "bucket"), DURATION_CASES.values(), ids=DURATION_CASES.keys())
def test_a_completions_duration_lands_in_its_bucket(fake_ledger: Ledger, took_us: int, bucket: str) -> None:
    item = fake_ledger.submit("build", role="qa")
    fake_ledger.claim(item.id, A)
    claimed = _us(fake_ledger, item.id, "claimed_at") - took_us
    fake_ledger.client.hset(fake_ledger.keys.item(item.id), "claimed_at", str(claimed))
    fake_ledger.complete(item.id, A)
    fields = _metrics(fake_ledger)
    assert {k: v for k, v in fields.items() if k.startswith("duration_bucket:")} == {
        f"duration_bucket:qa:completed:{bucket}": 1
    }
    assert fields["duration_sum_us:qa:completed"] == _us(fake_ledger, item.id, "completed_at") - claimed


def test_histogram_buckets_are_made_cumulative_with_an_inf_bucket() -> None:
    hist = Histogram((10, 100, 1000), counts={"10": 2, "1000": 1, "inf": 4}, sum_us=5_000_000)
    assert hist.count == 7
    assert hist.cumulative() == [("1e-05", 2.0), ("0.0001", 2.0), ("0.001", 3.0), ("+Inf", 7.0)]
    assert le_label(2_500_000) == "2.5"
    assert le_label(1_000_000) == "1.0"


def test_the_hash_is_parsed_into_counters_and_histograms() -> None:
    parsed = LedgerCounters.parse(
        {
            "claimed:qa:blue": "3",
            "completed:qa:blue": "2",
            "failed:developer:core": "1",
            "claim_latency_bucket:qa:5000": "3",
            "claim_latency_sum_us:qa": "4200",
            "duration_bucket:qa:completed:inf": "2",
            "duration_sum_us:qa:completed": "9000000000",
            "last_claim_ms:qa": "1700000000000",
        }
    )
    assert parsed.total("claimed") == 3
    assert parsed.total("completed", role="qa") == 2
    assert parsed.total("failed", team="core") == 1
    assert parsed.claim_latency["qa"].count == 3
    assert parsed.claim_latency["qa"].sum_us == 4200
    assert parsed.duration[("qa", "completed")].cumulative()[-1] == ("+Inf", 2.0)
    assert parsed.last_claim_ms == {"qa": 1_700_000_000_000}


def test_the_exposition_reports_what_the_hash_and_registries_hold(fake_ledger: Ledger) -> None:
    Calendar.load(fake_ledger)  # the calendar's first user fixes the epoch: the iteration starts now
    a = fake_ledger.submit("build", role="qa", team="blue", points=5)
    b = fake_ledger.submit("build", role="qa", team="blue")
    fake_ledger.submit("build", role="developer")
    fake_ledger.claim(a.id, A)
    fake_ledger.complete(a.id, A)
    fake_ledger.claim(b.id, B)
    families = {f.name: f for f in text_string_to_metric_families(exposition(fake_ledger))}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("swarm_items_claimed_total", (("role", "qa"), ("team", "blue")))] == 2
    assert samples[("swarm_items_completed_total", (("role", "qa"), ("team", "blue")))] == 1
    assert samples[("swarm_claim_latency_seconds_count", (("role", "qa"),))] == 2
    assert samples[("swarm_work_duration_seconds_count", (("outcome", "completed"), ("role", "qa")))] == 1
    assert samples[("swarm_queue_depth", (("role", "developer"),))] == 1
    assert samples[("swarm_agents_active", (("role", "qa"),))] == 2
    assert samples[("swarm_items", (("status", "claimed"),))] == 1
    assert samples[("swarm_dead_items", ())] == 0
    assert samples[("swarm_expired_leases", ())] == 0
    assert samples[("swarm_ledger_up", ())] == 1
    assert samples[("swarm_team_velocity_points", (("team", "blue"),))] == 5
    assert samples[("swarm_iteration_info", (("iteration", "1"), ("pi", "1")))] > 0


def test_every_counter_family_has_a_zero_series_for_every_label_set_from_the_first_scrape(
    fake_ledger: Ledger,
) -> None:
    """A new swarm: every rate, and completed / (completed + failed), is defined for every role."""
    Calendar.load(fake_ledger)
    families = {f.name: f for f in text_string_to_metric_families(exposition(fake_ledger))}
    roles = {r.value for r in Role}

    def labels(family: str, sample: str, *names: str) -> set[tuple[str, ...]]:
        found = [s for s in families[family].samples if s.name == sample]
        assert all(s.value == 0 for s in found), f"{sample}: nothing happened yet"
        return {tuple(s.labels[n] for n in names) for s in found}

    for name in ("claimed", "completed", "failed"):
        metric = f"swarm_items_{name}"
        assert labels(metric, f"{metric}_total", "role", "team") == {(r, "core") for r in roles}, name
    outcomes = {(r, o) for r in roles for o in ("completed", "failed")}
    duration = "swarm_work_duration_seconds"
    assert labels(duration, f"{duration}_count", "role", "outcome") == outcomes
    assert labels(duration, f"{duration}_sum", "role", "outcome") == outcomes
    assert labels("swarm_claim_latency_seconds", "swarm_claim_latency_seconds_count", "role") == {
        (r,) for r in roles
    }
    assert labels("swarm_messages_redelivered", "swarm_messages_redelivered_total", "role") == {
        (r,) for r in roles
    }
    assert labels("swarm_dead_letters", "swarm_dead_letters_total", "reason") == {
        (r.value,) for r in DeadLetterReason
    }


def test_a_team_that_appears_gets_every_roles_zero_series(fake_ledger: Ledger) -> None:
    Calendar.load(fake_ledger)
    item = fake_ledger.submit("build", role="qa", team="blue")
    fake_ledger.claim(item.id, A)
    fake_ledger.complete(item.id, A)
    families = {f.name: f for f in text_string_to_metric_families(exposition(fake_ledger))}
    failed = {(s.labels["role"], s.labels["team"]): s.value for s in families["swarm_items_failed"].samples}
    completed = {
        (s.labels["role"], s.labels["team"]): s.value for s in families["swarm_items_completed"].samples
    }
    assert set(failed) == {(r.value, t) for r in Role for t in ("blue", "core")}
    assert set(failed.values()) == {0}, "qa in team blue never failed: its success rate is 1/(1+0)"
    assert completed[("qa", "blue")] == 1
